"""Index-map handlers of the matcher: ONNX ops that only move values on a static shape (Pad,
Resize nearest, DepthToSpace/SpaceToDepth, Tile, Expand, Split), and ConvTranspose and linear
Resize (zero insertion, an index map, followed by an ordinary conv).

Each op's map is computed once, the same way for all of them: the ONNX op itself runs
(``onnx.reference``) on a tensor holding the element numbers 1..N in float64 (exact up to
2^53), with a Pad constant replaced by 0; output value ``v`` says the element comes from input
element ``v - 1``, or is the fill where ``v = 0``. Every ONNX mode (Resize's
coordinate_transformation_mode and nearest_mode, Pad's constant/reflect/edge/wrap) is then
right by construction, and the tests check the maps against onnxruntime. A linear Resize's
filter is read off the op the same way, from its matrix on unit vectors (``resize_filter``).

The IR op is ``IndexMap`` (swsc/ops/indexmap.py); Split becomes one ``Slice`` per output.
"""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from ..ops import window_out
from .onnxgraph import ONode
from .values import Lin, QRef, Unsupported, View, WConst


def onnx_index_maps(n: ONode, in_shape, consts: dict, opset: int, zero_inputs=(), zero_attrs=()) -> list:
    """The index map of each output of the one-input data-movement node ``n`` on ``in_shape``:
    (output shape, int64 indices with -1 for the fill). Inputs 1.. are the constants ``consts``
    (absent ones stay absent); inputs at ``zero_inputs`` and attributes in ``zero_attrs`` (a Pad
    constant) are replaced by 0, which marks the fill."""
    size = int(np.prod(in_shape))
    inits, inputs = [], ["x"]
    for k, name in enumerate(n.inputs[1:], 1):
        if not name:
            inputs.append("")
            continue
        data = np.zeros((), np.float64) if k in zero_inputs else np.asarray(consts[name])
        inits.append(numpy_helper.from_array(data, f"c{k}"))
        inputs.append(f"c{k}")
    attrs = {k: (0.0 if k in zero_attrs else v) for k, v in n.attrs.items()}
    outs = [f"y{k}" for k in range(len(n.outputs))]
    node = helper.make_node(n.op, inputs, outs, **attrs)
    graph = helper.make_graph([node], "index_map", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, in_shape)],
                              [helper.make_tensor_value_info(o, TensorProto.DOUBLE, None) for o in outs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    numbers = np.arange(1, size + 1, dtype=np.float64).reshape(in_shape)
    res = ReferenceEvaluator(model).run(None, {"x": numbers})
    return [(tuple(r.shape), np.rint(np.asarray(r, np.float64)).astype(np.int64).reshape(-1) - 1) for r in res]


@dataclasses.dataclass
class ResizeFilter:
    """One axis of a linear Resize as a filter on the input padded by replication, with zeros
    inserted between its samples: ``source[t]`` is the input index at position t (-1: an
    inserted zero), and output o is ``sum_m taps[m] / denom * u[o + m]``."""
    source: np.ndarray
    taps: np.ndarray          # int64
    denom: int


def resize_filter(n: ONode, consts: dict, opset: int, in_shape, out_len: int, axis: int) -> ResizeFilter:
    """The filter of linear Resize ``n`` along spatial axis ``axis`` (0: H, 1: W), read off the
    op: its matrix A (output x input, from ``onnx.reference`` on the unit vectors), then the
    taps of one middle output block, checked to rebuild all of A (edges included, through the
    replication padding) and to be integers over a small denominator."""
    L = int(in_shape[2 + axis])
    if out_len % L:
        raise Unsupported(f"linear Resize from {L} to {out_len} (an integer factor is a fixed filter)")
    s = out_len // L
    # A: resize L unit vectors (channel c holds unit vector c along the axis), the other spatial
    # axis of length 1 and unscaled (a linear resize is separable; tests/test_op_indexmap.py
    # checks the 2-D result against onnxruntime)
    eye = np.eye(L).reshape((1, L, L, 1) if axis == 0 else (1, L, 1, L))
    scales_k = 1 if opset < 11 else 2
    ins, inits = ["x"], []
    for k, name in enumerate(n.inputs[1:], 1):
        if not name:
            ins.append("")
            continue
        data = np.asarray(consts[name]).copy()
        if k == scales_k and data.size == 4:
            data = data.astype(np.float32)
            data[[0, 1, 3 - axis]] = 1
        elif k == 3 and data.size == 4:        # sizes
            data = np.array([1, L, out_len, 1] if axis == 0 else [1, L, 1, out_len], np.int64)
        inits.append(numpy_helper.from_array(data, f"c{k}"))
        ins.append(f"c{k}")
    graph = helper.make_graph([helper.make_node("Resize", ins, ["y"], **n.attrs)], "filter",
                              [helper.make_tensor_value_info("x", TensorProto.DOUBLE, None)],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    y = ReferenceEvaluator(model).run(None, {"x": eye})[0]
    if y.size != L * out_len:
        raise Unsupported(f"its output along axis {2 + axis} has {y.size // L} elements, not {out_len}")
    A = y.reshape(L, out_len).T                # [out, in]
    e = 2                                      # replication padding (linear reads one neighbour)
    k0 = L // 2
    rows = range(s * k0, s * k0 + s)
    pairs = [(s * (k + e) - o, A[o, k]) for o in rows for k in range(L) if A[o, k] != 0]
    off = min(m for m, _ in pairs)
    taps = np.zeros(max(m for m, _ in pairs) - off + 1)
    for m, a in pairs:
        taps[m - off] = a
    # u[t] = x_pad[(t + off) / s] where divisible (x_pad: the input padded by e, replicated)
    t = np.arange(out_len + len(taps) - 1) + off
    j = t // s
    source = np.where((t % s == 0) & (j >= 0) & (j < L + 2 * e), np.clip(j - e, 0, L - 1), -1)
    rebuilt = np.zeros_like(A)
    for o in range(out_len):
        for m, tap in enumerate(taps):
            if source[o + m] >= 0:
                rebuilt[o, source[o + m]] += tap
    if not np.allclose(rebuilt, A, rtol=0, atol=1e-9):
        raise Unsupported("its coordinate transformation is not one filter over the whole axis "
                          "(align_corners, a crop, or antialiasing)")
    for denom in range(1, 65):
        ints = np.rint(taps * denom)
        if np.allclose(ints, taps * denom, rtol=0, atol=1e-6):
            return ResizeFilter(source, ints.astype(np.int64), denom)
    raise Unsupported("its filter taps are not fractions with a small denominator")


def resize_inputs(n: ONode, consts: dict, opset: int, in_shape, out_shape) -> list:
    """Resize ``n``'s constant inputs 1.. as [values, dtype] (None where absent) for a run on any
    batch: ``sizes`` become the ``scales`` onnxruntime derives from them (out / in in float32)."""
    ins = [None if not name else [np.asarray(consts[name]).tolist(), str(np.asarray(consts[name]).dtype)]
           for name in n.inputs[1:]]
    if opset >= 11 and len(ins) == 3 and ins[2] is not None:
        scales = (np.asarray(out_shape, np.float32) / np.asarray(in_shape, np.float32)).astype(np.float32)
        ins = [ins[0], [scales.tolist(), "float32"]]
    return ins


def _by_reference(what: str, compute):
    """``compute()``, which runs the ONNX op through ``onnx.reference``; where that rejects the
    node's inputs, Unsupported naming ``what`` could not be evaluated."""
    try:
        return compute()
    except Unsupported:
        raise
    except Exception as e:
        raise Unsupported(f"cannot evaluate its {what} ({type(e).__name__}: {e})".splitlines()[0]) from e


def per_sample(index: np.ndarray, in_shape, out_shape) -> list[int]:
    """The map of one sample (the IR's ``index``), or Unsupported where it touches the batch axis
    (the IR's shapes are batch 1: an op that makes more than one sample of one moves values
    across samples)."""
    if len(out_shape) < 1 or out_shape[0] != 1 or in_shape[0] != 1:
        raise Unsupported(f"maps shape {list(in_shape)} to {list(out_shape)}: it touches the batch axis")
    return [int(v) for v in index]


class IndexOps:
    """Mixin of Matcher: needs val/og/g/vals/qof/materialize/emit and the structural mixin's _struct."""

    # -- the value of a mapped tensor -----------------------------------------------------------
    def _map_input_shape(self, n: ONode):
        shp = self.og.shape(n.inputs[0])
        if shp is None:
            raise Unsupported("input shape is not static")
        if n.inputs[0] in self.og.batchless:
            raise Unsupported("input has no batch axis (a batch-1 graph that dropped it)")
        return tuple(int(d) for d in shp)

    def _map_consts(self, n: ONode, optional=()) -> dict:
        """The constant inputs 1.. of ``n`` (a non-constant one is refused by position)."""
        out = {}
        for k, name in enumerate(n.inputs[1:], 1):
            if not name:
                continue
            if name in self.og.consts:
                out[name] = self.og.consts[name]
            elif k in optional:
                continue
            else:
                raise Unsupported(f"{n.op} input {k} ('{name}') is not a constant")
        return out

    def _index_output(self, n: ONode, out: str, in_shape, shape, index, fill=None) -> None:
        """Give ``out`` the value of index map ``index`` (per sample, -1 = fill) of ``n``'s first
        input. ``fill``: ('real', v) on a dequantized input, ('code', q) on an integer one."""
        want = self.og.shape(out)
        if want is not None and tuple(want) != tuple(shape):
            raise Unsupported(f"computed shape {list(shape)} differs from the inferred {list(want)}")
        idx = per_sample(index, in_shape, shape)
        has_fill = bool(idx) and min(idx) < 0
        if not has_fill and tuple(shape) == tuple(in_shape) and idx == list(range(len(idx))):
            self.vals[out] = self.val(n.inputs[0])     # the identity (a Split into one, zero pads)
            return
        attrs = {"index": idx}
        v = self.val(n.inputs[0])
        if isinstance(v, QRef):
            q = self.qof(v.ir)
            if has_fill:
                code = int(fill[1]) if fill[0] == "code" else self._code_of(float(q.scale), int(q.zero_point),
                                                                            float(fill[1]))
                if code is None or not q.lo <= code <= q.hi:
                    raise Unsupported(f"fill {fill[1]} is not a code in the tensor's range [{q.lo}, {q.hi}]")
                attrs["fill"] = code
            self.vals[out] = QRef(self.emit("IndexMap", n.name, [v.ir], out, self.g.tensors[v.ir].dtype, shape,
                                            copy.deepcopy(q), attrs))
            return
        if not isinstance(v, View):
            raise Unsupported(f"input is not a quantized tensor ({type(v).__name__})")
        real = code = None
        if has_fill:
            real = float(fill[1]) if fill[0] == "real" else float(v.scale) * (int(fill[1]) - v.zp)
            code = self._on_grid(v, real)
        if not has_fill or code is not None:
            if has_fill:
                attrs["fill"] = code
            self.vals[out] = View(v.scale, v.zp, shape, out, parents=[v], op="IndexMap", attrs=attrs,
                                  node=n.name, direct=v.direct)
        else:
            # off the input's grid or range: the QuantizeLinear after it fixes the grid, and the
            # input is requantized onto it first (IndexMap.build): Q(pad(x, v)) = pad(Q(x), Q(v))
            lin = Lin("indexmap", n.name, tuple(shape), [v], {"index": idx, "fill": real})
            lin.float_path = True      # onnxruntime runs DQ -> op -> Q in float
            self.vals[out] = lin

    def _on_grid(self, v: View, real: float):
        """The code of real value ``real`` on view ``v``'s grid where it lies exactly on it and
        inside the integer tensor's range, else None."""
        q = self.qof(self.materialize(v))
        if np.float32(q.scale) != np.float32(v.scale) or int(q.zero_point) != v.zp:
            return None
        code = self._code_of(v.scale, v.zp, real)
        return code if code is not None and q.lo <= code <= q.hi else None

    @staticmethod
    def _code_of(scale: float, zp: int, real: float):
        """The integer whose DequantizeLinear (float32) is exactly ``real``, or None."""
        code = int(np.rint(np.float32(real) / np.float32(scale))) + zp
        exact = np.float32(np.float32(code - zp) * np.float32(scale)) == np.float32(real)
        return code if exact else None

    def _index_op(self, n: ONode, zero_inputs=(), zero_attrs=(), fill=None, optional=()) -> None:
        in_shape = self._map_input_shape(n)
        consts = self._map_consts(n, optional)
        maps = _by_reference("index map", lambda: onnx_index_maps(n, in_shape, consts, self.og.opset,
                                                                  zero_inputs, zero_attrs))
        for out, (shape, index) in zip(n.outputs, maps):
            if out:
                self._index_output(n, out, in_shape, shape, index, fill)

    # -- ONNX handlers -----------------------------------------------------------------------
    def op_Pad(self, n: ONode) -> None:
        """constant (value a constant, float on a dequantized tensor or integer on a quantized one),
        reflect, edge, wrap; pads a constant input (opset 11+) or attribute."""
        mode = n.attrs.get("mode", "constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        fill, zin, zattr = None, (), ()
        if mode == "constant":
            if self.og.opset < 11:
                fill, zattr = ("real", float(n.attrs.get("value", 0.0))), ("value",)
            else:
                name = n.inp(2)
                c = self.vals.get(name) if name else None
                if not name:
                    fill = ("real", 0.0)
                elif name in self.og.consts:
                    data = np.asarray(self.og.consts[name]).reshape(-1)
                    fill = ("code" if data.dtype.kind in "iu" else "real", data[0])
                elif isinstance(c, WConst):            # DQ(int const): quantize_static's QDQ form
                    fill = ("real", float(np.asarray(c.real()).reshape(-1)[0]))
                else:
                    raise Unsupported(f"Pad constant_value '{name}' is not a constant")
                zin = (2,)
        self._index_op(n, zin, zattr, fill, optional=(2,))

    def op_Resize(self, n: ONode) -> None:
        mode = n.attrs.get("mode", "nearest")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode == "nearest":
            self._index_op(n)
        elif mode == "linear":
            self._linear_resize(n)
        else:
            raise Unsupported(f"mode {mode} (nearest, or linear by an integer factor)")

    def _linear_resize(self, n: ONode) -> None:
        """Linear Resize of H and W by integer factors (N and C kept): on the input padded by
        replication, a fixed filter with the factor as its stride (a depthwise ConvTranspose),
        lowered as ConvTranspose is: an IndexMap (edge padding and zero insertion in one) and a
        stride-1 depthwise QConv with the filter's taps as integer weights. The filter is read off
        the op itself (``resize_filter``), so every coordinate_transformation_mode that is
        shift-invariant is right by construction; the others are refused."""
        in_shape = self._map_input_shape(n)
        out = self.og.shape(n.outputs[0])
        if len(in_shape) != 4 or out is None or len(out) != 4 or tuple(out[:2]) != in_shape[:2]:
            raise Unsupported(f"linear Resize of {list(in_shape)} to {out}: only H and W of an NCHW tensor")
        consts = self._map_consts(n)
        filters = _by_reference("filter", lambda: [resize_filter(n, consts, self.og.opset, in_shape,
                                                                 int(out[2 + i]), i) for i in range(2)])
        v = self.val(n.inputs[0])
        codes = isinstance(v, QRef)   # QOperator: onnxruntime resizes the integer codes, truncating
        xv = self.view_of_q(v.ir, n.inputs[0]) if codes else self._xview(n.inputs[0])
        C, H, W = in_shape[1:]
        src = [f.source for f in filters]
        yy, xx = np.meshgrid(src[0], src[1], indexing="ij")
        plane = np.where((yy >= 0) & (xx >= 0), yy * W + xx, -1)
        index = np.where(plane[None] >= 0, np.arange(C)[:, None, None] * (H * W) + plane[None], -1).reshape(-1)
        up = n.outputs[0] + "__upsampled"
        self._index_output(dataclasses.replace(n, outputs=[up]), up, in_shape, (1, C) + plane.shape, index,
                           ("code", xv.zp))
        uv = self.vals[up]
        if isinstance(uv, QRef):
            uv = self.view_of_q(uv.ir, up)
        if not isinstance(uv, View):
            raise Unsupported("the inserted zeros are not codes of the input tensor")
        taps = np.outer(filters[0].taps, filters[1].taps)           # integer weights / (D_h D_w)
        denom = filters[0].denom * filters[1].denom
        bias = None
        if codes:
            q = self.qof(v.ir)
            if q.lo < 0:
                raise Unsupported("linear Resize of int8 codes (onnxruntime truncates toward zero, which a neuron "
                                  "cannot): quantize the model with uint8 activations, or in QDQ form")
            # truncation of a nonnegative value m + r/D is rint(value + (1 - D) / (2 D)): no ties;
            # in units of weights doubled (so the bias is an integer)
            if denom & (denom - 1):
                raise Unsupported(f"linear Resize of integer codes with taps in 1/{denom} (onnxruntime truncates "
                                  "their float32 interpolation, which is the exact floor only where the denominator "
                                  "is a power of two): use a factor of 2 or 4, or quantize in QDQ form")
            taps, denom, bias = 2 * taps, 2 * denom, np.full(C, 1.0 - denom)
        if np.abs(taps).max() > 127:
            raise Unsupported(f"the filter's taps need {int(np.abs(taps).max())} as an integer weight (at most 127)")
        w = np.ascontiguousarray(np.broadcast_to(taps, (C, 1) + taps.shape)).astype(np.int8)
        attrs = {"kernel": list(taps.shape), "strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1],
                 "group": C}
        sx, ws = self._sx(uv, np.float64(1.0 / denom))
        lin = Lin("conv", n.name, tuple(int(d) for d in out), [uv], attrs, w, f"{n.name}_filter", ws,
                  np.zeros((), np.int64), bias, sx)
        lin.float_path = not codes       # onnxruntime runs DQ -> Resize -> Q in float
        # how onnxruntime computes it, for the reference (swsc/requant.py ort_resize)
        lin.mirror = ("ort_resize", {
            "src": v.ir if codes else self.materialize(xv), "codes": codes, "opset": self.og.opset,
            "attrs": {k: a.decode() if isinstance(a, bytes) else a for k, a in n.attrs.items()},
            "inputs": resize_inputs(n, consts, self.og.opset, in_shape, out)})
        if codes:
            self.vals[n.outputs[0]] = QRef(self.emit_lin(lin, n.outputs[0], float(q.scale), int(q.zero_point),
                                                         self.g.tensors[v.ir].dtype))
        else:
            self.vals[n.outputs[0]] = lin

    def op_DepthToSpace(self, n: ONode) -> None:
        self._index_op(n)

    op_SpaceToDepth = op_Tile = op_Expand = op_DepthToSpace

    def op_Split(self, n: ONode) -> None:
        """Constant split sizes (input from opset 13, attribute before, or equal parts): each
        output a Slice of the axis."""
        shp = self._map_input_shape(n)
        axis = int(n.attrs.get("axis", 0))
        axis = axis + len(shp) if axis < 0 else axis
        if axis == 0:
            raise Unsupported("a split of the batch axis")
        outs = list(n.outputs)
        if n.inp(1):
            if n.inp(1) not in self.og.consts:
                raise Unsupported(f"Split input 1 ('{n.inp(1)}') is not a constant")
            sizes = [int(s) for s in np.asarray(self.og.consts[n.inp(1)]).reshape(-1)]
        elif "split" in n.attrs:
            sizes = [int(s) for s in n.attrs["split"]]
        else:
            parts = int(n.attrs.get("num_outputs", len(outs)))
            size = -(-shp[axis] // parts)               # ONNX: equal parts, the last one smaller
            sizes = [min(size, shp[axis] - k * size) for k in range(parts)]
        if len(sizes) != len(outs) or sum(sizes) != shp[axis] or min(sizes) < 0:
            raise Unsupported(f"split sizes {sizes} do not cover axis {axis} of {list(shp)} in {len(outs)} parts")
        start = 0
        for out, size in zip(outs, sizes):
            if out and size == 0:
                raise Unsupported("an empty split output")
            if out:
                starts = [0] * len(shp)
                starts[axis] = start
                if size == shp[axis]:
                    self.vals[out] = self.val(n.inputs[0])
                else:
                    self._struct(dataclasses.replace(n, outputs=[out]), "Slice",
                                 {"starts": starts, "steps": [1] * len(shp)})
            start += size

    def op_ConvTranspose(self, n: ONode) -> None:
        """2-D, any stride/dilation/pads/output_padding/group: the input with zeros inserted by the
        stride and padded by ``d (k - 1) - p`` (+ output_padding at the end), an IndexMap whose fill
        is the zero point, then a stride-1 conv with the kernel flipped and its channel axes
        swapped (``[C_in, C_out/g, kh, kw]`` -> ``[C_out, C_in/g, kh, kw]``)."""
        xv = self._xview(n.inputs[0])
        if n.inp(1) in self.og.consts:
            raise Unsupported(f"weight '{n.inp(1)}' is a float constant, not quantized: onnxruntime's quantize_static "
                              "leaves ConvTranspose in float in QOperator form, which no integer layer equals; "
                              "quantize the model in QDQ form (quant_format=QuantFormat.QDQ)")
        w = self._weight(n.inp(1))
        if w.data.ndim != 4 or len(xv.shape) != 4:
            raise Unsupported("only 2-D ConvTranspose is supported")
        if "output_shape" in n.attrs or n.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            raise Unsupported("output_shape / auto_pad SAME (explicit pads expected)")
        g = int(n.attrs.get("group", 1))
        cin, cog, kh, kw = w.data.shape
        C, H, W = xv.shape[1:]
        if cin != C or C % g:
            raise Unsupported(f"weight {list(w.data.shape)} does not fit input {list(xv.shape)} in {g} groups")
        k = list(n.attrs.get("kernel_shape", [kh, kw]))
        s = list(n.attrs.get("strides", [1, 1]))
        d = list(n.attrs.get("dilations", [1, 1]))
        p = list(n.attrs.get("pads", [0, 0, 0, 0]))
        op = list(n.attrs.get("output_padding", [0, 0]))
        if k != [kh, kw]:
            raise Unsupported(f"kernel_shape {k} differs from the weight's {[kh, kw]}")
        # the upsampled, padded input: begin pad d(k-1)-p_begin, end pad d(k-1)-p_end+output_padding
        # (negative pads crop)
        begin = [d[i] * (k[i] - 1) - p[i] for i in range(2)]
        end = [d[i] * (k[i] - 1) - p[i + 2] + op[i] for i in range(2)]
        size = [(n_ - 1) * s[i] + 1 + begin[i] + end[i] for i, n_ in enumerate((H, W))]
        if min(size) < 1:
            raise Unsupported("the output is empty")
        src = []
        for i, n_ in enumerate((H, W)):
            u = np.arange(size[i]) - begin[i]
            src.append(np.where((u % s[i] == 0) & (u >= 0) & (u // s[i] < n_), u // s[i], -1))
        yy, xx = np.meshgrid(src[0], src[1], indexing="ij")
        plane = np.where((yy >= 0) & (xx >= 0), yy * W + xx, -1)
        index = (np.arange(C)[:, None, None] * (H * W) + plane[None]).reshape(-1)
        index = np.where(np.broadcast_to(plane[None] >= 0, (C,) + plane.shape).reshape(-1), index, -1)
        ushape = (1, C) + tuple(size)
        up = n.outputs[0] + "__upsampled"
        self._index_output(dataclasses.replace(n, outputs=[up]), up, tuple(xv.shape), ushape, index, ("code", xv.zp))
        uv = self.vals[up]
        if not isinstance(uv, View):
            raise Unsupported("the inserted zeros are not codes of the input tensor (its DequantizeLinear has other "
                              "parameters than its QuantizeLinear, or its range excludes the zero point)")
        # the equivalent conv's weight: per group [C_in/g, C_out/g] -> [C_out/g, C_in/g], flipped
        data = w.data.reshape(g, cin // g, cog, kh, kw).transpose(0, 2, 1, 3, 4).reshape(g * cog, cin // g, kh, kw)
        data = np.ascontiguousarray(data[:, :, ::-1, ::-1])
        ws, wz = np.asarray(w.scale, np.float64), np.asarray(w.zp, np.int64)
        if w.axis == 1 and ws.size > 1:          # per output channel of each group
            ws, wz = np.tile(ws.reshape(-1), g), np.tile(wz.reshape(-1), g)
        elif w.axis not in (None, 1) and ws.size > 1:
            raise Unsupported(f"weight is quantized along axis {w.axis} (per-output-channel axis 1 expected)")
        wc = WConst(data, ws, wz, 0 if ws.size > 1 else None, w.name + "__conv")
        out = self.og.shape(n.outputs[0])
        if out is None:
            raise Unsupported("output shape is not static")
        if tuple(out[2:]) != tuple(window_out(size[i], k[i], 1, 0, 0, d[i]) for i in range(2)):
            raise Unsupported(f"output shape {list(out)} differs from the computed one")
        attrs = {"kernel": k, "strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": d, "group": g}
        sx, ws = self._sx(uv, wc.scale)
        lin = Lin("conv", n.name, tuple(out), [uv], attrs, wc.data, wc.name, ws, wc.zp, None, sx)
        lin.float_path = True         # onnxruntime has no quantized ConvTranspose kernel: float
        lin.bias = self._bias_acc(n.inp(2), lin, g * cog)
        self.vals[n.outputs[0]] = lin
