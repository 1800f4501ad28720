"""Match QDQ clusters to canonical quantized IR ops.

Every float tensor of the (lifted, folded) ONNX graph gets a *value*:

* ``View``   - exactly ``DequantizeLinear(q)`` of an integer IR tensor (possibly
  through float structural ops such as MaxPool/Flatten, which commute with DQ);
* ``Lin``    - the real result of a linear op on views (Conv, Gemm, MatMul, pools,
  Add, Concat), with per-channel affine post-ops and Relu/Clip folded in; it is
  emitted as a canonical op when a QuantizeLinear fixes its output quantization;
* ``Tail``   - a float tail value (Softmax of a dequantized tensor);
* ``WConst`` - ``DequantizeLinear`` of an integer constant (weights, biases,
  quantized constant operands).

Integer ONNX tensors (QuantizeLinear outputs, structural ops on them) map to IR
tensors (``QRef``). ``SUPPORTED`` lists every op the front-end accepts.
"""
from __future__ import annotations

import copy

import numpy as np

from ..errors import InvalidModelError, NotQuantizedError, UnsupportedOpError
from ..ir import INT_RANGES, Graph, Quant, Tensor
from .emit import Emitter
from .onnxgraph import OGraph, ONode
from .values import BAD, Lin, QRef, Tail, TailQ, Unsupported, View, WConst, _pads2d, _scalar

#: op -> the forms accepted (docs/frontend.md lists the same table)
SUPPORTED: dict[str, str] = {
    "QuantizeLinear": "per-tensor activations (graph input -> Quantize; after a linear op -> its output quant)",
    "DequantizeLinear": "of integer tensors (activations) and integer constants (weights, biases, constant operands)",
    "Conv": "2-D, any group/stride/dilation/pads/auto_pad, DQ(int8/uint8) weights per-tensor or per-output-channel",
    "Gemm": "transA=0, transB 0/1, alpha/beta, on [1,K] inputs",
    "MatMul": "[1,K] x DQ(const [K,M])",
    "AveragePool": "2-D, ceil_mode giving the floor shape, count_include_pad 0/1",
    "GlobalAveragePool": "4-D",
    "ReduceMean": "over H,W of a 4-D tensor, also as two ReduceMean(axes=[-1]) in a row",
    "Add": "two quantized tensors (residual), a quantized constant operand, or a constant after a linear op (-> bias)",
    "Sub": "a constant after a linear op (-> bias)",
    "Mul": "a constant (per-tensor or per-channel) after a linear op (-> weight scale)",
    "Div": "a constant after a linear op (-> weight scale)",
    "BatchNormalization": "after a linear op (folded into weight scale and bias)",
    "Relu": "before a QuantizeLinear (narrows the output range)",
    "Clip": "constant bounds, before a QuantizeLinear or directly on a quantized tensor (7-bit QAT)",
    "Concat": "of quantized tensors (requantized per input where scales differ)",
    "MaxPool": "2-D, on quantized tensors or between DQ and Q",
    "Reshape": "static target shape", "Flatten": "", "Squeeze": "", "Unsqueeze": "",
    "Transpose": "keeps the batch axis", "Identity": "", "Cast": "no-op casts (Q -> Cast -> DQ)",
    "Softmax": "float tail on a dequantized tensor",
    "Constant": "folded", "Shape": "of static shapes (folded)", "Gather": "constant (folded)",
    "ConstantOfShape": "constant (folded)",
    "QLinearConv": "lifted to QDQ", "QLinearMatMul": "lifted to QDQ",
    "MatMulInteger": "constant weights, lifted", "ConvInteger": "constant weights, lifted",
    "com.microsoft.QGemm": "lifted to QDQ", "com.microsoft.QLinearAdd": "lifted to QDQ",
    "com.microsoft.QLinearAveragePool": "channels_last=0, lifted", "com.microsoft.QLinearGlobalAveragePool":
    "channels_last=0, lifted", "com.microsoft.QLinearConcat": "lifted", "com.microsoft.QLinearSoftmax":
    "lifted (the output quantization of the float tail is dropped)",
}

