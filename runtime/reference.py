"""Integer reference evaluator: runs a canonical quantized graph as onnxruntime does.

``evaluate(graph, x)`` takes a batch of N samples (the IR's batch is 1; any N
works) and returns the graph outputs (every tensor with ``keep=True``).

Accumulation is exact (float64 holds every 8-bit dot product exactly); the
requantization mimics onnxruntime's CPU kernels (MLAS) in float32, so the result
matches onnxruntime bit for bit on almost every element:

* Quantize:        ``rint(fp32(x) / fp32(s)) + z``                       (MlasQuantizeLinear)
* QConv / QDense:  ``rint(fp32(acc) * M) + z_y``,
  ``M = fp32(fp32(s_x * s_w) / s_y)`` per channel                     (QLinearConv, QGemm,
  QLinearMatMul: MlasRequantizeOutput)
* QAvgPool, global: ``rint(fp32(acc) * fp32(s_x / fp32(s_y * n))) + z_y``
  (QLinearGlobalAveragePool); windowed: dequantize in float32, sum the window in
  raster order in float32, ``/ n``, then ``rint(avg / s_y + z_y)`` (QLinearAveragePool)
* QAdd (2 inputs): ``rint(fma(a, r_a, fma(b, r_b, F))) + z``-free form of
  MlasQLinearAdd (AVX2): ``r = fp32(s_i / s_y)``, ``F = fp32(z_y - (r_a z_a + r_b z_b))``
* QAdd (1 input):  ``rint(fp32(fp32(s_x (x - z_x)) / s_y)) + z_y``  (DequantizeLinear then
  QuantizeLinear, as ORT runs a requantization)
* everything is clamped to the output tensor's ``[lo, hi]``.

Clusters onnxruntime cannot fuse run in float32 there (``meta["ort_float_nodes"]``), and
are mirrored: a residual ``Add`` as ``DQ + DQ`` in float32, a global pool in MLAS's float32
summation order (``ort_mlas_global_pool``), a plain Conv/Gemm through onnxruntime's own float
kernels on the dequantized operands (``ort_float_mirror``), the others as their real value.
``FloatArith`` (a float head) is float32 elementwise arithmetic.
"""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from swsc.kernels import conv2d, float_arith, max_pool, pool_counts, sum_pool

f32 = np.float32


def _fma32(a, b, c):
    """float32 fused multiply-add (rounded once), via float64 (exact for 8-bit a)."""
    return (np.asarray(a, np.float64) * np.asarray(b, np.float64) + np.asarray(c, np.float64)).astype(f32)


def _finish(v: np.ndarray, q, dtype) -> np.ndarray:
    """v: float32 value before adding the zero point (already rounded or not)."""
    r = np.rint(v).astype(np.float64) + float(np.asarray(q.zero_point))
    return np.clip(r, q.lo, q.hi).astype(dtype)


def _centered(t, x):
    return x.astype(np.float64) - float(np.asarray(t.quant.zero_point))


def _chan(a, ndim):
    a = np.asarray(a)
    return a.reshape((1, -1) + (1,) * (ndim - 2)) if a.ndim == 1 else a


def _float_nodes(g) -> set:
    return set(json.loads(g.meta.get("ort_float_nodes", "[]")))


def _requant_float(real, yq, dtype):
    """QuantizeLinear of a float32 value computed by onnxruntime in float: rint(fp32(y) / s_y) + z."""
    return _finish(real.astype(f32) / f32(yq.scale), yq, dtype)


def _requant_linear(acc, xq, wq, yq, dtype, floatpath=False):
    sw = np.asarray(wq.scale, np.float64)
    if floatpath:   # the real value (float64 stands for ORT's float32 conv/gemm + bias)
        real = acc * _chan(float(xq.scale) * sw, acc.ndim)
        return _requant_float(real, yq, dtype)
    m = (f32(xq.scale) * sw.astype(f32)).astype(f32) / f32(yq.scale)
    m = _chan(m.astype(f32), acc.ndim)
    v = acc.astype(f32) * m
    return _finish(v, yq, dtype)


def _wcentered(w):
    z = np.asarray(w.quant.zero_point, np.float64)
    if z.ndim == 1:
        z = z.reshape((-1,) + (1,) * (w.data.ndim - 1))
    return w.data.astype(np.float64) - z


_SESSIONS: dict = {}


