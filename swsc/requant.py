"""onnxruntime's requantization arithmetic, shared by the reference (ANN) hooks of the
quantized ops (``QConv.reference``, ``QDense.reference``, ``QAvgPool.reference``,
``QAdd.reference``, ...).

The reference evaluator (runtime/reference.py, whose docstring lists each op's formula)
matches onnxruntime bit for bit, so these helpers round in float32 exactly where MLAS
does. They sit below the op modules (which may import them) and import nothing of swsc,
so every op's reference hook can use them without reaching into the runtime (and
importing this module first cannot start a cycle through the op registry).
"""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

f32 = np.float32


def fma32(a, b, c):
    """float32 fused multiply-add (rounded once), via float64 (exact for 8-bit a)."""
    return (np.asarray(a, np.float64) * np.asarray(b, np.float64) + np.asarray(c, np.float64)).astype(f32)


def finish(v: np.ndarray, q, dtype) -> np.ndarray:
    """v: float32 value before adding the zero point (already rounded or not)."""
    r = np.rint(v).astype(np.float64) + float(np.asarray(q.zero_point))
    return np.clip(r, q.lo, q.hi).astype(dtype)


def centered(t, x):
    return x.astype(np.float64) - float(np.asarray(t.quant.zero_point))


def chan(a, ndim):
    a = np.asarray(a)
    return a.reshape((1, -1) + (1,) * (ndim - 2)) if a.ndim == 1 else a


def meta_list(g, key) -> set:
    """The node names the front-end listed under ``key`` (``ort_float_nodes``: clusters
    onnxruntime runs in float; ``ort_float_mirror``, ``ort_mlas_global_pool``: how)."""
    return set(json.loads(g.meta.get(key, "[]")))


def float_node(g, node) -> bool:
    """Whether onnxruntime cannot fuse this node's cluster and runs it in float32."""
    return node.name in meta_list(g, "ort_float_nodes")


def s8_as_u8(g) -> bool:
    """onnxruntime runs int8 QDQ activations as uint8 (zero point + 128) on x86; where the
    float rounding includes the zero point (QLinearAveragePool, QLinearAdd) that matters."""
    return g.meta.get("ort_int8_qdq") == "1"


def requant_float(real, yq, dtype):
    """QuantizeLinear of a float32 value computed by onnxruntime in float: rint(fp32(y) / s_y) + z."""
    return finish(real.astype(f32) / f32(yq.scale), yq, dtype)


def requant_linear(acc, xq, wq, yq, dtype, floatpath=False):
    sw = np.asarray(wq.scale, np.float64)
    if floatpath:   # the real value (float64 stands for ORT's float32 conv/gemm + bias)
        real = acc * chan(float(xq.scale) * sw, acc.ndim)
        return requant_float(real, yq, dtype)
    m = (f32(xq.scale) * sw.astype(f32)).astype(f32) / f32(yq.scale)
    m = chan(m.astype(f32), acc.ndim)
    v = acc.astype(f32) * m
    return finish(v, yq, dtype)


def wcentered(w):
    z = np.asarray(w.quant.zero_point, np.float64)
    if z.ndim == 1:
        z = z.reshape((-1,) + (1,) * (w.data.ndim - 1))
    return w.data.astype(np.float64) - z


def dq32(t, v):
    """DequantizeLinear in float32: fp32(q - z) * fp32(s)."""
    return ((v.astype(np.float64) - float(np.asarray(t.quant.zero_point))).astype(f32) * f32(t.quant.scale)).astype(f32)


def qlinear_mul(a, sa, za, b, sb, zb, yq, dtype):
    """MlasQLinearMul's x86 kernel on codes ``a`` and ``b`` (broadcasting):
    ``rint(fp32(fp32((a - z_a)(b - z_b)) * r) + fp32(z_y))`` with ``r = fp32(fp32(s_a s_b) / s_y)``,
    saturated to ``yq``'s range."""
    prod = ((np.asarray(a, np.float64) - float(np.asarray(za)))
            * (np.asarray(b, np.float64) - float(np.asarray(zb))))            # exact: |prod| < 2^33
    r = f32(f32(f32(sa) * f32(sb)) / f32(yq.scale))
    t = ((prod.astype(f32) * r).astype(f32) + f32(float(np.asarray(yq.zero_point)))).astype(f32)
    return np.clip(np.rint(t), yq.lo, yq.hi).astype(dtype)