STRUCTURAL = ("MaxPool", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat")


class Matcher(Emitter):
    def __init__(self, og: OGraph, in_shapes: dict[str, tuple]):
        self.og = og
        self.in_shapes = in_shapes
        self.g = Graph(og.name)
        self.vals: dict[str, object] = {}
        self.bad: list[tuple[str, str, str]] = []
        self.node_names: set[str] = set()
        self.renames: dict[str, str] = {}
        self.float_nodes: list[str] = []
        self._float_pending = False
        self.consumers = og.consumer_map()

    # -- IR helpers ------------------------------------------------------------------
    def nname(self, base: str) -> str:
        name, i = base, 1
        while name in self.node_names:
            name = f"{base}_{i}"
            i += 1
        self.node_names.add(name)
        return name

    def tname(self, base: str) -> str:
        name, i = base, 1
        while name in self.g.tensors:
            name = f"{base}_{i}"
            i += 1
        return name

    def emit(self, op, name, inputs, out, dtype, shape, quant=None, attrs=None) -> str:
        out = self.tname(out)
        self.g.add_tensor(Tensor(out, dtype, shape, quant=quant))
        node = self.g.add_node(op, self.nname(name), inputs, [out], attrs or {})
        if self._float_pending and op in ("QConv", "QDense", "QAvgPool"):
            self.float_nodes.append(node.name)
        return out

    def const(self, base, data, quant=None) -> str:
        return self.g.add_const(self.tname(base), data, quant).name

    def qof(self, ir: str) -> Quant:
        return self.g.tensors[ir].quant

    # -- values ----------------------------------------------------------------------
    def cval(self, name: str):
        """A constant input: numpy array, or None if not constant."""
        if not name:
            return None
        if name in self.og.consts:
            return self.og.consts[name]
        return None

    def materialize(self, v: View, name: str | None = None) -> str:
        if v.ir is not None:
            return v.ir
        ins = [self.materialize(p) for p in v.parents]
        q0 = self.qof(ins[0])
        q = copy.deepcopy(q0)
        if v.op == "Concat":
            q.lo = min(self.qof(i).lo for i in ins)
            q.hi = max(self.qof(i).hi for i in ins)
        v.ir = self.emit(v.op, v.node, ins, name or v.fname, self.g.tensors[ins[0]].dtype,
                         v.shape, q, v.attrs)
        return v.ir

    def view_of_q(self, ir: str, fname: str) -> View:
        q = self.qof(ir)
        return View(float(q.scale), int(q.zero_point),
                    self.g.tensors[ir].shape, fname, ir=ir)

    def check_view(self, v: View) -> str:
        """Materialize a view whose params must equal its integer tensor's quant."""
        ir = self.materialize(v)
        q = self.qof(ir)
        if np.float32(q.scale) != np.float32(v.scale) or int(q.zero_point) != v.zp:
            raise Unsupported(f"DequantizeLinear of '{ir}' uses scale/zero point ({v.scale}, {v.zp}) "
                              f"different from its QuantizeLinear ({float(q.scale)}, {int(q.zero_point)})")
        return ir

    # -- entry -----------------------------------------------------------------------
    def run(self) -> Graph:
        og = self.og
        g = self.g
        for name in og.inputs:
            g.add_tensor(Tensor(name, "float32", self.in_shapes[name]))
            g.inputs.append(name)
            self.vals[name] = "input"
        for n in og.nodes:
            if any(i and self.vals.get(i) is BAD for i in n.inputs):
                # downstream of a reported node: still report an op that is unsupported outright
                if n.domain not in ("", "ai.onnx") or not hasattr(self, "op_" + n.op):
                    self.bad.append((n.name, n.op if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op}",
                                     f"operator {n.op} is not supported"))
                for o in n.outputs:
                    self.vals[o] = BAD
                continue
            try:
                try:
                    self.handle(n)
                except (ValueError, IndexError, KeyError, TypeError, ArithmeticError) as e:
                    raise InvalidModelError(f"malformed node ({type(e).__name__}: {e})".splitlines()[0],
                                            file=og.file, node=n.name, op=n.op) from e
            except Unsupported as e:
                self.bad.append((n.name, n.op if not n.domain or n.domain == "ai.onnx" else f"{n.domain}.{n.op}",
                                 str(e)))
                for o in n.outputs:
                    self.vals[o] = BAD
        outs = []
        for o in og.outputs:
            v = self.vals.get(o)
            if v is BAD:
                continue
            try:
                outs.append(self.output(o, v))
            except Unsupported as e:
                p = og.producer(o)
                self.bad.append((p.name if p else o, p.op if p else "output", str(e)))
        if self.bad:
            raise UnsupportedOpError(self.bad, file=og.file)
        g.outputs = outs
        if self.float_nodes:
            import json
            g.meta["ort_float_nodes"] = json.dumps(sorted(set(self.float_nodes)))
        self.finish()
        return g

    def output(self, o: str, v) -> str:
        if isinstance(v, View):
            ir = self.check_view(v)
            return self.emit("Dequantize", f"{o}_Dequantize", [ir], o, "float32", v.shape)
        if isinstance(v, Tail):
            if v.ir != o:
                self.renames[v.ir] = o
            return v.ir
        if isinstance(v, QRef):
            if v.ir != o:
                self.renames[v.ir] = o
            return v.ir
        if isinstance(v, Lin):
            raise Unsupported(f"graph output '{o}' is computed in float without a QuantizeLinear")
        raise Unsupported(f"graph output '{o}' is not a quantized or dequantized tensor")

    def finish(self) -> None:
        g = self.g
        for old, new in self.renames.items():
            if old not in g.tensors or new in g.tensors:
                continue
            t = g.tensors.pop(old)
            t.name = new
            g.tensors[new] = t
            for n in g.nodes:
                n.inputs = [new if i == old else i for i in n.inputs]
                n.outputs = [new if i == old else i for i in n.outputs]
            g.outputs = [new if i == old else i for i in g.outputs]
        g.prune()
        g.sort()

    # -- dispatch --------------------------------------------------------------------------
    def handle(self, n: ONode) -> None:
        if n.domain not in ("", "ai.onnx"):
            raise Unsupported(f"operator {n.domain}.{n.op} is not supported")
        h = getattr(self, "op_" + n.op, None)
        if h is None:
            raise Unsupported(f"operator {n.op} is not supported")
        h(n)

    def val(self, name: str):
        if name in self.og.consts:
            return self.og.consts[name]
        if name not in self.vals:
            raise Unsupported(f"input '{name}' has no value")
        return self.vals[name]

    # -- quantize / dequantize ---------------------------------------------------------------
    def qparams(self, n: ONode):
        s = self.cval(n.inp(1))
        z = self.cval(n.inp(2)) if n.inp(2) else np.uint8(0)
        if s is None or (n.inp(2) and z is None):
            raise Unsupported("scale and zero point must be constants")
        s, z = np.asarray(s), np.asarray(z)
        if s.dtype.kind != "f" or not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise InvalidModelError("scale must be positive and finite", file=self.og.file, node=n.name, op=n.op)
        if z.dtype.kind not in "iu" or (s.size != z.size and z.size != 1):
            raise InvalidModelError(f"zero point of type {z.dtype} / shape {list(z.shape)} does not fit scale "
                                    f"{list(s.shape)}", file=self.og.file, node=n.name, op=n.op)
        return s, z

    def op_QuantizeLinear(self, n: ONode) -> None:
        s, z = self.qparams(n)
        if s.size != 1 or z.size != 1:
            raise Unsupported("per-axis quantization of an activation is not supported")
        dt = str(z.dtype)
        if dt not in ("uint8", "int8"):
            raise Unsupported(f"quantized type {dt} is not supported (need uint8 or int8)")
        lo, hi = INT_RANGES[dt]
        s, z = float(np.float32(_scalar(s))), int(_scalar(z))
        x = n.inputs[0]
        v = self.val(x)
        y = n.outputs[0]
        if isinstance(v, str) and v == "input":
            q = Quant(s, z, None, lo, hi)
            ir = self.emit("Quantize", n.name, [x], y, dt, self.in_shapes[x], q)
            self.vals[y] = QRef(ir)
        elif isinstance(v, Lin):
            self.vals[y] = QRef(self.emit_lin(v, y, s, z, dt))
        elif isinstance(v, View):
            same = np.float32(v.scale) == np.float32(s) and v.zp == z
            if same:
                ir = self.materialize(v, name=y)
                self.vals[y] = QRef(ir)
            else:
                lin = Lin("add", n.name, v.shape, [v])
                self.vals[y] = QRef(self.emit_lin(lin, y, s, z, dt))
        elif isinstance(v, Tail):
            self.vals[y] = TailQ(v.ir)
        else:
            raise Unsupported(f"input '{x}' is not produced by a supported quantized op")

    def op_DequantizeLinear(self, n: ONode) -> None:
        s, z = self.qparams(n)
        x = n.inputs[0]
        y = n.outputs[0]
        if x in self.og.consts:
            data = self.og.consts[x]
            if data.dtype.kind not in "iu":
                raise Unsupported(f"constant '{x}' is not an integer tensor")
            axis = n.attrs.get("axis", 1) if s.size > 1 else None
            if axis is not None and axis < 0:
                axis += data.ndim
            self.vals[y] = WConst(data, s.astype(np.float32).reshape(-1) if s.size > 1 else s.astype(np.float32),
                                  z.reshape(-1) if z.size > 1 else z, axis, x)
            return
        v = self.val(x)
        if s.size != 1:
            raise Unsupported("per-axis dequantization of an activation is not supported")
        if isinstance(v, QRef):
            q = self.qof(v.ir)
            self.vals[y] = View(float(np.float32(_scalar(s))), int(_scalar(z)) if z.size else int(q.zero_point),
                                self.g.tensors[v.ir].shape, y, ir=v.ir, direct=True)
        elif isinstance(v, TailQ):
            self.vals[y] = Tail(v.ir)
        else:
            raise Unsupported(f"input '{x}' is not a quantized tensor")

    # -- structural -------------------------------------------------------------------------
    def _struct(self, n: ONode, irop: str, attrs: dict, parents_names=None) -> None:
        names = parents_names or [n.inputs[0]]
        vs = [self.val(i) for i in names]
        out = n.outputs[0]
        shape = self.og.shape(out)
        if shape is None:
            raise Unsupported(f"shape of '{out}' is not static")
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
            direct = all(v.direct for v in vs) and n.op in ("MaxPool", "Reshape", "Transpose", "Squeeze",
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
        if axis == 0:
            raise Unsupported("concat along the batch axis")
        self._struct(n, "Concat", {"axis": axis}, [i for i in n.inputs if i])

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
        k, s, p, d = self._pool_geom(n, self.og.shape(n.inputs[0]))
        p = self._ceil_pads(n, k, s, p, d, allow=True)
        self._struct(n, "MaxPool", {"kernel": k, "strides": s, "pads": p, "dilations": d})

    def _ceil_pads(self, n, k, s, p, d, allow):
        out = self.og.shape(n.outputs[0])
        ins = self.og.shape(n.inputs[0])
        p = list(p)
        if out is None:
            raise Unsupported("output shape is not static")
        for i in range(2):
            floor = (ins[2 + i] + p[i] + p[i + 2] - d[i] * (k[i] - 1) - 1) // s[i] + 1
            if floor != out[2 + i]:
                if not allow:
                    raise Unsupported("ceil_mode=1 changes the output size (not supported for average pooling)")
                p[i + 2] += (out[2 + i] - floor) * s[i]
        return p

    def op_Identity(self, n: ONode) -> None:
        self.vals[n.outputs[0]] = self.val(n.inputs[0])

    def op_Cast(self, n: ONode) -> None:
        from onnx import TensorProto
        v = self.val(n.inputs[0])
        to = n.attrs.get("to")
        if isinstance(v, QRef):
            want = {TensorProto.UINT8: "uint8", TensorProto.INT8: "int8"}.get(to)
            if want != self.g.tensors[v.ir].dtype:
                raise Unsupported("Cast changes the integer type of a quantized tensor")
        elif to != TensorProto.FLOAT:
            raise Unsupported("Cast of a float value to another type")
        self.vals[n.outputs[0]] = v

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
                self.renames[v.ir] = n.outputs[0]
                self.vals[n.outputs[0]] = v
            else:
                qn = Quant(q.scale, q.zero_point, None, nlo, nhi)
                ir = self.emit("QAdd", n.name, [v.ir], n.outputs[0], t.dtype, t.shape, qn)
                self.vals[n.outputs[0]] = QRef(ir)
            return
        self._clamp(n)

    def _clamp(self, n: ONode) -> None:
        v = self.val(n.inputs[0])
        lo, hi = self._clip_bounds(n)
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

    # -- linear ops ----------------------------------------------------------------------------------
    def _xview(self, name: str) -> View:
        v = self.val(name)
        if isinstance(v, View):
            return v
        if isinstance(v, str) and v == "input":
            raise Unsupported(f"input '{name}' is used in float (no QuantizeLinear/DequantizeLinear before it)")
        if isinstance(v, np.ndarray):
            raise Unsupported(f"input '{name}' is a constant")
        raise Unsupported(f"input '{name}' is not a dequantized tensor")

    def _weight(self, name: str) -> WConst:
        if not name:
            raise Unsupported("weight input is missing")
        if name in self.og.consts:
            raise Unsupported(f"weight '{name}' is a float constant, not quantized (DequantizeLinear of an "
                              "int8/uint8 constant expected)")
        v = self.vals.get(name)
        if not isinstance(v, WConst):
            raise Unsupported(f"weight '{name}' is not a constant (DequantizeLinear of an integer initializer "
                              "expected)")
        if v.data.dtype not in (np.int8, np.uint8):
            raise Unsupported(f"weight '{name}' has type {v.data.dtype} (int8/uint8 expected)")
        return v

    def _sx(self, xv: View, ws):
        """Input scale of the IR tensor, and the weight scale absorbing a differing DQ scale."""
        ir = self.materialize(xv)
        q = self.qof(ir)
        if int(q.zero_point) != xv.zp:
            raise Unsupported("DequantizeLinear zero point differs from its QuantizeLinear's")
        sx = float(q.scale)
        if np.float32(sx) != np.float32(xv.scale):
            ws = ws * (xv.scale / sx)
        return sx, ws

    def _bias_acc(self, name: str, lin: Lin, M: int):
        if not name:
            return None
        bv = self.val(name)
        if isinstance(bv, WConst):
            real = bv.real().reshape(-1)
            exact = bv.data.dtype == np.int32 and not np.any(bv.zp) and np.allclose(
                np.broadcast_to(bv.scale.astype(np.float64), (M,)),
                np.broadcast_to(lin.sx * lin.ws, (M,)), rtol=1e-6, atol=0)
            if exact:
                return np.broadcast_to(bv.data.astype(np.float64).reshape(-1), (M,)).copy()
            lin.float_path = True
        elif isinstance(bv, np.ndarray) and bv.dtype.kind == "f":
            real = bv.astype(np.float64).reshape(-1)
            xv = lin.x[0]
            if bv.ndim == 1 and bv.size == M and xv.direct:
                # onnxruntime's WeightBiasQuantization turns a float bias of a Conv/Gemm on a
                # DequantizeLinear input into int32: Round(fp32(b) / fp32(s_x * s_w)).
                sxw = (np.float32(xv.scale) * np.broadcast_to(lin.ws, (M,)).astype(np.float32)).astype(np.float32)
                return np.rint(bv.astype(np.float32) / sxw).astype(np.float64)
            lin.float_path = True
        else:
            raise Unsupported(f"bias '{name}' is not a constant")
        real = np.broadcast_to(real, (M,))
        return real / (lin.sx * np.broadcast_to(lin.ws, (M,)))

    def op_Conv(self, n: ONode) -> None:
        xv = self._xview(n.inputs[0])
        w = self._weight(n.inp(1))
        if w.data.ndim != 4:
            raise Unsupported("only 2-D convolution is supported")
        M = w.data.shape[0]
        if w.axis not in (None, 0):
            raise Unsupported(f"weight is quantized along axis {w.axis} (per-output-channel axis 0 expected)")
        k = list(n.attrs.get("kernel_shape", w.data.shape[2:]))
        k, s, p, d = self._pool_geom(n, xv.shape, k)
        attrs = {"kernel": k, "strides": s, "pads": p, "dilations": d, "group": int(n.attrs.get("group", 1))}
        ws = w.scale.astype(np.float64)
        sx, ws = self._sx(xv, ws)
        lin = Lin("conv", n.name, self.og.shape(n.outputs[0]), [xv], attrs, w.data, w.name, ws,
                  w.zp.astype(np.int64), None, sx)
        lin.float_path = not xv.direct
        lin.bias = self._bias_acc(n.inp(2), lin, M)
        if lin.shape is None:
            raise Unsupported("output shape is not static")
        self.vals[n.outputs[0]] = lin

    def _dense(self, n: ONode, xname, wname, trans_b: bool, alpha=1.0, cname="", beta=1.0) -> None:
        xv = self.val(xname)
        if isinstance(xv, Lin) and xv.kind in ("pool", "mean") and not xv.clamped and len(xv.shape) == 2:
            return self._pool_dense(n, xv, wname, trans_b, alpha, cname, beta)
        xv = self._xview(xname)
        if len(xv.shape) != 2:
            raise Unsupported(f"input has shape {list(xv.shape)}; only [1, K] inputs are supported")
        w = self._weight(wname)
        if w.data.ndim != 2:
            raise Unsupported("weight must be 2-D")
        data, axis = w.data, w.axis
        if not trans_b:          # [K, M] -> [M, K]
            data = data.T
            axis = None if axis is None else 1 - axis
        if axis not in (None, 0):
            raise Unsupported("weight is quantized per input channel (per output channel expected)")
        M = data.shape[0]
        if data.shape[1] != xv.shape[1] or self.og.shape(n.outputs[0]) is None:
            raise Unsupported(f"input {list(xv.shape)} does not fit weight {list(w.data.shape)}")
        ws = w.scale.astype(np.float64) * alpha
        sx, ws = self._sx(xv, ws)
        lin = Lin("dense", n.name, self.og.shape(n.outputs[0]), [xv], {}, np.ascontiguousarray(data),
                  w.name, ws, w.zp.astype(np.int64), None, sx)
        lin.float_path = not xv.direct
        if cname:
            b = self._bias_acc(cname, lin, M)
            lin.bias = None if b is None else b * beta
        self.vals[n.outputs[0]] = lin

    def _pool_dense(self, n, pl: Lin, wname, trans_b, alpha, cname, beta):
        """GlobalAveragePool -> Flatten -> Gemm in float (no Q between): one dense layer with
        the weight repeated over the pooled plane and its scale divided by the plane size."""
        xv = pl.x[0]
        if pl.kind == "mean" and set(pl.reduced) != {2, 3} or pl.kind == "pool" and not pl.attrs.get("global"):
            raise Unsupported("a pooled value feeds a dense layer without QuantizeLinear")
        w = self._weight(wname)
        data, axis = (w.data, w.axis) if trans_b else (w.data.T, None if w.axis is None else 1 - w.axis)
        if axis not in (None, 0):
            raise Unsupported("weight is quantized per input channel")
        C, H, W = xv.shape[1:]
        hw = H * W
        data = np.repeat(data, hw, axis=1)
        flat = View(xv.scale, xv.zp, (1, C * hw), pl.node + "_flat", parents=[xv], op="Reshape",
                    attrs={"shape": [1, C * hw]}, node=pl.node + "_flatten")
        ws = w.scale.astype(np.float64) * alpha / hw
        sx, ws = self._sx(flat, ws)
        lin = Lin("dense", n.name, self.og.shape(n.outputs[0]), [flat], {}, data, w.name, ws,
                  w.zp.astype(np.int64), None, sx)
        lin.float_path = True
        if cname:
            b = self._bias_acc(cname, lin, data.shape[0])
            lin.bias = None if b is None else b * beta
        self.vals[n.outputs[0]] = lin

    def op_Gemm(self, n: ONode) -> None:
        if n.attrs.get("transA", 0):
            raise Unsupported("transA=1 is not supported")
        self._dense(n, n.inputs[0], n.inp(1), bool(n.attrs.get("transB", 0)), float(n.attrs.get("alpha", 1.0)),
                    n.inp(2), float(n.attrs.get("beta", 1.0)))

    def op_MatMul(self, n: ONode) -> None:
        self._dense(n, n.inputs[0], n.inp(1), False)

    def op_AveragePool(self, n: ONode) -> None:
        xv = self._xview(n.inputs[0])
        k, s, p, d = self._pool_geom(n, xv.shape)
        if d != [1, 1]:
            raise Unsupported("dilated average pooling is not supported")
        p = self._ceil_pads(n, k, s, p, d, allow=False)
        attrs = {"kernel": k, "strides": s, "pads": p, "count_include_pad": int(n.attrs.get("count_include_pad", 0))}
        self.vals[n.outputs[0]] = Lin("pool", n.name, self.og.shape(n.outputs[0]), [xv], attrs)

    def op_GlobalAveragePool(self, n: ONode) -> None:
        xv = self._xview(n.inputs[0])
        if len(xv.shape) != 4:
            raise Unsupported("needs a 4-D input")
        attrs = {"kernel": list(xv.shape[2:]), "global": True}
        lin = Lin("pool", n.name, self.og.shape(n.outputs[0]), [xv], attrs)
        lin.float_path = n.name not in self.og.lifted      # no QDQ fusion for GlobalAveragePool
        self.vals[n.outputs[0]] = lin

    def op_ReduceMean(self, n: ONode) -> None:
        v = self.val(n.inputs[0])
        axes = n.attrs.get("axes")
        if axes is None and n.inp(1):
            c = self.cval(n.inp(1))
            if c is None:
                raise Unsupported("axes must be constant")
            axes = [int(a) for a in np.asarray(c).reshape(-1)]
        keep = int(n.attrs.get("keepdims", 1))
        if isinstance(v, View):
            if len(v.shape) != 4:
                raise Unsupported("needs a 4-D input")
            lin = Lin("mean", n.name, v.shape, [v], {}, reduced=(), dims=(0, 1, 2, 3), float_path=True)
        elif isinstance(v, Lin) and v.kind == "mean" and not v.clamped:
            lin = copy.copy(v)
        else:
            raise Unsupported("input is not a dequantized tensor")
        rank = len(lin.dims)
        if axes is None:
            axes = list(range(rank))
        axes = [a + rank if a < 0 else a for a in axes]
        orig = tuple(lin.dims[a] for a in axes)
        lin.reduced = tuple(sorted(set(lin.reduced) | set(orig)))
        if not keep:
            lin.dims = tuple(dd for i, dd in enumerate(lin.dims) if i not in axes)
        lin.shape = self.og.shape(n.outputs[0])
        if lin.shape is None or not set(lin.reduced) <= {2, 3}:
            raise Unsupported(f"only the mean over H,W of a 4-D tensor is supported (axes {axes})")
        self.vals[n.outputs[0]] = lin

    # -- affine post-ops -------------------------------------------------------------------------
    def _per_channel(self, c, lin: Lin):
        c = np.asarray(c, np.float64)
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

    def op_Add(self, n: ONode) -> None:
        a, b = n.inputs[0], n.inputs[1]
        va, vb = self.val(a), self.val(b)
        out = n.outputs[0]
        if isinstance(va, View) and isinstance(vb, View):
            self.vals[out] = Lin("add", n.name, self.og.shape(out), [va, vb])
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
        va = self.val(n.inputs[0])
        c = self._const_real(n.inputs[1])
        if not isinstance(va, Lin) or c is None:
            raise Unsupported("only a linear result minus a constant is supported")
        self.vals[n.outputs[0]] = self._add_bias(self._affine_lin(va, "Sub"), c, -1.0)

    def op_Mul(self, n: ONode) -> None:
        va, vb = self.val(n.inputs[0]), self.val(n.inputs[1])
        lv, cn = (va, n.inputs[1]) if isinstance(va, Lin) else (vb, n.inputs[0])
        c = self._const_real(cn)
        if c is None:
            raise Unsupported("only a linear result times a constant is supported")
        self.vals[n.outputs[0]] = self._scale(self._affine_lin(lv, "Mul"), c)

    def op_Div(self, n: ONode) -> None:
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
        k = gamma / np.sqrt(var + float(n.attrs.get("epsilon", 1e-5)))
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
        axis = axis + rank if axis < 0 else axis
        if self.og.opset < 13 and axis != rank - 1:
            raise Unsupported("Softmax (opset < 13) over more than the last axis")
        f = self.emit("Dequantize", f"{n.name}_Dequantize", [ir], n.inputs[0], "float32", v.shape)
        out = self.emit("Softmax", n.name, [f], n.outputs[0], "float32", v.shape, attrs={"axis": axis})
        self.vals[n.outputs[0]] = Tail(out)

def check_quantized(og: OGraph) -> None:
    qs = [n for n in og.nodes if n.op == "QuantizeLinear" and n.inputs and n.inputs[0] not in og.consts]
    if not qs:
        ops = sorted({n.op for n in og.nodes})
        raise NotQuantizedError(
            f"the model is not quantized: no QuantizeLinear/QLinear* node acts on an activation "
            f"(ops: {', '.join(ops[:12])}{'...' if len(ops) > 12 else ''})", file=og.file,
            hint="quantize it first, e.g. onnxruntime.quantization.quantize_static (QDQ or QOperator)")


def match(og: OGraph, in_shapes: dict[str, tuple]) -> Graph:
    check_quantized(og)
    return Matcher(og, in_shapes).run()
