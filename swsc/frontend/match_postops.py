"""Post-op handlers of the matcher: Relu/Clip, the affine constants (Add, Sub, Mul, Div,
BatchNormalization) and the Softmax float tail.

Between a linear op and its QuantizeLinear these fold into the pending ``Lin`` (a
clamp range, weight scale, bias), so they cost no IR op; a Clip directly on a
quantized tensor narrows its range, and Softmax ends the quantized part of the graph.
Mul/Div/Add/Sub by constants of a dequantized tensor (no linear op before them) become a
depthwise 1x1 ``QConv`` (``_affine_view``, ``emit_affine``).
"""
from __future__ import annotations

import copy
import json

import numpy as np

from ..errors import InvalidModelError
from ..ir import INT_RANGES, Quant
from .onnxgraph import ONode
from .values import Head, Lin, QRef, Tail, Unsupported, View, WConst, _scalar


class PostOps:
    """Mixin of Matcher: needs val/cval/og/g/vals/consumers/renames/emit/check_view."""

    # -- activations ------------------------------------------------------------------------------
    def _clip_bounds(self, n: ONode):
        if n.op == "Relu":
            return 0.0, None
        if self.og.opset < 11:
            return n.attrs.get("min"), n.attrs.get("max")
        lo, hi = None, None
        for idx in (1, 2):
            nm = n.inp(idx)
            if nm:
                c = self.cval(nm)
                if c is None:
                    raise Unsupported("Clip bounds must be constants")
                if idx == 1:
                    lo = _scalar(c)
                else:
                    hi = _scalar(c)
        return lo, hi

    def op_Relu(self, n: ONode) -> None:
        self._clamp(n)

    def op_Clip(self, n: ONode) -> None:
        v = self.val(n.inputs[0])
        if isinstance(v, QRef):
            lo, hi = self._clip_bounds(n)
            t = self.g.tensors[v.ir]
            q = t.quant
            nlo = q.lo if lo is None else max(q.lo, int(np.ceil(lo)))
            nhi = q.hi if hi is None else min(q.hi, int(np.floor(hi)))
            if nlo > nhi:
                raise Unsupported("Clip leaves an empty range")
            users = self.consumers.get(n.inputs[0], [])
            if len(users) == 1 and n.inputs[0] not in self.og.outputs:
                q.lo, q.hi = nlo, nhi
                self._narrow_sources(v.ir, nlo, nhi)
                self.renames[v.ir] = n.outputs[0]
                self.vals[n.outputs[0]] = v
            else:
                qn = Quant(q.scale, q.zero_point, None, nlo, nhi)
                ir = self.emit("QAdd", n.name, [v.ir], n.outputs[0], t.dtype, t.shape, qn)
                self.vals[n.outputs[0]] = QRef(ir)
            return
        self._clamp(n)

    def _narrow_sources(self, ir: str, lo: int, hi: int) -> None:
        """Narrow the range of the tensors a Reshape/Transpose chain moved into ir (a Quantize of a
        float head), so the clamp happens where the values are made."""
        node = next((m for m in self.g.nodes if ir in m.outputs), None)
        while node is not None and node.op in ("Reshape", "Transpose"):
            src = node.inputs[0]
            if sum(src in m.inputs for m in self.g.nodes) != 1:
                return
            q = self.g.tensors[src].quant
            q.lo, q.hi = max(q.lo, lo), min(q.hi, hi)
            node = next((m for m in self.g.nodes if src in m.outputs), None)

    def _clamp(self, n: ONode) -> None:
        v = self.val(n.inputs[0])
        lo, hi = self._clip_bounds(n)
        if isinstance(v, View) and not self._only_quantized(n.outputs[0]):
            # a Relu/Clip between a DequantizeLinear and a consumer that is not a QuantizeLinear
            # (QAT fake-quant exports: Relu after a residual add): it keeps the input's grid
            self.vals[n.outputs[0]] = self._clamp_view(n, v, lo, hi)
            return
        if isinstance(v, View):
            v = Lin("add", n.name, v.shape, [v])
        if not isinstance(v, Lin):
            raise Unsupported("input is not a quantized linear result")
        lin = copy.copy(v)
        if lo is not None:
            lin.lo = max(lin.lo, float(lo))
        if hi is not None:
            lin.hi = min(lin.hi, float(hi))
        lin.clamped = True
        self.vals[n.outputs[0]] = lin

    def _only_quantized(self, t: str) -> bool:
        users = self.consumers.get(t, [])
        return bool(users) and t not in self.og.outputs and all(u.op == "QuantizeLinear" for u in users)

    def _clamp_view(self, n: ONode, v: View, lo, hi) -> View:
        """Relu/Clip of a dequantized tensor: clamp(s (q - z), lo, hi) is s (clamp(q, a, b) - z)
        when the bounds lie on the grid (Relu: 0 = s (z - z)), so it stays a dequantized tensor
        whose integer range is narrowed to [a, b]."""
        ir = self.check_view(v)
        t = self.g.tensors[ir]
        q = t.quant
        s, z = float(np.float32(q.scale)), int(q.zero_point)
        bounds = []
        for b, side in ((lo, q.lo), (hi, q.hi)):
            if b is None:
                bounds.append(side)
                continue
            k = float(b) / s + z
            if abs(k - round(k)) > 1e-3 and q.lo < k < q.hi:
                raise Unsupported(f"Clip bound {float(b)} is not on the input's quantization grid "
                                  f"(scale {s}, zero point {z}) and no QuantizeLinear follows")
            bounds.append(int(np.clip(round(k), q.lo, q.hi)))
        nlo, nhi = max(q.lo, bounds[0]), min(q.hi, bounds[1])
        if nlo > nhi:
            raise Unsupported("the Relu/Clip range is empty")
        if (nlo, nhi) == (q.lo, q.hi):
            out = ir
        elif self._sole_use(n, ir):
            q.lo, q.hi = nlo, nhi        # the integer tensor is used only here: narrow it in place
            self.renames[ir] = n.outputs[0]
            out = ir
        else:
            out = self.emit("QAdd", n.name, [ir], n.outputs[0], t.dtype, t.shape,
                            Quant(q.scale, q.zero_point, None, nlo, nhi))
        # not direct: onnxruntime cannot fuse the consumer with a DequantizeLinear, so it runs in float
        return View(v.scale, v.zp, v.shape, n.outputs[0], ir=out)

    def _sole_use(self, n: ONode, ir: str) -> bool:
        """True if the integer tensor ir reaches nothing but n (through its Q -> [Clip/Cast] -> DQ chain)."""
        if ir in self.og.outputs or any(ir in m.inputs for m in self.g.nodes):
            return False
        t, user = n.inputs[0], n
        while True:
            if t in self.og.outputs or self.consumers.get(t, []) != [user]:
                return False
            p = self.og.producer(t)
            if p is None:
                return False
            if p.op not in ("DequantizeLinear", "Clip", "Cast"):
                return True            # the op that made the integer tensor
            t, user = p.inputs[0], p

    # -- affine post-ops -------------------------------------------------------------------------
    def _per_channel(self, c, lin: Lin):
        c = np.asarray(c, np.float64)
        if not np.all(np.isfinite(c)):
            raise Unsupported("constant has NaN or infinite values")
        if c.size == 1:
            return float(c.reshape(-1)[0])
        shape = lin.shape
        try:
            b = np.broadcast_to(c, shape)
        except ValueError:
            raise Unsupported(f"constant of shape {list(c.shape)} does not broadcast to {list(shape)}") from None
        if tuple(np.broadcast_shapes(c.shape, shape)) != tuple(shape):
            raise Unsupported("constant changes the output shape")
        m = np.moveaxis(b, 1, 0).reshape(shape[1], -1)
        if not np.all(m == m[:, :1]):
            raise Unsupported("constant is not per-channel")
        return m[:, 0].copy()

    def _affine_lin(self, v, what) -> Lin:
        if not isinstance(v, Lin) or v.kind not in ("conv", "dense"):
            raise Unsupported(f"{what} must follow a Conv/Gemm/MatMul (before its QuantizeLinear)")
        if v.clamped:
            raise Unsupported(f"{what} after Relu/Clip is not supported")
        v = copy.copy(v)
        v.float_path = True
        v.plain = False           # onnxruntime runs the post-op separately; the IR folds it
        return v

    def _const_real(self, name):
        c = self.val(name)
        if isinstance(c, WConst):
            return c.real()
        if isinstance(c, np.ndarray) and c.dtype.kind in "fiu":
            return c.astype(np.float64)
        return None

    def _add_bias(self, lin: Lin, c, sign=1.0) -> Lin:
        cc = self._per_channel(c, lin) * sign
        M = lin.w.shape[0]
        add = np.broadcast_to(np.asarray(cc, np.float64), (M,)) / (lin.sx * np.broadcast_to(lin.ws, (M,)))
        lin.bias = add if lin.bias is None else lin.bias + add
        return lin

    def _scale(self, lin: Lin, c) -> Lin:
        cc = self._per_channel(c, lin)
        lin.ws = lin.ws * cc if np.ndim(cc) == 0 else np.broadcast_to(lin.ws, np.shape(cc)) * cc
        return lin

    def _head_arith(self, n: ONode) -> bool:
        """Add/Sub/Mul/Div of the float input (after shape ops) and a float constant: a float head."""
        vals = [self.val(i) for i in n.inputs[:2]]
        heads = [isinstance(v, Head) or isinstance(v, str) and v == "input" for v in vals]
        consts = [isinstance(v, np.ndarray) and v.dtype.kind == "f" for v in vals]
        if not (heads[0] and consts[1] or heads[1] and consts[0]):
            return False
        k = 0 if heads[0] else 1
        head = vals[k] if isinstance(vals[k], Head) else Head(n.inputs[k])
        c = vals[1 - k]
        shape = self.og.shape(n.inputs[k])
        if shape is None or self.og.shape(n.outputs[0]) != shape:
            raise Unsupported("the constant changes the shape of the float input")
        if c.size > 1 and head.steps:
            # carry the constant back through the shape ops, which then run after the quantizer
            c = np.broadcast_to(c, shape)
            prev = [self.in_shapes[head.src]] + [s for _, _, s, _ in head.steps[:-1]]
            for (irop, attrs, _, _), before in zip(reversed(head.steps), reversed(prev)):
                c = c.reshape(before) if irop == "Reshape" else c.transpose(np.argsort(attrs["perm"]))
        self.vals[n.outputs[0]] = Head(head.src, head.steps,
                                       head.arith + [(n.op, np.ascontiguousarray(c), k == 1, n.name, n.outputs[0])])
        return True

    # -- constants on a dequantized tensor -------------------------------------------------------------
    # y = round((s_x (x - z_x) k + b) / s_y) + z_y with one k and b per channel is a requantizing
    # layer with one integer weight per channel: a depthwise 1x1 QConv with weight sign(k), weight
    # scale |k| and bias b / (s_x |k|) in accumulator units computes exactly that real value before
    # its requantization, so fold, rescale, integer lowering, numpy and C take it unchanged. A lone
    # DQ(x) * DQ(c) -> Q, which onnxruntime runs as QLinearMul, keeps c's own integer c_q - z_c as
    # the weight and s_c as its scale (the same real value, and the QLinearMul multiplier).
    def _affine_view(self, n: ONode, xv: View) -> Lin:
        """The depthwise 1x1 conv cluster a dequantized tensor enters at its first constant op; a
        [N, C] or [N, C, L] tensor is viewed as [N, C, 1, 1] / [N, C, 1, L] (the cluster's output
        is reshaped back by its build)."""
        shape = tuple(xv.shape)
        if len(shape) not in (2, 3, 4):
            raise Unsupported(f"a constant on a tensor of shape {list(shape)} (rank 2 to 4 expected)")
        self.check_view(xv)
        x4 = xv
        if len(shape) != 4:
            s4 = (shape[0], shape[1], 1, shape[2] if len(shape) == 3 else 1)
            x4 = View(xv.scale, xv.zp, s4, f"{xv.fname}__4d", parents=[xv], op="Reshape",
                      attrs={"shape": list(s4)}, node=f"{n.name}_as4d", direct=xv.direct)
        attrs = {"kernel": [1, 1], "strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], "group": shape[1]}
        lin = Lin("conv", n.name, shape, [x4], attrs, sx=float(self.qof(self.materialize(xv)).scale))
        lin.affine = []
        return lin

    def _const_affine(self, n: ONode, wconst_view: bool = True) -> bool:
        """Mul/Div/Add/Sub of a dequantized tensor (or such a pending cluster) and a constant;
        False where the operands are something else (the other handlers' forms)."""
        vals = [self.val(i) for i in n.inputs[:2]]

        def tensor(v):
            return isinstance(v, View) or isinstance(v, Lin) and v.affine is not None and not v.clamped

        def const(v):
            return isinstance(v, WConst) or isinstance(v, np.ndarray) and v.dtype.kind in "fiu"

        if tensor(vals[0]) and const(vals[1]):
            k = 0
        elif tensor(vals[1]) and const(vals[0]):
            k = 1
        else:
            if n.op in ("Mul", "Div") and all(isinstance(v, (View, Lin)) for v in vals):
                raise Unsupported(f"{n.op} of two activations is not supported (one operand must be a constant, "
                                  "or both functions of one quantized tensor, as in x * Sigmoid(x))")
            return False
        x, c = vals[k], vals[1 - k]
        if isinstance(x, View) and isinstance(c, WConst) and not wconst_view:
            return False            # Add of a quantized constant: QLinearAdd (QAdd)
        if n.op == "Div" and k == 1:
            raise Unsupported("division by an activation is not supported")
        out = self.og.shape(n.outputs[0])
        if out is None or tuple(out) != tuple(x.shape):
            raise Unsupported("the constant operand changes the shape")
        fused = (n.op == "Mul" and isinstance(x, View) and isinstance(c, WConst)
                 and (x.direct or n.name in self.og.lifted))
        lin = self._affine_view(n, x) if isinstance(x, View) else copy.copy(x)
        if isinstance(c, WConst):
            # onnxruntime dequantizes the constant in float32: fp32(c_q - z_c) * fp32(s_c)
            if c.scale.size != 1 or c.zp.size != 1:
                raise Unsupported("the constant operand must be quantized per tensor")
            c32 = ((c.data.astype(np.float64) - float(_scalar(c.zp))).astype(np.float32)
                   * np.float32(_scalar(c.scale))).astype(np.float32)
        else:
            c32 = np.asarray(c).astype(np.float32)
        cc = self._per_channel(c32.astype(np.float64), lin)
        if n.op == "Div" and np.any(np.asarray(cc) == 0):
            raise Unsupported("division by a constant with zero values")
        lin.affine = lin.affine + [(n.op, np.asarray(cc, np.float64), k == 1)]
        lin.fused = c if fused and len(lin.affine) == 1 else None
        self.vals[n.outputs[0]] = lin
        return True

    def _per_channel_int(self, c: WConst, lin: Lin) -> np.ndarray:
        """The integer data of a per-tensor quantized constant, one value per channel."""
        # per channel already checked on its real values (_per_channel), a monotone map of the integers
        m = np.moveaxis(np.broadcast_to(c.data, lin.shape), 1, 0)
        return m.reshape(lin.shape[1], -1)[:, 0].copy()

    def emit_affine(self, lin: Lin, op, y: str, q: Quant, dt: str) -> str:
        """Emit a constant-op cluster (``_const_affine``) as its depthwise 1x1 QConv, and record how
        onnxruntime computes it (``meta["ort_affine"]``, which the reference mirrors:
        swsc/requant.py ``ort_affine``)."""
        C = lin.shape[1]
        fused = lin.fused
        if fused is not None and lin.clamped and not (
                lin.lo == 0 and lin.hi == np.inf and q.zero_point == INT_RANGES[dt][0]):
            fused = None        # onnxruntime drops only a Relu whose Q starts at the zero point
        lin = copy.copy(lin)
        if fused is not None:
            lin.w = self._per_channel_int(fused, lin).reshape(C, 1, 1, 1)
            lin.ws = np.float64(_scalar(fused.scale))
            lin.wz = np.int64(_scalar(fused.zp))
            lin.bias = None
            spec = {"kind": "qlinear_mul"}
        else:
            k, b = np.ones(C), np.zeros(C)
            for what, c, reverse in lin.affine:
                c = np.broadcast_to(c, (C,))
                if what == "Mul":
                    k, b = k * c, b * c
                elif what == "Div":
                    k, b = k / c, b / c
                elif what == "Add":
                    b = b + c
                elif reverse:                  # c - x
                    k, b = -k, c - b
                else:
                    b = b - c
            ws = np.where(k == 0, 1.0, np.abs(k))
            lin.w = np.sign(k).astype(np.int8).reshape(C, 1, 1, 1)
            lin.ws, lin.wz = ws, np.zeros(C, np.int64)
            lin.bias = None if not np.any(b) else b / (lin.sx * ws)
            spec = {"kind": "float", "steps": [[what, np.asarray(c, np.float64).reshape(-1).tolist(), reverse]
                                               for what, c, reverse in lin.affine]}
        lin.wname = f"{lin.node}_scale"
        n0 = len(self.g.nodes)
        out = op.build(self, lin, y, q, dt, q)
        node = next(m for m in self.g.nodes[n0:] if m.op == op.name)
        mirror = json.loads(self.g.meta.get("ort_affine", "{}"))
        mirror[node.name] = spec
        self.g.meta["ort_affine"] = json.dumps(mirror)
        return out

    def op_Add(self, n: ONode) -> None:
        if self._head_arith(n) or self.elementwise_table(n):
            return
        if self._const_affine(n, wconst_view=False):
            return
        a, b = n.inputs[0], n.inputs[1]
        va, vb = self.val(a), self.val(b)
        out = n.outputs[0]
        if isinstance(va, View) and isinstance(vb, View):
            lin = Lin("add", n.name, self.og.shape(out), [va, vb])
            lin.float_path = not (va.direct and vb.direct)   # no QLinearAdd fusion in onnxruntime
            self.vals[out] = lin
        elif isinstance(va, View) and isinstance(vb, WConst) or isinstance(va, WConst) and isinstance(vb, View):
            shape = self.og.shape(out)
            v = va if isinstance(va, View) else vb
            if shape is None or tuple(shape) != tuple(v.shape):
                raise Unsupported("the constant operand changes the shape")
            self.vals[out] = Lin("add", n.name, shape, [va, vb])
        elif isinstance(va, Lin) or isinstance(vb, Lin):
            lv, cn = (va, b) if isinstance(va, Lin) else (vb, a)
            c = self._const_real(cn)
            if c is None:
                raise Unsupported("adds two float values that are not quantized")
            self.vals[out] = self._add_bias(self._affine_lin(lv, "Add"), c)
        else:
            raise Unsupported("operands are not quantized tensors")

    def op_Sub(self, n: ONode) -> None:
        if self._head_arith(n) or self.elementwise_table(n):
            return
        if self._const_affine(n):
            return
        va = self.val(n.inputs[0])
        c = self._const_real(n.inputs[1])
        if not isinstance(va, Lin) or c is None:
            raise Unsupported("only a linear result minus a constant is supported")
        self.vals[n.outputs[0]] = self._add_bias(self._affine_lin(va, "Sub"), c, -1.0)

    def op_Mul(self, n: ONode) -> None:
        if self._head_arith(n) or self.elementwise_table(n):
            return
        if self._const_affine(n):
            return
        va, vb = self.val(n.inputs[0]), self.val(n.inputs[1])
        lv, cn = (va, n.inputs[1]) if isinstance(va, Lin) else (vb, n.inputs[0])
        c = self._const_real(cn)
        if c is None:
            raise Unsupported("only a linear result times a constant is supported")
        self.vals[n.outputs[0]] = self._scale(self._affine_lin(lv, "Mul"), c)

    def op_Div(self, n: ONode) -> None:
        if self._head_arith(n) or self.elementwise_table(n):
            return
        if self._const_affine(n):
            return
        va = self.val(n.inputs[0])
        c = self._const_real(n.inputs[1])
        if c is None or np.any(c == 0):
            raise Unsupported("only a linear result divided by a nonzero constant is supported")
        self.vals[n.outputs[0]] = self._scale(self._affine_lin(va, "Div"), 1.0 / c)

    def op_BatchNormalization(self, n: ONode) -> None:
        lin = self._affine_lin(self.val(n.inputs[0]), "BatchNormalization")
        ps = [self._const_real(n.inp(i)) for i in range(1, 5)]
        if any(p is None for p in ps) or (len(n.outputs) > 1 and any(n.outputs[1:])):
            raise Unsupported("BatchNormalization needs constant parameters (inference mode)")
        gamma, beta, mean, var = (p.reshape(-1) for p in ps)
        var_eps = var + float(n.attrs.get("epsilon", 1e-5))
        if not (np.all(np.isfinite(ps[0])) and np.all(np.isfinite(ps[1])) and np.all(np.isfinite(ps[2]))
                and np.all(np.isfinite(var_eps)) and np.all(var_eps > 0)):
            raise InvalidModelError("its parameters must be finite, with variance + epsilon > 0",
                                    file=self.og.file, node=n.name, op=n.op)
        k = gamma / np.sqrt(var_eps)
        shp = (1, -1) + (1,) * (len(lin.shape) - 2)
        lin = self._scale(lin, k.reshape(shp))
        self.vals[n.outputs[0]] = self._add_bias(lin, (beta - mean * k).reshape(shp))

    # -- float tail -------------------------------------------------------------------------------
    def op_Softmax(self, n: ONode) -> None:
        v = self.val(n.inputs[0])
        if not isinstance(v, View):
            raise Unsupported("Softmax must take a dequantized tensor")
        ir = self.check_view(v)
        rank = len(v.shape)
        axis = int(n.attrs.get("axis", -1 if self.og.opset >= 13 else 1))
        axis = axis + rank if axis < 0 else axis + (n.inputs[0] in self.og.batchless)
        if self.og.opset < 13 and axis != rank - 1:
            raise Unsupported("Softmax (opset < 13) over more than the last axis")
        f = self.emit("Dequantize", f"{n.name}_Dequantize", [ir], n.inputs[0], "float32", v.shape)
        out = self.emit("Softmax", n.name, [f], n.outputs[0], "float32", v.shape, attrs={"axis": axis})
        self.vals[n.outputs[0]] = Tail(out)
