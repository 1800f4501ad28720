"""The op registry: for every op, its inputs, attributes and shape rule.

Three families share one table:

* canonical quantized ops, produced by the front-end (``Quantize``, ``QConv``, ...);
  every quantized tensor is an integer tensor with ``Quant`` parameters;
* ``Affine``, the integer-domain layer of ``fold-zero-points`` (paper eq. 15-17);
* SWS ops (``SwsEncode``, ``TsaLayer``, ``SpikeMaxPool``, ``SpikeDelay``, ``SwsDecode``);

plus structural ops (``Reshape``, ``Transpose``, ``Concat``) that act on integer
tensors and on spike frames alike, and float tail ops (``Softmax``).
The meaning of every op is written in docs/ir.md and in ``../shared/design/semantics.md``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .errors import IRVerifyError

DOMAIN = "ai.swsc"


@dataclass(frozen=True)
class OpDef:
    name: str
    inputs: tuple[str, ...]          # names; "*name" = variadic, "name?" = optional
    attrs: dict = field(default_factory=dict)   # name -> required (True) / optional (False)
    shape: Callable | None = None    # (graph, node) -> list of output shapes
    doc: str = ""


def _pool_out(size, k, s, p0, p1, d=1):
    return (size + p0 + p1 - d * (k - 1) - 1) // s + 1


def _spatial(graph, node, in_shape, channels):
    k = node.attrs["kernel"]
    s = node.attrs.get("strides", [1] * len(k))
    p = node.attrs.get("pads", [0] * (2 * len(k)))
    d = node.attrs.get("dilations", [1] * len(k))
    nd = len(k)
    sp = [_pool_out(in_shape[2 + i], k[i], s[i], p[i], p[i + nd], d[i]) for i in range(nd)]
    if any(v < 1 for v in sp):
        raise IRVerifyError(f"output spatial size {sp} is empty", node=node.name, op=node.op)
    return [(in_shape[0], channels, *sp)]


def _shape(graph, name):
    return graph.tensors[name].shape


def _conv_shape(graph, node):
    x, w = _shape(graph, node.inputs[0]), _shape(graph, node.inputs[1])
    group = node.attrs.get("group", 1)
    if len(x) != len(w) or x[1] != w[1] * group:
        raise IRVerifyError(f"conv input {x} does not match weight {w} with group {group}",
                            node=node.name, op=node.op)
    if list(w[2:]) != list(node.attrs["kernel"]):
        raise IRVerifyError(f"kernel attr {node.attrs['kernel']} != weight {w}", node=node.name, op=node.op)
    return _spatial(graph, node, x, w[0])


def _dense_shape(graph, node):
    x, w = _shape(graph, node.inputs[0]), _shape(graph, node.inputs[1])
    if len(x) != 2 or len(w) != 2 or x[1] != w[1]:
        raise IRVerifyError(f"dense input {x} does not match weight [out, in] {w}", node=node.name, op=node.op)
    return [(x[0], w[0])]


def _pool_shape(graph, node):
    x = _shape(graph, node.inputs[0])
    return _spatial(graph, node, x, x[1])


def _broadcast(shapes, node):
    nd = max(len(s) for s in shapes)
    out = []
    for dims in zip(*[(1,) * (nd - len(s)) + tuple(s) for s in shapes]):
        big = {d for d in dims if d != 1}
        if len(big) > 1:
            raise IRVerifyError(f"shapes {shapes} do not broadcast", node=node.name, op=node.op)
        out.append(big.pop() if big else 1)
    return tuple(out)


def _add_shape(graph, node):
    return [_broadcast([_shape(graph, i) for i in node.inputs], node)]


def _same_shape(graph, node):
    return [_shape(graph, node.inputs[0])]


def _reshape_shape(graph, node):
    x = _shape(graph, node.inputs[0])
    target = tuple(node.attrs["shape"])
    if _prod(x) != _prod(target):
        raise IRVerifyError(f"cannot reshape {x} to {target}", node=node.name, op=node.op)
    return [target]


def _transpose_shape(graph, node):
    x = _shape(graph, node.inputs[0])
    perm = node.attrs["perm"]
    if sorted(perm) != list(range(len(x))):
        raise IRVerifyError(f"perm {perm} does not fit rank {len(x)}", node=node.name, op=node.op)
    return [tuple(x[p] for p in perm)]


def _concat_shape(graph, node):
    shapes = [_shape(graph, i) for i in node.inputs]
    axis = node.attrs["axis"]
    first = list(shapes[0])
    for s in shapes[1:]:
        if len(s) != len(first) or any(a != b for j, (a, b) in enumerate(zip(s, first)) if j != axis):
            raise IRVerifyError(f"concat shapes {shapes} differ off axis {axis}", node=node.name, op=node.op)
    first[axis] = sum(s[axis] for s in shapes)
    return [tuple(first)]


def _affine_shape(graph, node):
    kind = node.attrs["kind"]
    return {"conv": _conv_shape, "dense": _dense_shape, "avgpool": _pool_shape,
            "add": _affine_add_shape}[kind](graph, node)


def _affine_add_shape(graph, node):
    n = node.attrs["n_inputs"]
    return [_broadcast([_shape(graph, i) for i in node.inputs[:n]], node)]


def _prod(shape):
    p = 1
    for d in shape:
        p *= d
    return p


_GEOM = {"kernel": True, "strides": False, "pads": False, "dilations": False}

OPS: dict[str, OpDef] = {op.name: op for op in [
    # --- canonical quantized graph (front-end output) ---
    OpDef("Quantize", ("x",), {}, _same_shape, "float input -> integer tensor: clamp(rint(x/scale)+zp, lo, hi)"),
    OpDef("QConv", ("x", "w", "bias?"), {**_GEOM, "group": False}, _conv_shape,
          "quantized Conv; bias is float64 in accumulator units (x_scale*w_scale)"),
    OpDef("QDense", ("x", "w", "bias?"), {}, _dense_shape,
          "quantized x[N,K] . w[M,K]^T; bias as in QConv"),
    OpDef("QAvgPool", ("x",), {**_GEOM, "count_include_pad": False}, _pool_shape,
          "quantized average pool (global pooling is a kernel over the whole plane)"),
    OpDef("QAdd", ("*x",), {}, _add_shape,
          "sum of requantized inputs (a residual Add; one input = a requantization); "
          "a constant input is a quantized constant operand"),
    OpDef("Dequantize", ("x",), {}, _same_shape, "integer tensor -> float32 scale*(q - zp)"),
    # --- integer-domain layer (fold-zero-points) ---
    OpDef("Affine", ("*x", "w", "b", "wq?"), {"kind": True, "n_inputs": True, **{k: False for k in _GEOM},
                                      "group": False, "count_include_pad": False, "code_sum": False},
          _affine_shape, "code_o = clamp(round(W~ . code_i + b~), 0, hi') on codes q - lo (eq. 15-17)"),
    # --- SWS ops ---
    OpDef("SwsEncode", ("x", "lut?"), {"encoder": True, "ts": True, "tc": True, "beta": True}, _same_shape,
          "quantize the float input and emit its SWS code (exact or tsa encoder)"),
    OpDef("TsaLayer", ("*x", "w", "b", "wq?", "bq?", "rq?", "bd?"),
          {"kind": True, "n_inputs": True, "ts": True, "tc": True, "beta": True, "vth": True, "hi_norm": True,
           "int_acc_mul": False, "int_vth": False, "int_hi": False, "int_membrane": False,
           "int_sat": False, "int_bound": False, "int_error": False,
                                         **{k: False for k in _GEOM}, "group": False,
                                         "count_include_pad": False},
          _affine_shape, "TSA neurons with a linear map and silent period ts (semantics section 3)"),
    OpDef("SpikeMaxPool", ("x",), {**_GEOM}, _pool_shape, "exact running-max pooling of spike trains"),
    OpDef("SpikeDelay", ("x",), {"delay": True}, _same_shape, "shift a spike train by delay steps"),
    OpDef("SwsDecode", ("x",), {"int_theta_q16": False}, _same_shape,
          "decode spikes to the dequantized float output"),
    # --- structural (integer tensors and spike frames alike) ---
    OpDef("MaxPool", ("x",), {**_GEOM}, _pool_shape, "max pool on an integer tensor"),
    OpDef("Reshape", ("x",), {"shape": True}, _reshape_shape, "static reshape"),
    OpDef("Transpose", ("x",), {"perm": True}, _transpose_shape, "transpose"),
    OpDef("Concat", ("*x",), {"axis": True}, _concat_shape, "concat of equally quantized inputs"),
    # --- float tail ---
    OpDef("Softmax", ("x",), {"axis": True}, _same_shape, "float softmax on decoded outputs"),
    # --- float head (before the input quantizer) ---
    OpDef("FloatArith", ("x", "c"), {"op": True, "reverse": False}, _add_shape,
          "float32 x op c (op Add/Sub/Mul/Div; reverse: c op x) of the float input, e.g. normalization"),
]}

#: ops that act frame by frame on spike tensors and add no latency
STRUCTURAL = ("Reshape", "Transpose", "Concat")
#: ops whose inputs/outputs are spike tensors after lowering
SPIKE_OPS = ("TsaLayer", "SpikeMaxPool", "SpikeDelay") + STRUCTURAL


def check_node(graph, node) -> None:
    """Check one node against its OpDef: arity, attributes, declared output shapes."""
    d = OPS.get(node.op)
    if d is None:
        raise IRVerifyError(f"unknown op '{node.op}'", node=node.name, op=node.op)
    fixed = [i for i in d.inputs if not i.startswith("*")]
    variadic = any(i.startswith("*") for i in d.inputs)
    required = [i for i in fixed if not i.endswith("?")]
    n = len(node.inputs)
    if n < len(required) + (1 if variadic else 0) or (not variadic and n > len(fixed)):
        raise IRVerifyError(f"takes inputs {d.inputs}, got {n}", node=node.name, op=node.op)
    for a, req in d.attrs.items():
        if req and a not in node.attrs:
            raise IRVerifyError(f"missing attribute '{a}'", node=node.name, op=node.op)
    unknown = set(node.attrs) - set(d.attrs)
    if unknown:
        raise IRVerifyError(f"unknown attribute(s) {sorted(unknown)}", node=node.name, op=node.op)
    if len(node.outputs) != 1:
        raise IRVerifyError(f"expects 1 output, has {len(node.outputs)}", node=node.name, op=node.op)
    if d.shape is not None:
        want = d.shape(graph, node)
        for o, s in zip(node.outputs, want):
            got = graph.tensors[o].shape
            if tuple(got) != tuple(s):
                raise IRVerifyError(f"output '{o}' declared {list(got)} but op gives {list(s)}",
                                    node=node.name, op=node.op)
    a = node.attrs
    if "ts" in a and not a["ts"] >= 0:
        raise IRVerifyError(f"silent period ts = {a['ts']} is negative", node=node.name, op=node.op)
    if "beta" in a and not a["beta"] > 1:
        raise IRVerifyError(f"beta = {a['beta']} must be > 1", node=node.name, op=node.op)
    window = graph.tensors[node.outputs[0]].window
    if "tc" in a and window is not None and window[1] != a["tc"]:
        raise IRVerifyError(f"tc = {a['tc']} but its output spike train has {window[1]} steps",
                            node=node.name, op=node.op)
    spike_in = [graph.tensors[i].dtype == "spike" for i in node.inputs
                if i and not graph.tensors[i].is_const]
    if node.op in ("TsaLayer", "SpikeMaxPool", "SpikeDelay", "SwsDecode") and not all(spike_in):
        raise IRVerifyError("expects spike inputs", node=node.name, op=node.op)
    if node.op in SPIKE_OPS or node.op == "SwsEncode":
        outs = [graph.tensors[o] for o in node.outputs]
        if not all(t.dtype == "spike" for t in outs):
            if node.op not in STRUCTURAL or any(spike_in):
                raise IRVerifyError("must produce spike tensors", node=node.name, op=node.op)
    # Windows are only meaningful once schedule-latencies has run.
    if "t_inf" in graph.meta and any(spike_in) and node.op in (SPIKE_OPS + ("SwsDecode",)):
        windows = {graph.tensors[i].window for i in node.inputs if i and not graph.tensors[i].is_const}
        if len(windows) > 1:
            raise IRVerifyError(f"inputs start at different steps {sorted(windows)}; a SpikeDelay is needed",
                                node=node.name, op=node.op)
        (t0, tc), = windows
        out = graph.tensors[node.outputs[0]]
        if out.dtype == "spike":
            shift = node.attrs.get("ts", 0) if node.op == "TsaLayer" else node.attrs.get("delay", 0) \
                if node.op == "SpikeDelay" else 0
            if out.window != (t0 + shift, tc):
                raise IRVerifyError(f"output window {out.window} != input window ({t0}, {tc}) shifted by {shift}",
                                    node=node.name, op=node.op)