def _ort_float_op(g, n, op: str, x: np.ndarray) -> np.ndarray:
    """onnxruntime's own float32 Conv/Gemm (MLAS, same kernels as in the model) on the
    dequantized float32 operands: what it computes for a cluster it cannot fuse."""
    key = (id(g), n.name)
    hit = _SESSIONS.get(key)
    if hit is None or hit[0] is not g:
        xt, w = g.tensors[n.inputs[0]], g.tensors[n.inputs[1]]
        sw = np.asarray(w.quant.scale, f32).reshape((-1,) + (1,) * (w.data.ndim - 1))
        inits = {"w": (_wcentered(w).astype(f32) * sw).astype(f32)}
        if len(n.inputs) > 2 and n.inputs[2]:      # DQ(int32 bias, fp32(s_x s_w)), in float32
            sb = (f32(xt.quant.scale) * np.asarray(w.quant.scale, f32)).astype(f32)
            inits["b"] = (g.tensors[n.inputs[2]].data.astype(f32) * sb).astype(f32).reshape(-1)
        if op == "Conv":
            a = n.attrs
            node = helper.make_node("Conv", ["x"] + list(inits), ["y"], kernel_shape=a["kernel"], strides=a["strides"],
                                    pads=a["pads"], dilations=a["dilations"], group=int(a.get("group", 1)))
        else:
            node = helper.make_node("Gemm", ["x"] + list(inits), ["y"], transB=1)
        model = helper.make_model(helper.make_graph(
            [node], "f", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *xt.shape[1:]])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()]),
            opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        so = ort.SessionOptions()
        so.log_severity_level = 3
        # in the quantized model these convs stay NCHW; the layout transformer of a lone Conv
        # (NCHWc, a different float32 summation) would not match it
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        if len(_SESSIONS) > 64:
            _SESSIONS.clear()
        hit = _SESSIONS[key] = (g, ort.InferenceSession(model.SerializeToString(), so,
                                                        providers=["CPUExecutionProvider"]))
    return hit[1].run(None, {"x": np.ascontiguousarray(x, f32)})[0]


def _dq32(t, v):
    """DequantizeLinear in float32: fp32(q - z) * fp32(s)."""
    return ((v.astype(np.float64) - float(np.asarray(t.quant.zero_point))).astype(f32) * f32(t.quant.scale)).astype(f32)


def _qconv(g, n, env):
    x, w = g.tensors[n.inputs[0]], g.tensors[n.inputs[1]]
    y = g.tensors[n.outputs[0]]
    if n.name in _meta_list(g, "ort_float_mirror"):
        return _requant_float(_ort_float_op(g, n, "Conv", _dq32(x, env[x.name])), y.quant, y.dtype)
    wc = _wcentered(w)
    z = float(np.asarray(x.quant.zero_point))
    bound = max(abs(x.quant.lo - z), abs(x.quant.hi - z)) * np.abs(wc).reshape(len(wc), -1).sum(axis=1).max()
    if bound < 2 ** 24:     # every partial sum is an integer float32 holds exactly: its faster kernels
        acc = conv2d(env[x.name].astype(f32) - f32(z), wc.astype(f32), n.attrs)
    else:
        acc = conv2d(_centered(x, env[x.name]), wc, n.attrs)
    if len(n.inputs) > 2 and n.inputs[2]:
        acc = acc + g.tensors[n.inputs[2]].data.reshape(1, -1, 1, 1)
    return _requant_linear(acc, x.quant, w.quant, y.quant, y.dtype, n.name in _float_nodes(g))


def _qdense(g, n, env):
    x, w = g.tensors[n.inputs[0]], g.tensors[n.inputs[1]]
    y = g.tensors[n.outputs[0]]
    if n.name in _meta_list(g, "ort_float_mirror"):
        return _requant_float(_ort_float_op(g, n, "Gemm", _dq32(x, env[x.name])), y.quant, y.dtype)
    acc = _centered(x, env[x.name]) @ _wcentered(w).T
    if len(n.inputs) > 2 and n.inputs[2]:
        acc = acc + g.tensors[n.inputs[2]].data.reshape(1, -1)
    return _requant_linear(acc, x.quant, w.quant, y.quant, y.dtype, n.name in _float_nodes(g))