def qlinear_add(a, sa, za, b, sb, zb, yq, dtype, shift: float = 0.0):
    """MlasQLinearAdd (AVX2) on codes ``a`` and ``b``: ``r_i = fp32(s_i / s_y)``,
    ``F = fp32(z_y - (r_a z_a + r_b z_b))``, ``rint(fma(a, r_a, fma(b, r_b, F)))``, saturated; a
    one-element operand is folded into ``F`` first, as the kernel's scalar path does. ``shift``
    128 runs int8 codes as uint8, as onnxruntime does on x86 for int8 QDQ models."""
    a = (np.asarray(a, np.float64) + shift).astype(f32)
    b = (np.asarray(b, np.float64) + shift).astype(f32)
    sy = f32(yq.scale)
    zy = f32(float(np.asarray(yq.zero_point)) + shift)
    ra, rb = f32(f32(sa) / sy), f32(f32(sb) / sy)
    za, zb = f32(float(np.asarray(za)) + shift), f32(float(np.asarray(zb)) + shift)
    fixed = f32(zy - fma32(ra, za, f32(rb * zb)))
    if b.size == 1:
        v = fma32(a, ra, f32(fixed + f32(b.reshape(-1)[0] * rb)))
    elif a.size == 1:
        v = fma32(b, rb, f32(fixed + f32(a.reshape(-1)[0] * ra)))
    else:
        a, b = np.broadcast_arrays(a, b)
        v = fma32(a, ra, fma32(b, rb, fixed))
    # the kernel's float already includes z_y: round, then clamp to [lo, hi]
    r = np.rint(v).astype(np.float64) - shift
    return np.clip(r, yq.lo, yq.hi).astype(dtype)


def mlas_global_mean(x: np.ndarray) -> np.ndarray:
    """MLAS's float32 global average pool of [N, C, H, W]: four lanes summing every fourth
    element in order, folded as (l0 + l2) + (l1 + l3), then the tail added one by one, / (H W)."""
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    size = flat.shape[2]
    body = size // 4 * 4
    lanes = np.zeros((n, c, 4), f32)
    for i in range(0, body, 4):
        lanes = (lanes + flat[:, :, i:i + 4]).astype(f32)
    total = ((lanes[..., 0] + lanes[..., 2]).astype(f32) + (lanes[..., 1] + lanes[..., 3]).astype(f32)).astype(f32)
    for i in range(body, size):
        total = (total + flat[:, :, i]).astype(f32)
    return (total / f32(size)).astype(f32).reshape(n, c, 1, 1)


_SESSIONS: dict = {}


def ort_float_op(g, n, ins, op: str, x: np.ndarray) -> np.ndarray:
    """onnxruntime's own float32 Conv/Gemm (MLAS, same kernels as in the model) on the
    dequantized float32 operands: what it computes for a cluster it cannot fuse.
    ``ins``: the node's inputs by name (``inputs_of``)."""
    def build():
        xt, w = g.tensors[ins.x], g.tensors[ins.w]
        sw = np.asarray(w.quant.scale, f32).reshape((-1,) + (1,) * (w.data.ndim - 1))
        operands = {"w": (wcentered(w).astype(f32) * sw).astype(f32)}
        if ins.bias:      # DQ(int32 bias, fp32(s_x s_w)), in float32
            sb = (f32(xt.quant.scale) * np.asarray(w.quant.scale, f32)).astype(f32)
            operands["b"] = (g.tensors[ins.bias].data.astype(f32) * sb).astype(f32).reshape(-1)
        if op == "Conv":
            a = n.attrs
            node = helper.make_node("Conv", ["x"] + list(operands), ["y"], kernel_shape=a["kernel"],
                                    strides=a["strides"], pads=a["pads"], dilations=a["dilations"],
                                    group=int(a.get("group", 1)))
        else:
            node = helper.make_node("Gemm", ["x"] + list(operands), ["y"], transB=1)
        # the weight and bias are inputs, not initializers: in the quantized model they are the
        # outputs of DequantizeLinear nodes, which onnxruntime keeps, so its kernels never
        # prepack them (a prepacked SGEMM sums in another order)
        model = helper.make_model(helper.make_graph(
            [node], "f", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *xt.shape[1:]])]
            + [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in operands.items()],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]),
            opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        return model, operands

    (sess, operands), x = _session(g, n, build), np.ascontiguousarray(x, f32)
    if op == "Conv":
        return sess.run(None, {"x": x, **operands})[0]
    # a Gemm row by row: the model runs one sample at a time (its batch is 1), and MLAS's SGEMM
    # of one row sums in another order than of many
    return np.concatenate([sess.run(None, {"x": x[i:i + 1], **operands})[0] for i in range(len(x))])


