"""The integer reference evaluator against onnxruntime, one QOperator op at a time, with
random scales, zero points and geometries (u8 and s8, per-tensor and per-channel)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from frontend_util import compare  # noqa: E402

from runtime.reference import evaluate  # noqa: E402
from swsc.frontend import import_model  # noqa: E402

MS = "com.microsoft"
f32 = np.float32


class _B:
    def __init__(self, seed, act):
        self.rng = np.random.default_rng(seed)
        self.act = act
        self.nodes, self.inits = [], {}
        self.k = 0

    def c(self, v, base="c"):
        self.k += 1
        name = f"{base}{self.k}"
        self.inits[name] = np.asarray(v)
        return name

    def qp(self, lo=0.004, hi=0.05):
        s = f32(self.rng.uniform(lo, hi))
        if self.act == "u8":
            z = np.uint8(self.rng.integers(0, 256))
        else:
            z = np.int8(self.rng.integers(-128, 128))
        return self.c(s, "s"), self.c(z, "z")

    def node(self, op, ins, domain=None, **attrs):
        self.k += 1
        out = f"t{self.k}"
        n = helper.make_node(op, ins, [out], name=f"{op.lower()}_{self.k}", **attrs)
        if domain:
            n.domain = domain
        self.nodes.append(n)
        return out

    def weight(self, shape, per_channel, dtype=np.int8):
        lo, hi = (-127, 128) if dtype == np.int8 else (0, 256)
        w = self.rng.integers(lo, hi, shape).astype(dtype)
        m = shape[0]
        if per_channel:
            s = self.rng.uniform(0.002, 0.02, m).astype(f32)
            z = (np.zeros(m, dtype) if dtype == np.int8 else self.rng.integers(100, 150, m).astype(dtype))
        else:
            s = f32(self.rng.uniform(0.002, 0.02))
            z = dtype(0) if dtype == np.int8 else dtype(128)
        return self.c(w, "w"), self.c(s, "ws"), self.c(z, "wz"), s

    def save(self, tmp, x_shape, y, name):
        xs, xz = self.qp(0.005, 0.01)
        q = helper.make_node("QuantizeLinear", ["x", xs, xz], ["xq"], name="q_in")
        nodes = [q] + [n for n in self.nodes]
        for n in nodes[1:]:
            n.input[:] = [{"XQ": "xq", "XS": xs, "XZ": xz}.get(i, i) for i in n.input]
        g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(v, k) for k, v in self.inits.items()])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(MS, 1)])
        m.ir_version = 8
        p = Path(tmp) / f"{name}.onnx"
        onnx.save(m, str(p))
        return p


def _finish(b, t, ys, yz):
    b.node("DequantizeLinear", [t, ys, yz])
    b.nodes[-1].output[0] = "y"


def _conv(b, pc, group=1, stride=1, pad=1, k=3):
    cin, cout = 4, 4 if group > 1 else 6
    w, ws, wz, s = b.weight((cout, cin // group, k, k), pc)
    bias = b.c(b.rng.integers(-3000, 3000, cout).astype(np.int32), "b")
    ys, yz = b.qp()
    t = b.node("QLinearConv", ["XQ", "XS", "XZ", w, ws, wz, ys, yz, bias], group=group, pads=[pad] * 4,
               strides=[stride] * 2, kernel_shape=[k, k])
    _finish(b, t, ys, yz)
    return (1, cin, 7, 6)


def _matmul(b, pc):
    w, ws, wz, _ = b.weight((24, 5), False)
    ys, yz = b.qp()
    t = b.node("QLinearMatMul", ["XQ", "XS", "XZ", w, ws, wz, ys, yz])
    _finish(b, t, ys, yz)
    return (1, 24)


def _gemm(b, pc):
    w, ws, wz, s = b.weight((7, 24), pc)
    bias = b.c(b.rng.integers(-3000, 3000, 7).astype(np.int32), "b")
    ys, yz = b.qp()
    t = b.node("QGemm", ["XQ", "XS", "XZ", w, ws, wz, bias, ys, yz], domain=MS, transB=1)
    _finish(b, t, ys, yz)
    return (1, 24)


def _add(b, pc):
    ys1, yz1 = b.qp()
    w, ws, wz, _ = b.weight((4, 4, 1, 1), False)
    t1 = b.node("QLinearConv", ["XQ", "XS", "XZ", w, ws, wz, ys1, yz1], kernel_shape=[1, 1])
    ys, yz = b.qp()
    t = b.node("QLinearAdd", ["XQ", "XS", "XZ", t1, ys1, yz1, ys, yz], domain=MS)
    if pc:   # a constant operand, broadcast per channel
        cq = b.c(b.rng.integers(0, 255, (4, 1, 1)).astype(np.uint8 if b.act == "u8" else np.int8) if b.act == "u8"
                 else b.rng.integers(-128, 127, (4, 1, 1)).astype(np.int8), "k")
        cs, cz = b.qp()
        ys2, yz2 = b.qp()
        t = b.node("QLinearAdd", [t, ys, yz, cq, cs, cz, ys2, yz2], domain=MS)
        ys, yz = ys2, yz2
    _finish(b, t, ys, yz)
    return (1, 4, 5, 6)


def _avgpool(b, pc):
    ys, yz = b.qp()
    t = b.node("QLinearAveragePool", ["XQ", "XS", "XZ", ys, yz], domain=MS, kernel_shape=[3, 3], strides=[2, 2],
               pads=[1, 1, 1, 1] if pc else [0, 0, 0, 0], count_include_pad=0 if pc else 1)
    _finish(b, t, ys, yz)
    return (1, 3, 9, 8)


def _gap(b, pc):
    ys, yz = b.qp()
    t = b.node("QLinearGlobalAveragePool", ["XQ", "XS", "XZ", ys, yz], domain=MS, channels_last=0)
    _finish(b, t, ys, yz)
    return (1, 5, 6, 7)


def _concat(b, pc):
    ys1, yz1 = b.qp()
    w, ws, wz, _ = b.weight((2, 3, 1, 1), False)
    t1 = b.node("QLinearConv", ["XQ", "XS", "XZ", w, ws, wz, ys1, yz1], kernel_shape=[1, 1])
    mp = b.node("MaxPool", ["XQ"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    ys, yz = b.qp()
    t = b.node("QLinearConcat", [ys, yz, t1, ys1, yz1, mp, "XS", "XZ"], domain=MS, axis=1)
    _finish(b, t, ys, yz)
    return (1, 3, 5, 5)


CASES = {"conv": _conv, "dwconv": lambda b, pc: _conv(b, pc, group=4, stride=2), "matmul": _matmul,
         "gemm": _gemm, "add": _add, "avgpool": _avgpool, "gap": _gap, "concat": _concat}


@pytest.mark.parametrize("act", ["u8", "s8"])
@pytest.mark.parametrize("pc", [False, True])
@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_onnxruntime(tmp_path, case, pc, act):
    for seed in range(3):
        b = _B(seed * 7 + len(case), act)
        shape = CASES[case](b, pc)
        p = b.save(tmp_path, shape, "y", f"{case}_{act}_{int(pc)}_{seed}")
        g = import_model(p)
        xs = b.rng.uniform(-1.5, 1.5, (64,) + shape[1:]).astype(np.float32)
        _, finals, _, _ = compare(g, p, xs, intermediates=False)
        for t, (eq, tot, mx) in finals.items():
            assert mx <= 1, f"{case}: {t} off by {mx}"
            assert eq / tot >= 0.999, f"{case} seed {seed}: {t} equal on {eq}/{tot}"


def test_quantize_matches_onnxruntime_on_ties(tmp_path):
    """Values exactly halfway between codes round to even, as MLAS does."""
    b = _B(0, "u8")
    s, z = b.c(f32(0.5), "s"), b.c(np.uint8(10), "z")
    b.nodes = [helper.make_node("QuantizeLinear", ["x", s, z], ["q"], name="q"),
               helper.make_node("DequantizeLinear", ["q", s, z], ["y"], name="dq")]
    g_ = helper.make_graph(b.nodes, "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                           [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                           initializer=[numpy_helper.from_array(v, k) for k, v in b.inits.items()])
    m = helper.make_model(g_, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    p = tmp_path / "q.onnx"
    onnx.save(m, str(p))
    g = import_model(p)
    x = np.array([[0.25, 0.75, -0.25, -0.75, 1.25, 200.0, -200.0, 0.0]], np.float32)
    got = evaluate(g, x)["y"]
    from frontend_util import run_ort
    want = run_ort(p, x)["y"]
    assert np.array_equal(got, want)


def test_any_batch_size(tmp_path):
    b = _B(1, "u8")
    shape = _conv(b, True)
    p = b.save(tmp_path, shape, "y", "batch")
    g = import_model(p)
    x = np.random.default_rng(0).uniform(-1, 1, (5,) + shape[1:]).astype(np.float32)
    one = np.concatenate([evaluate(g, x[i:i + 1])["y"] for i in range(5)])
    assert np.array_equal(evaluate(g, x)["y"], one)
    keep = evaluate(g, x, keep=True)
    assert "x" in keep and all(v.shape[0] == 5 for v in keep.values())