def _qavgpool(g, n, env):
    x = g.tensors[n.inputs[0]]
    y = g.tensors[n.outputs[0]]
    attrs = dict(n.attrs)
    k = list(attrs["kernel"])
    pads = list(attrs.get("pads") or [0, 0, 0, 0])
    xv = env[x.name]
    zx = float(np.asarray(x.quant.zero_point))
    if n.name in _float_nodes(g) and n.name in _meta_list(g, "ort_mlas_global_pool"):
        # DequantizeLinear -> float GlobalAveragePool (MlasPoolGlobalKernel) -> QuantizeLinear
        return _requant_float(_mlas_global_mean(_dq32(x, xv)), y.quant, y.dtype)
    if n.name in _float_nodes(g):
        # DequantizeLinear -> float ReduceMean -> QuantizeLinear
        deq = (f32(x.quant.scale) * (xv.astype(np.float64) - zx).astype(f32)).astype(np.float64)
        avg = (sum_pool(deq, attrs).astype(f32) / f32(k[0] * k[1])).astype(f32)
        return _requant_float(avg, y.quant, y.dtype)
    if list(x.shape[2:]) == k and not any(pads):
        # QLinearGlobalAveragePool (MLAS): integer sum, one float32 multiplier
        acc = xv.astype(np.float64).sum(axis=(2, 3), keepdims=True) - zx * (k[0] * k[1])
        m = f32(f32(x.quant.scale) / f32(f32(y.quant.scale) * f32(k[0] * k[1])))
        return _finish(acc.astype(f32) * m, y.quant, y.dtype)
    # QLinearAveragePool: dequantize to float32, sum the window in raster order in
    # float32, divide by the count, then rint(avg / s_y + z_y)
    deq = (f32(x.quant.scale) * (xv.astype(np.float64) - zx).astype(f32)).astype(f32)
    zy = float(np.asarray(y.quant.zero_point))
    shift = 128.0 if (y.dtype == "int8" and _s8_as_u8(g)) else 0.0
    win = _win(deq, attrs)                                  # N, C, H', W', kh, kw
    acc = np.zeros(win.shape[:4], f32)
    for i in range(k[0]):
        for j in range(k[1]):
            acc = (acc + win[..., i, j]).astype(f32)
    if attrs.get("count_include_pad", 0):
        cnt = np.full(acc.shape[2:], f32(k[0] * k[1]), f32)
    else:
        cnt = pool_counts(x.shape[2:], attrs).astype(f32)
    avg = (acc / cnt).astype(f32)
    v = (avg / f32(y.quant.scale)).astype(f32) + f32(zy + shift)
    r = np.rint(v.astype(f32)).astype(np.float64) - shift
    return np.clip(r, y.quant.lo, y.quant.hi).astype(y.dtype)


def _meta_list(g, key) -> set:
    return set(json.loads(g.meta.get(key, "[]")))


def _mlas_global_mean(x: np.ndarray) -> np.ndarray:
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


def _s8_as_u8(g) -> bool:
    """onnxruntime runs int8 QDQ activations as uint8 (zero point + 128) on x86; where the
    float rounding includes the zero point (QLinearAveragePool, QLinearAdd) that matters."""
    return g.meta.get("ort_int8_qdq") == "1"


def _win(x, attrs):
    from swsc.kernels import _windows, geometry
    k, s, p, d = geometry(attrs)
    return _windows(x, k, s, p, d)