def ort_affine(g, node, ins, env) -> np.ndarray | None:
    """A Mul/Div/Add/Sub by constants of a dequantized tensor, which the front-end emits as a
    depthwise 1x1 QConv (``meta["ort_affine"]``), as onnxruntime computes it; None for other nodes.

    * ``qlinear_mul`` (QLinearMul, or DQ x DQ(const) -> Mul -> Q, which onnxruntime fuses to it):
      MlasQLinearMul's x86 kernel, ``rint(fp32(fp32((a - z_a)(c - z_c)) * r) + fp32(z_y))`` with
      ``r = fp32(fp32(s_a s_c) / s_y)``, saturated;
    * ``float``: DequantizeLinear, each op in float32 with its float32 constant (a Div divides
      by it, as onnxruntime does, not multiplies by its reciprocal), then QuantizeLinear.
    """
    spec = json.loads(g.meta.get("ort_affine", "{}")).get(node.name)
    if spec is None:
        return None
    x, y = g.tensors[ins.x], g.tensors[node.outputs[0]]
    v = env[x.name]
    if spec["kind"] == "qlinear_mul":
        w = g.tensors[ins.w]
        c = chan(w.data.reshape(-1).astype(np.float64), v.ndim)
        return qlinear_mul(v, x.quant.scale, x.quant.zero_point, c, w.quant.scale, w.quant.zero_point, y.quant, y.dtype)
    d = dq32(x, v)
    for op, c, reverse in spec["steps"]:
        c = chan(np.asarray(c, f32), d.ndim)
        if op == "Mul":
            d = d * c
        elif op == "Div":
            d = d / c
        elif op == "Add":
            d = d + c
        else:
            d = c - d if reverse else d - c
        d = d.astype(f32)
    return requant_float(d, y.quant, y.dtype)


def _session(g, node, build):
    """(session, feeds) for ``node`` of ``g``, cached: ``build()`` returns the one-op model and the
    constant inputs every run feeds it (or None)."""
    key = (id(g), node.name)
    hit = _SESSIONS.get(key)
    if hit is None or hit[0] is not g:
        model, feeds = build()
        so = ort.SessionOptions()
        so.log_severity_level = 3
        # basic optimizations only: in the quantized model these convs stay NCHW; the layout
        # transformer of a lone Conv (NCHWc, a different float32 summation) would not match it
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        if len(_SESSIONS) > 64:
            _SESSIONS.clear()
        hit = _SESSIONS[key] = (g, ort.InferenceSession(model.SerializeToString(), so,
                                                        providers=["CPUExecutionProvider"]), feeds)
    return hit[1], hit[2]


def ort_resize(g, node, ins, env) -> np.ndarray | None:
    """A linear Resize, which the front-end emits as an IndexMap and a depthwise QConv
    (``meta["ort_resize"]``), as onnxruntime computes it: its own Resize kernel on the
    dequantized input (QDQ: DQ -> Resize -> Q in float32, then QuantizeLinear), or on the
    integer codes themselves (QOperator, where it truncates); None for other nodes."""
    spec = json.loads(g.meta.get("ort_resize", "{}")).get(node.name)
    if spec is None:
        return None
    x, y = g.tensors[spec["src"]], g.tensors[node.outputs[0]]

    def build():
        inits, ins = [], ["x"]
        for k, c in enumerate(spec["inputs"], 1):
            if c is None:
                ins.append("")
            else:
                inits.append(numpy_helper.from_array(np.asarray(c[0], c[1]), f"c{k}"))
                ins.append(f"c{k}")
        et = helper.np_dtype_to_tensor_dtype(np.dtype(x.dtype)) if spec["codes"] else TensorProto.FLOAT
        model = helper.make_model(helper.make_graph(
            [helper.make_node("Resize", ins, ["y"], **spec["attrs"])], "r",
            [helper.make_tensor_value_info("x", et, ["N", *x.shape[1:]])],
            [helper.make_tensor_value_info("y", et, None)], inits),
            opset_imports=[helper.make_opsetid("", spec["opset"])])
        model.ir_version = 8
        return model, None

    sess, _ = _session(g, node, build)
    if spec["codes"]:
        return sess.run(None, {"x": np.ascontiguousarray(env[x.name], x.dtype)})[0].astype(y.dtype)
    return requant_float(sess.run(None, {"x": dq32(x, env[x.name])})[0], y.quant, y.dtype)


def ort_float_mirror(g, node, ins, op: str, env) -> np.ndarray | None:
    """The output of a plain Conv/Gemm that onnxruntime runs through its float kernels
    (front-end's ``ort_float_mirror`` list), requantized as its QuantizeLinear, or of a
    constant op or a linear Resize emitted as a Conv (``ort_affine``, ``ort_resize``); None for
    the other nodes."""
    for mirror in (ort_affine, ort_resize):
        out = mirror(g, node, ins, env)
        if out is not None:
            return out
    if node.name not in meta_list(g, "ort_float_mirror"):
        return None
    x, y = g.tensors[ins.x], g.tensors[node.outputs[0]]
    return requant_float(ort_float_op(g, node, ins, op, dq32(x, env[x.name])), y.quant, y.dtype)
