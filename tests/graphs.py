"""Small hand-built canonical graphs for unit tests of the IR, passes and runtime."""
from __future__ import annotations

import numpy as np

from swsc.ir import Graph, Quant, Tensor
from swsc.ops import verify


def tiny_cnn(seed: int = 0, *, in_dtype: str = "uint8") -> Graph:
    """Quantize -> QConv(pad 1, nonzero input zero point) -> MaxPool -> Reshape -> QDense -> Dequantize."""
    rng = np.random.default_rng(seed)
    g = Graph("tiny")
    lo, hi = (0, 255) if in_dtype == "uint8" else (-128, 127)
    z = 128 if in_dtype == "uint8" else 3
    g.add_tensor(Tensor("x", "float32", (1, 2, 6, 6)))
    g.inputs = ["x"]
    g.add_tensor(Tensor("q", in_dtype, (1, 2, 6, 6), quant=Quant(1 / 127.5, z, None, lo, hi)))
    g.add_node("Quantize", "quant", ["x"], ["q"])
    g.add_const("w", rng.integers(-127, 128, (4, 2, 3, 3)).astype(np.int8),
                Quant(rng.uniform(0.002, 0.004, 4), np.zeros(4, int), 0, -128, 127))
    g.add_const("b", rng.normal(0, 50, 4))
    g.add_tensor(Tensor("c", "uint8", (1, 4, 6, 6), quant=Quant(0.02, 0, None, 0, 255)))
    g.add_node("QConv", "conv", ["q", "w", "b"], ["c"], {"kernel": [3, 3], "pads": [1, 1, 1, 1], "strides": [1, 1]})
    g.add_tensor(Tensor("m", "uint8", (1, 4, 3, 3), quant=Quant(0.02, 0, None, 0, 255)))
    g.add_node("MaxPool", "pool", ["c"], ["m"], {"kernel": [2, 2], "strides": [2, 2]})
    g.add_tensor(Tensor("r", "uint8", (1, 36), quant=Quant(0.02, 0, None, 0, 255)))
    g.add_node("Reshape", "flat", ["m"], ["r"], {"shape": [1, 36]})
    return dense_output(g, "r", "w2", rng.integers(-127, 128, (5, 36)).astype(np.int8),
                        Quant(0.004, 0, None, -128, 127), Quant(0.1, 100, None, 0, 255))


def dense_output(g: Graph, x: str, w_name: str, w: np.ndarray, w_quant: Quant, out_quant: Quant) -> Graph:
    """Close a test graph: QDense(x, w) -> 'd' -> Dequantize -> the graph output 'y'; verified."""
    g.add_const(w_name, w, w_quant)
    g.add_tensor(Tensor("d", "uint8", (1, w.shape[0]), quant=out_quant))
    g.add_node("QDense", "fc", [x, w_name], ["d"])
    g.add_tensor(Tensor("y", "float32", (1, w.shape[0])))
    g.add_node("Dequantize", "dq", ["d"], ["y"])
    g.outputs = ["y"]
    verify(g)
    return g


def residual(seed: int = 0) -> Graph:
    """Quantize -> conv0 -> conv1 -> QAdd(conv1, conv0) -> Dequantize: the shortcut from conv0
    skips a TSA layer, so scheduling must insert a delay."""
    rng = np.random.default_rng(seed)
    g = Graph("res")
    g.add_tensor(Tensor("x", "float32", (1, 3, 5, 5)))
    g.inputs = ["x"]
    q = lambda s, z: Quant(s, z, None, 0, 255)  # noqa: E731
    # irregular scales, as calibration gives: exact rounding ties are then as rare as in real models
    g.add_tensor(Tensor("q", "uint8", (1, 3, 5, 5), quant=q(0.0041137, 0)))
    g.add_node("Quantize", "quant", ["x"], ["q"])
    prev = "q"
    for i in range(2):
        g.add_const(f"w{i}", rng.integers(-127, 128, (3, 3, 3, 3)).astype(np.int8),
                    Quant(rng.uniform(0.002, 0.004, 3), np.zeros(3, int), 0, -128, 127))
        g.add_tensor(Tensor(f"c{i}", "uint8", (1, 3, 5, 5), quant=q(0.0213 + 0.0071 * i, 0)))
        g.add_node("QConv", f"conv{i}", [prev, f"w{i}"], [f"c{i}"], {"kernel": [3, 3], "pads": [1, 1, 1, 1]})
        prev = f"c{i}"
    g.add_tensor(Tensor("s", "uint8", (1, 3, 5, 5), quant=q(0.0337, 0)))
    g.add_node("QAdd", "add", ["c1", "c0"], ["s"])
    g.add_tensor(Tensor("y", "float32", (1, 3, 5, 5)))
    g.add_node("Dequantize", "dq", ["s"], ["y"])
    g.outputs = ["y"]
    verify(g)
    return g


def wide_dense(fan_in: int = 16384) -> Graph:
    """Quantize -> QDense -> Dequantize with full-scale weights, +127 over the first half of a
    wide input and -127 over the second (and the negation): on inputs that repeat their
    first half the exact sum is 0, while its running sums pass 2^24, beyond float32's exact
    integers."""
    g = Graph("wide")
    g.add_tensor(Tensor("x", "float32", (1, fan_in)))
    g.inputs = ["x"]
    s_x, s_w = 1 / 255, 0.01
    g.add_tensor(Tensor("q", "uint8", (1, fan_in), quant=Quant(s_x, 0, None, 0, 255)))
    g.add_node("Quantize", "quant", ["x"], ["q"])
    half = np.repeat(np.array([127, -127], dtype=np.int8), fan_in // 2)
    return dense_output(g, "q", "w", np.stack([half, -half]), Quant(s_w, 0, None, -128, 127),
                        Quant(s_x * s_w * 16, 128, None, 0, 255))    # 16 accumulator units per LSB