def _qadd(g, n, env):
    y = g.tensors[n.outputs[0]]
    ins = [g.tensors[i] for i in n.inputs]
    vals = [t.data if t.is_const else env[t.name] for t in ins]
    sy, zy = f32(y.quant.scale), f32(float(np.asarray(y.quant.zero_point)))
    if len(ins) == 1:
        t = ins[0]
        real = f32(t.quant.scale) * (vals[0].astype(np.float64) - float(np.asarray(t.quant.zero_point))).astype(f32)
        v = real.astype(f32) / sy
        return _finish(v, y.quant, y.dtype)
    if n.name in _float_nodes(g):
        # DequantizeLinear -> float Add -> QuantizeLinear, all in float32 (no QLinearAdd fusion)
        total = None
        for t, v in zip(ins, vals):
            d = _dq32(t, v)
            total = d if total is None else (total + d).astype(f32)
        return _finish((total / sy).astype(f32), y.quant, y.dtype)
    if len(ins) == 2:
        shift = 128.0 if (y.dtype == "int8" and _s8_as_u8(g)) else 0.0
        a, b = (v.astype(np.float64) + shift for v in vals)
        a, b = a.astype(f32), b.astype(f32)
        zy = f32(float(np.asarray(y.quant.zero_point)) + shift)
        (ta, tb) = ins
        ra, rb = f32(f32(ta.quant.scale) / sy), f32(f32(tb.quant.scale) / sy)
        za = f32(float(np.asarray(ta.quant.zero_point)) + shift)
        zb = f32(float(np.asarray(tb.quant.zero_point)) + shift)
        fixed = f32(zy - _fma32(ra, za, f32(rb * zb)))
        if b.size == 1:
            fixed = f32(fixed + f32(b.reshape(-1)[0] * rb))
            v = _fma32(a, ra, fixed)
        elif a.size == 1:
            fixed = f32(fixed + f32(a.reshape(-1)[0] * ra))
            v = _fma32(b, rb, fixed)
        else:
            a, b = np.broadcast_arrays(a, b)
            v = _fma32(a, ra, _fma32(b, rb, fixed))
        # the kernel's float already includes z_y: round, then clamp to [lo, hi]
        r = np.rint(v).astype(np.float64) - shift
        return np.clip(r, y.quant.lo, y.quant.hi).astype(y.dtype)
    acc = sum(f32(t.quant.scale / y.quant.scale) * (v.astype(np.float64) - float(np.asarray(t.quant.zero_point)))
              for t, v in zip(ins, vals))
    return _finish(np.asarray(acc, np.float64).astype(f32), y.quant, y.dtype)


def _quantize(g, n, env):
    y = g.tensors[n.outputs[0]]
    x = env[n.inputs[0]].astype(f32)
    v = x / f32(y.quant.scale)
    return _finish(v, y.quant, y.dtype)


def _dequantize(g, n, env):
    x = g.tensors[n.inputs[0]]
    q = x.quant
    z = np.asarray(q.zero_point, np.float64)
    return ((env[x.name].astype(np.float64) - z).astype(f32) * f32(q.scale)).astype(f32)


def _softmax(g, n, env):
    x = env[n.inputs[0]].astype(f32)
    ax = n.attrs["axis"]
    e = np.exp(x - x.max(axis=ax, keepdims=True))
    return (e / e.sum(axis=ax, keepdims=True)).astype(f32)


def _maxpool(g, n, env):
    return max_pool(env[n.inputs[0]], n.attrs)


def _reshape(g, n, env):
    x = env[n.inputs[0]]
    return x.reshape((x.shape[0],) + tuple(n.attrs["shape"][1:]))


def _transpose(g, n, env):
    return np.transpose(env[n.inputs[0]], n.attrs["perm"])


def _concat(g, n, env):
    return np.concatenate([env[i] for i in n.inputs], axis=n.attrs["axis"])


def _float_arith(g, n, env):
    return float_arith(env[n.inputs[0]], env[n.inputs[1]], n.attrs["op"], n.attrs.get("reverse", False))


KERNELS = {"FloatArith": _float_arith, "Quantize": _quantize, "QConv": _qconv, "QDense": _qdense,
           "QAvgPool": _qavgpool, "QAdd": _qadd,
           "MaxPool": _maxpool, "Reshape": _reshape, "Transpose": _transpose, "Concat": _concat,
           "Dequantize": _dequantize, "Softmax": _softmax}


def run_node(graph, node, env: dict) -> np.ndarray:
    """Run one node on the values in env (tensor name -> array); returns its output."""
    k = KERNELS.get(node.op)
    if k is None:
        raise ValueError(f"the reference evaluator does not run op {node.op} (node '{node.name}')")
    return k(graph, node, env)


def evaluate(graph, x, *, keep: bool = False) -> dict[str, np.ndarray]:
    """Run the canonical graph on a batch. ``x``: array (single input) or {name: array}."""
    if not isinstance(x, dict):
        if len(graph.inputs) != 1:
            raise ValueError(f"graph has {len(graph.inputs)} inputs; pass a dict")
        x = {graph.inputs[0]: x}
    env: dict[str, np.ndarray] = {}
    for name in graph.inputs:
        a = np.asarray(x[name], np.float32)
        want = graph.tensors[name].shape[1:]
        if a.shape[1:] != tuple(want):
            a = a.reshape((-1,) + tuple(want))
        env[name] = a
    for name, t in graph.tensors.items():
        if t.is_const:
            env[name] = t.data
    for n in graph.nodes:
        env[n.outputs[0]] = run_node(graph, n, env)
    if keep:
        return {k: v for k, v in env.items() if not graph.tensors[k].is_const}
    return {o: env[o] for o in graph.outputs}
