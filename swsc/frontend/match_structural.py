"""Structural op handlers of the matcher: ops that only move or select quantized values
(Reshape/Flatten/Squeeze/Unsqueeze, Transpose, Slice, Concat, MaxPool, Identity, Cast).

They commute with DequantizeLinear, so a value stays a ``View``/``QRef`` and needs no
IR op until it is used (only a Concat of differently quantized inputs becomes a ``Lin``,
to requantize them). The pooling geometry helpers live here with MaxPool; the linear
handlers (Conv, AveragePool) reach them through ``Matcher``.
"""
from __future__ import annotations

import copy

import numpy as np
from onnx import TensorProto

from ..ops import window_out
from ..ops.slicing import selection
from .onnxgraph import ONode
from .values import Head, Lin, QRef, Unsupported, View, WConst, _pads2d


class StructuralOps:
    """Mixin of Matcher: needs val/og/g/vals/qof/view_of_q/materialize."""

    # -- structural -------------------------------------------------------------------------
    def _struct(self, n: ONode, irop: str, attrs: dict, parents_names=None) -> None:
        names = parents_names or [n.inputs[0]]
        vs = [self.val(i) for i in names]
        out = n.outputs[0]
        shape = self.og.shape(out)
        if shape is None:
            raise Unsupported(f"shape of '{out}' is not static")
        is_head = isinstance(vs[0], Head) or isinstance(vs[0], str) and vs[0] == "input"
        if len(vs) == 1 and is_head and irop in ("Reshape", "Transpose"):
            head = vs[0] if isinstance(vs[0], Head) else Head(names[0])
            self.vals[out] = Head(head.src, head.steps + [(irop, attrs, shape, n.name)], head.arith)
            return
        if all(isinstance(v, QRef) for v in vs):
            quants = [self.qof(v.ir) for v in vs]
            if any(not (np.float32(q.scale) == np.float32(quants[0].scale) and
                        int(q.zero_point) == int(quants[0].zero_point)) for q in quants):
                raise Unsupported("inputs have different quantization")
            pv = [self.view_of_q(v.ir, v.ir) for v in vs]
            view = View(pv[0].scale, pv[0].zp, shape, out, parents=pv, op=irop, attrs=attrs, node=n.name)
            self.vals[out] = QRef(self.materialize(view, name=out))
        elif all(isinstance(v, View) for v in vs):
            if any(np.float32(v.scale) != np.float32(vs[0].scale) or v.zp != vs[0].zp for v in vs):
                if irop == "Concat":
                    self.vals[out] = Lin("concat", n.name, shape, vs, {"axis": attrs["axis"]})
                    return
                raise Unsupported("inputs have different quantization")
            # onnxruntime's QDQ propagation moves a DequantizeLinear past these ops (not Flatten),
            # so the consumer still sees a DQ input and can be fused
            direct = all(v.direct for v in vs) and n.op in ("MaxPool", "Reshape", "Transpose", "Slice", "Squeeze",
                                                            "Unsqueeze")
            self.vals[out] = View(vs[0].scale, vs[0].zp, shape, out, parents=vs, op=irop, attrs=attrs,
                                  node=n.name, direct=direct)
        elif len(vs) == 1 and isinstance(vs[0], Lin) and irop == "Reshape":
            lin = copy.copy(vs[0])
            lin.shape = shape
            self.vals[out] = lin
        else:
            raise Unsupported(f"input is not a quantized tensor ({type(vs[0]).__name__})")

    def _reshape(self, n: ONode) -> None:
        shape = self.og.shape(n.outputs[0])
        if shape is None:
            raise Unsupported("output shape is not static")
        if shape[0] != 1:
            raise Unsupported(f"reshape to {list(shape)} mixes the batch axis")
        self._struct(n, "Reshape", {"shape": list(shape)})

    op_Reshape = op_Flatten = op_Squeeze = op_Unsqueeze = _reshape

    def op_Transpose(self, n: ONode) -> None:
        perm = list(n.attrs.get("perm", []))
        shp = self.og.shape(n.inputs[0])
        w = self.val(n.inputs[0])
        if isinstance(w, WConst):     # a transposed weight (torch Linear on a 1-D input: MatMul(x, w^T))
            perm = perm or list(range(w.data.ndim))[::-1]
            self.vals[n.outputs[0]] = WConst(np.ascontiguousarray(w.data.transpose(perm)), w.scale, w.zp,
                                             None if w.axis is None else perm.index(w.axis), w.name)
            return
        if n.inputs[0] in self.og.batchless:     # perm of the tensor without its batch axis
            perm = [0] + [int(p) + 1 for p in (perm or range(len(shp) - 2, -1, -1))]
        if not perm and shp is not None:
            perm = list(range(len(shp)))[::-1]
        if not perm or perm[0] != 0:
            raise Unsupported(f"perm {perm} moves the batch axis")
        self._struct(n, "Transpose", {"perm": perm})

    def op_Concat(self, n: ONode) -> None:
        shp = self.og.shape(n.outputs[0])
        axis = int(n.attrs.get("axis", 1))
        if shp is not None and axis < 0:
            axis += len(shp)
        elif n.outputs[0] in self.og.batchless:
            axis += 1
        if axis == 0:
            raise Unsupported("concat along the batch axis")
        self._struct(n, "Concat", {"axis": axis}, [i for i in n.inputs if i])

    def op_Slice(self, n: ONode) -> None:
        """Constant starts/ends/axes/steps (inputs from opset 10, attributes before), normalized
        to a start and step per axis (swsc/ops/slicing.py); the batch axis must stay whole."""
        shp = self.og.shape(n.inputs[0])
        if shp is None:
            raise Unsupported("input shape is not static")
        if self.og.opset < 10:
            spec = [n.attrs.get("starts"), n.attrs.get("ends"), n.attrs.get("axes"), None]
        else:
            spec = []
            for k in range(1, 5):
                name = n.inputs[k] if len(n.inputs) > k else ""
                if name and name not in self.og.consts:
                    raise Unsupported(f"Slice input {k} ('{name}') is not a constant")
                spec.append([int(v) for v in np.asarray(self.og.consts[name]).reshape(-1)] if name else None)
        starts, ends, axes, steps = spec
        axes = list(range(len(starts))) if axes is None else list(axes)
        steps = [1] * len(starts) if steps is None else list(steps)
        if n.inputs[0] in self.og.batchless:      # axes of the tensor without its batch axis
            axes = [a if a < 0 else a + 1 for a in axes]
        if any(st == 0 for st in steps):
            raise Unsupported("a step of 0")
        start, step, count = selection(shp, starts, ends, axes, steps)
        if start[0] != 0 or step[0] != 1 or count[0] != shp[0]:
            raise Unsupported("a slice of the batch axis")
        if min(count) < 1:
            raise Unsupported("an empty slice")
        self._struct(n, "Slice", {"starts": start, "steps": step})

    def _pool_geom(self, n: ONode, in_shape, kernel=None):
        if in_shape is None or len(in_shape) != 4:
            raise Unsupported(f"needs a 4-D input, has shape {in_shape}")
        k = list(kernel or n.attrs.get("kernel_shape", []))
        if len(k) != 2:
            raise Unsupported("only 2-D pooling/convolution is supported")
        s = list(n.attrs.get("strides", [1, 1]))
        d = list(n.attrs.get("dilations", [1, 1]))
        pads = _pads2d(n.attrs, in_shape[2:], k, s, d)
        return k, s, pads, d

    def op_MaxPool(self, n: ONode) -> None:
        if len(n.outputs) > 1 and n.outputs[1]:
            raise Unsupported("MaxPool indices output is not supported")
        shape = self.og.shape(n.inputs[0])
        if shape is not None and len(shape) == 3:
            return self._maxpool_1d(n)        # match_linear.py: the 2-D form with a unit H axis
        k, s, p, d = self._pool_geom(n, shape)
        p = self._ceil_pads(n, k, s, p, d, allow=True)
        self._struct(n, "MaxPool", {"kernel": k, "strides": s, "pads": p, "dilations": d})

    def _ceil_pads(self, n, k, s, p, d, allow):
        out = self.og.shape(n.outputs[0])
        ins = self.og.shape(n.inputs[0])
        p = list(p)
        if out is None:
            raise Unsupported("output shape is not static")
        for i in range(2):
            floor = window_out(ins[2 + i], k[i], s[i], p[i], p[i + 2], d[i])
            if floor != out[2 + i]:
                if not allow:
                    raise Unsupported("ceil_mode=1 changes the output size (not supported for average pooling)")
                p[i + 2] += (out[2 + i] - floor) * s[i]
        return p

    def op_Identity(self, n: ONode) -> None:
        self.vals[n.outputs[0]] = self.val(n.inputs[0])

    def op_Cast(self, n: ONode) -> None:
        v = self.val(n.inputs[0])
        to = n.attrs.get("to")
        if isinstance(v, QRef):
            want = {TensorProto.UINT8: "uint8", TensorProto.INT8: "int8"}.get(to)
            if want != self.g.tensors[v.ir].dtype:
                raise Unsupported("Cast changes the integer type of a quantized tensor")
        elif to != TensorProto.FLOAT:
            raise Unsupported("Cast of a float value to another type")
        self.vals[n.outputs[0]] = v
