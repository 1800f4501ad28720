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
* QConv of a Mul/Div/Add/Sub by constants of a dequantized tensor (``meta["ort_affine"]``):
  QLinearMul's ``rint(fp32(fp32((x - z_x)(c - z_c)) * fp32(fp32(s_x s_c) / s_y)) + z_y)``, or
  DequantizeLinear, the ops in float32, QuantizeLinear (swsc/requant.py ``ort_affine``)
* everything is clamped to the output tensor's ``[lo, hi]``.

Clusters onnxruntime cannot fuse run in float32 there (``meta["ort_float_nodes"]``), and
are mirrored: a residual ``Add`` as ``DQ + DQ`` in float32, a global pool in MLAS's float32
summation order (``ort_mlas_global_pool``), a plain Conv/Gemm through onnxruntime's own float
kernels on the dequantized operands (``ort_float_mirror``), the others as their real value.
``FloatArith`` (a float head) is float32 elementwise arithmetic.

Each op computes this in its ``reference(graph, node, env)`` hook (``swsc/ops/<op>.py``,
the ``# -- reference (ANN)`` section), with the shared float32 rounding of swsc/requant.py.
"""
from __future__ import annotations

import numpy as np

from swsc.errors import SwscError
from swsc.ops import op_of


def run_node(graph, node, env: dict) -> np.ndarray:
    """Run one node on the values in env (tensor name -> array); returns its output."""
    hook = getattr(op_of(node), "reference", None)
    if hook is None:
        raise SwscError("the reference evaluator does not run this op (it runs canonical quantized graphs)",
                        node=node.name, op=node.op)
    return hook(graph, node, env)


def evaluate(graph, x, *, keep: bool = False) -> dict[str, np.ndarray]:
    """Run the canonical graph on a batch. ``x``: array (single input) or {name: array}."""
    if not isinstance(x, dict):
        if len(graph.inputs) != 1:
            raise SwscError(f"graph has {len(graph.inputs)} inputs; pass a dict")
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
