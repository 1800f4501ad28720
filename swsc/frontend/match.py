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

This module holds the ``Matcher`` core (values, dispatch to ``op_<OnnxOp>``,
Quantize/DequantizeLinear); the other handlers are mixins, one file per kind of op:
``match_structural.py`` (ops that commute with DQ), ``match_linear.py`` (ops that start
a ``Lin``), ``match_postops.py`` (Relu/Clip, affine constants, Softmax), ``match_unary.py``
(elementwise nonlinearities between DQ and Q, as tables), and
``emit.py`` emits a ``Lin`` as canonical IR.
"""
from __future__ import annotations

import copy
import json

import numpy as np

from ..errors import InvalidModelError, NotQuantizedError, UnsupportedOpError
from ..ir import ACTIVATION_DTYPES, INT_RANGES, Graph, Quant, Tensor, fresh_name
from .emit import Emitter
from .match_index import IndexOps
from .match_linear import LinearOps
from .match_postops import PostOps
from .match_structural import StructuralOps
from .match_unary import UnaryOps
from .onnxgraph import OGraph, ONode
from .values import BAD, Head, Lin, QRef, Tail, TailQ, Unsupported, View, WConst, _scalar

#: op -> the forms accepted (docs/frontend.md lists the same table)
SUPPORTED: dict[str, str] = {
    "QuantizeLinear": "per-tensor uint8/int8 or uint16/int16 activations (graph input or float head -> Quantize; "
                      "after a linear op -> its output quant)",
    "DequantizeLinear": "of integer tensors (activations) and integer constants (weights, biases, constant operands)",
    "Conv": "2-D or 1-D (as 2-D with a unit H axis), any group/stride/dilation/pads/auto_pad, DQ(int8/uint8) weights "
            "per-tensor or per-output-channel",
    "Gemm": "transA=0, transB 0/1, alpha/beta, on [1,K] inputs",
    "MatMul": "[1,K] x DQ(const [K,M])",
    "AveragePool": "2-D or 1-D, ceil_mode giving the floor shape, count_include_pad 0/1",
    "GlobalAveragePool": "4-D or 3-D",
    "ReduceMean": "over H,W of a 4-D tensor, also as two ReduceMean(axes=[-1]) in a row",
    "Add": "two quantized tensors (residual), a quantized constant operand, a constant after a linear op (-> bias), "
           "a float constant on a dequantized tensor (-> depthwise 1x1 QConv), or a float constant on the float input "
           "(float head -> FloatArith)",
    "Sub": "a constant after a linear op (-> bias), a constant (scalar or per channel) on a dequantized tensor "
           "(-> depthwise 1x1 QConv), or a float constant on the float input (float head)",
    "Mul": "a constant (per-tensor or per-channel) after a linear op (-> weight scale), a constant (scalar or per "
           "channel) on a dequantized tensor (-> depthwise 1x1 QConv), or on the float input",
    "Div": "a constant after a linear op (-> weight scale), a constant (scalar or per channel) on a dequantized "
           "tensor (-> depthwise 1x1 QConv), or on the float input (float head)",
    "BatchNormalization": "after a linear op (folded into weight scale and bias)",
    "Relu": "before a QuantizeLinear (narrows the output range); on a dequantized tensor feeding other ops "
            "(keeps its grid: narrows its integer range)",
    "Clip": "constant bounds, before a QuantizeLinear or directly on a quantized tensor (7-bit QAT); on a "
            "dequantized tensor with bounds on its grid",
    "Slice": "constant starts/ends/axes/steps (negative steps too) that keep the batch axis whole",
    "Concat": "of quantized tensors (requantized per input where scales differ)",
    "Pad": "constant (a constant value)/reflect/edge/wrap, constant pads, keeping the batch axis -> IndexMap",
    "Resize": "mode nearest, constant scales/sizes, any coordinate/nearest mode -> IndexMap; linear of H, W by integer factors -> IndexMap + depthwise QConv",
    "DepthToSpace": "-> IndexMap", "SpaceToDepth": "-> IndexMap",
    "Tile": "constant repeats keeping the batch axis -> IndexMap", "Expand": "constant shape -> IndexMap",
    "Split": "constant sizes (input or attribute) or equal parts, not of the batch axis -> one Slice per output",
    "ConvTranspose": "2-D, DQ(int8) weights per-tensor or per-output-channel (axis 1), any group/stride/"
                     "dilation/pads/output_padding -> IndexMap (zero insertion) + QConv",
    "MaxPool": "2-D or 1-D, on quantized tensors or between DQ and Q",
    "Reshape": "static target shape; of the float input (moved after the quantizer); may drop the batch axis of "
               "a batch-1 graph", "Flatten": "", "Squeeze": "", "Unsqueeze": "",
    "Transpose": "keeps the batch axis; of the float input (moved after the quantizer); of a DQ weight",
    "Identity": "", "Cast": "no-op casts (Q -> Cast -> DQ)",
    "Softmax": "float tail on a dequantized tensor",
    "Sigmoid": "between DQ and Q (-> Lut, a table; one window of latency)", "Tanh": "as Sigmoid",
    "LeakyRelu": "as Sigmoid", "PRelu": "as Sigmoid; constant slope, one value or one per channel",
    "HardSigmoid": "as Sigmoid", "HardSwish": "as Sigmoid", "Elu": "as Sigmoid", "Softplus": "as Sigmoid",
    "Exp": "as Sigmoid", "Neg": "as Sigmoid", "Abs": "as Sigmoid",
    "Constant": "folded", "Shape": "of static shapes (folded)", "Gather": "constant (folded)",
    "ConstantOfShape": "constant (folded)",
    "QLinearConv": "lifted to QDQ", "QLinearMatMul": "lifted to QDQ",
    "MatMulInteger": "constant weights, lifted", "ConvInteger": "constant weights, lifted",
    "com.microsoft.QGemm": "lifted to QDQ", "com.microsoft.QLinearAdd": "lifted to QDQ",
    "com.microsoft.QLinearMul": "with a constant operand (scalar or per channel), lifted",
    "com.microsoft.QLinearAveragePool": "channels_last=0, lifted", "com.microsoft.QLinearGlobalAveragePool":
    "channels_last=0, lifted", "com.microsoft.QLinearConcat": "lifted", "com.microsoft.QLinearSoftmax":
    "lifted (the output quantization of the float tail is dropped)",
    "com.microsoft.QLinearSigmoid": "lifted (-> Lut)", "com.microsoft.QLinearLeakyRelu": "lifted (-> Lut)",
}

STRUCTURAL = ("MaxPool", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice", "Concat")


class Matcher(StructuralOps, IndexOps, LinearOps, PostOps, UnaryOps, Emitter):
    def __init__(self, og: OGraph, in_shapes: dict[str, tuple], int8_qdq: bool = False):
        self.og = og
        self.int8_qdq = int8_qdq      # onnxruntime runs this model's int8 QDQ activations as uint8
        self.in_shapes = in_shapes
        self.g = Graph(og.name)
        self.vals: dict[str, object] = {}
        self.bad: list[tuple[str, str, str]] = []
        self.node_names: set[str] = set()
        self.renames: dict[str, str] = {}
        self.float_nodes: list[str] = []
        self.mlas_global_pools: list[str] = []
        self.float_mirror: list[str] = []
        self._plain_pending = False
        self._float_pending = False
        self.consumers = og.consumer_map()
        self.tables: dict[str, tuple] = {}   # a Lut's output -> (its input, table, base code): match_unary

    # -- IR helpers ------------------------------------------------------------------
    def nname(self, base: str) -> str:
        name = fresh_name(base, self.node_names)
        self.node_names.add(name)
        return name

    def tname(self, base: str) -> str:
        return fresh_name(base, self.g.tensors)

    def emit(self, op, name, inputs, out, dtype, shape, quant=None, attrs=None) -> str:
        out = self.tname(out)
        self.g.add_tensor(Tensor(out, dtype, shape, quant=quant))
        node = self.g.add_node(op, self.nname(name), inputs, [out], attrs or {})
        wide = any(self.g.tensors[i].dtype in ("uint16", "int16") for i in [out] + list(inputs))
        if (self._float_pending or wide) and op in ("QConv", "QDense", "QAvgPool", "QAdd"):
            # onnxruntime has no 16-bit QLinear kernels: DQ -> float op -> Q
            self.float_nodes.append(node.name)
            if self._plain_pending and op in ("QConv", "QDense"):
                self.float_mirror.append(node.name)
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
                    op = n.op if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op}"
                    self.bad.append((n.name, op, f"operator {op} is not supported"))
                for o in n.outputs:
                    self.vals[o] = BAD
                if n.op == "QuantizeLinear":
                    self._stand_in(n)
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
            g.meta["ort_float_nodes"] = json.dumps(sorted(set(self.float_nodes)))
            pools = sorted(set(self.mlas_global_pools) & set(self.float_nodes))
            if pools:
                g.meta["ort_mlas_global_pool"] = json.dumps(pools)
            if self.float_mirror:
                g.meta["ort_float_mirror"] = json.dumps(sorted(set(self.float_mirror)))
        self.finish()
        return g

    def _stand_in(self, n: ONode) -> None:
        """A QuantizeLinear of a reported node's output gets a stand-in integer tensor on its grid,
        so that matching goes on past it and reports the nodes after it too (one refused
        squeeze-and-excitation block of a MobileNetV3 does not hide the others); the graph is
        never returned, since a node was reported."""
        shape = self.og.shape(n.outputs[0])
        try:
            s, z, dt = self.activation_grid(n)
        except Unsupported:
            return
        if shape is None:
            return
        ir = self.tname(n.outputs[0])
        self.g.add_tensor(Tensor(ir, dt, tuple(int(d) for d in shape), quant=Quant(s, z, None, *INT_RANGES[dt])))
        self.vals[n.outputs[0]] = QRef(ir)

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
        if z.dtype.kind not in "iu":    # e.g. int4 / float8 types (ml_dtypes) of newer opsets
            raise Unsupported(f"quantized type {z.dtype} is not supported (need uint8 or int8, int32 for biases)")
        if s.size != z.size and z.size != 1:
            raise InvalidModelError(f"zero point of type {z.dtype} / shape {list(z.shape)} does not fit scale "
                                    f"{list(s.shape)}", file=self.og.file, node=n.name, op=n.op)
        return s, z

    def activation_grid(self, n: ONode) -> tuple[float, int, str]:
        """The (float32 scale, zero point, dtype) a QuantizeLinear puts an activation on."""
        s, z = self.qparams(n)
        if s.size != 1 or z.size != 1:
            raise Unsupported("per-axis quantization of an activation is not supported")
        dt = str(z.dtype)
        if dt not in ACTIVATION_DTYPES:
            raise Unsupported(f"quantized type {dt} is not supported (need uint8/int8, or uint16/int16)")
        return float(np.float32(_scalar(s))), int(_scalar(z)), dt

    def op_QuantizeLinear(self, n: ONode) -> None:
        s, z, dt = self.activation_grid(n)
        lo, hi = INT_RANGES[dt]
        x = n.inputs[0]
        v = self.val(x)
        y = n.outputs[0]
        if isinstance(v, str) and v == "input":
            q = Quant(s, z, None, lo, hi)
            ir = self.emit("Quantize", n.name, [x], y, dt, self.in_shapes[x], q)
            self.vals[y] = QRef(ir)
        elif isinstance(v, Head):
            src = v.src
            for op, c, reverse, node, out in v.arith:
                cn = self.const(f"{node}_c", np.asarray(c, np.float32))
                src = self.emit("FloatArith", node, [src, cn], out, "float32", self.in_shapes[v.src],
                                attrs={"op": op, "reverse": reverse})
            ir = self.emit("Quantize", n.name, [src], f"{v.src}__quantized" if v.steps else y, dt,
                           self.in_shapes[v.src], Quant(s, z, None, lo, hi))
            for k, (irop, attrs, shape, node) in enumerate(v.steps):
                ir = self.emit(irop, node, [ir], y if k == len(v.steps) - 1 else f"{y}__{k}", dt, shape,
                               Quant(s, z, None, lo, hi), attrs)
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


def check_quantized(og: OGraph) -> None:
    qs = [n for n in og.nodes if n.op == "QuantizeLinear" and n.inputs and n.inputs[0] not in og.consts]
    if not qs:
        ops = sorted({n.op for n in og.nodes})
        raise NotQuantizedError(
            f"the model is not quantized: no QuantizeLinear/QLinear* node acts on an activation "
            f"(ops: {', '.join(ops[:12])}{'...' if len(ops) > 12 else ''})", file=og.file,
            hint="quantize it first, e.g. onnxruntime.quantization.quantize_static (QDQ or QOperator)")


def match(og: OGraph, in_shapes: dict[str, tuple], int8_qdq: bool = False) -> Graph:
    check_quantized(og)
    return Matcher(og, in_shapes, int8_qdq).run()
