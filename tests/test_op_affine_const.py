"""Mul/Div/Add/Sub by constants of a dequantized tensor, and QLinearMul with a constant operand
(a depthwise 1x1 QConv, swsc/frontend/match_postops.py), against independent oracles:
onnxruntime on models quantized by onnxruntime's quantize_static (QDQ and QOperator) and a
torch.onnx.export net, the exact quantized ANN for the SNN at Ts = Tc - 1, and the gcc-built C
for the integer mode."""
from __future__ import annotations

import contextlib
import io
import json
import warnings

import numpy as np
import onnx
import pytest
from frontend_util import assert_c_equals_int, assert_matches_onnxruntime, exact_snn, ort_quantize
from onnx import TensorProto, helper, numpy_helper
from swsc.runtime import reference

from swsc.compiler import import_onnx
from swsc.errors import UnsupportedOpError

ort_quant = pytest.importorskip("onnxruntime.quantization")

C = 6


def _float_model(path) -> None:
    """Conv -> Relu -> Mul(per-channel) -> Conv -> Relu -> Mul(-0.7) -> Div(3) -> Sub(per-channel)
    -> Conv -> Relu -> GlobalAveragePool -> Flatten -> Relu -> Mul(per-feature) -> Gemm: constant ops
    on dequantized tensors, none directly after a linear op. onnxruntime's quantizer quantizes a
    Mul's constant (DQ(x) * DQ(c) -> Q, fused to QLinearMul; a negative scalar makes the weight the
    constant's negative integer), and leaves Div and Sub in float (DQ -> Div -> Sub -> Q)."""
    rng = np.random.default_rng(5)
    shapes = {"c1": (C, 3, 3, 3), "c2": (C, C, 3, 3), "c3": (8, C, 3, 3), "fc": (10, 8)}
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, s).astype(np.float32), n) for n, s in shapes.items()]
    inits += [numpy_helper.from_array(a.astype(np.float32), n) for a, n in [
        (rng.normal(0, 0.1, C), "b1"), (rng.normal(0, 0.1, C), "b2"), (np.zeros(8), "b3"), (np.zeros(10), "bf"),
        (rng.uniform(0.3, 1.5, (C, 1, 1)), "k1"), (np.array(-0.7), "k2"), (np.array(3.0), "k3"),
        (rng.uniform(-0.2, 0.2, (1, C, 1, 1)), "k4"), (rng.uniform(0.5, 2.0, 8), "fs")]]
    nodes = [helper.make_node("Conv", ["input", "c1", "b1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Mul", ["r", "k1"], ["m1"]),
             helper.make_node("Conv", ["m1", "c2", "b2"], ["b"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["b"], ["r2"]),
             helper.make_node("Mul", ["r2", "k2"], ["m2"]),
             helper.make_node("Div", ["m2", "k3"], ["m3"]),
             helper.make_node("Sub", ["m3", "k4"], ["m4"]),
             helper.make_node("Conv", ["m4", "c3", "b3"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r3"]),
             helper.make_node("GlobalAveragePool", ["r3"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             # a per-feature scale of a [1, K] tensor (no linear op directly before it)
             helper.make_node("Relu", ["f"], ["fr"]),
             helper.make_node("Mul", ["fr", "fs"], ["fm"]),
             helper.make_node("Gemm", ["fm", "fc", "bf"], ["output"], transB=1)]
    g = helper.make_graph(nodes, "affine", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 10, 10])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 10])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))


def _torch_model(path) -> None:
    """x * 0.5 and a learnable per-channel scale on activations, as torch.onnx.export writes them."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = torch.nn.Conv2d(3, C, 3, padding=1)
            self.c2 = torch.nn.Conv2d(C, 8, 3, padding=1)
            self.scale = torch.nn.Parameter(torch.linspace(0.5, 1.5, C).reshape(1, C, 1, 1))
            self.fc = torch.nn.Linear(8, 10)

        def forward(self, x):
            x = torch.relu(self.c1(x)) * 0.5
            x = torch.relu(self.c2(x * self.scale / 2.0))
            return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))

    torch.manual_seed(0)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(Net().eval(), (torch.zeros(1, 3, 10, 10),), str(path), dynamo=False, opset_version=13,
                          input_names=["input"], output_names=["output"])


def _inputs(n, seed):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 1, 3, 10, 10)).astype(np.float32)



def quantized_model(which: str, fmt: str, d):
    if which == "torch":
        pytest.importorskip("torch")
        _torch_model(d / "float.onnx")
    else:
        _float_model(d / "float.onnx")
    ort_quantize(str(d / "float.onnx"), str(d / "q.onnx"), _inputs(16, 0), fmt)
    return d / "q.onnx"


WHICH = ["onnx", "torch"]


@pytest.fixture(scope="module", params=[(w, f) for w in WHICH for f in ("qdq", "qop")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def model(request, tmp_path_factory):
    which, fmt = request.param
    return quantized_model(which, fmt, tmp_path_factory.mktemp(f"affine-{which}-{fmt}"))


def _depthwise(g):
    """The depthwise 1x1 convs the constant ops became."""
    return [n for n in g.nodes if n.op == "QConv" and n.attrs["kernel"] == [1, 1]
            and n.attrs.get("group", 1) == g.tensors[n.inputs[0]].shape[1] > 1]


def test_reference_matches_onnxruntime(model):
    g = import_onnx(model)
    assert len(_depthwise(g)) >= 3
    if model.parent.name.startswith("affine-onnx"):
        # the QLinearMuls (fused or QOperator) keep the constant's integer as the weight and the
        # reference computes MlasQLinearMul; Div -> Sub stays one float32 cluster
        spec = json.loads(g.meta["ort_affine"])
        assert sorted(v["kind"] for v in spec.values()) == ["float", "qlinear_mul", "qlinear_mul", "qlinear_mul"]
        assert [[s[0] for s in v["steps"]] for v in spec.values() if v["kind"] == "float"] == [["Div", "Sub"]]
    assert_matches_onnxruntime(model.name, g, model, _inputs(24, 1)[:, 0], min_exact=0.999)


def test_snn_exact_and_c_bit_identical(model, tmp_path):
    g = import_onnx(model)
    xs = _inputs(24, 2)[:, 0]
    sg, snn, seen = exact_snn(g, xs)        # every tensor, the new ops' outputs included
    assert seen >= 8
    assert_c_equals_int(sg, snn, xs, tmp_path)


def _refused(tmp_path, node):
    _float_model(tmp_path / "f.onnx")
    m = onnx.load(str(tmp_path / "f.onnx"))
    m.graph.node[2].CopyFrom(node)
    m.graph.initializer.append(numpy_helper.from_array(np.random.default_rng(0).uniform(
        0.5, 1, (1, C, 10, 10)).astype(np.float32), "kk"))
    onnx.save(m, str(tmp_path / "bad.onnx"))
    ort_quantize(tmp_path / "bad.onnx", tmp_path / "q.onnx", _inputs(16, 0), activation_type=ort_quant.QuantType.QInt8)
    return tmp_path / "q.onnx"


def test_spatial_constant_is_refused_and_square_is_a_table(tmp_path):
    q = _refused(tmp_path, helper.make_node("Mul", ["r", "kk"], ["m1"], name="spatial"))
    with pytest.raises(UnsupportedOpError, match="spatial.*not per-channel"):
        import_onnx(q)
    # x * x is a function of one tensor: a table (tests/test_op_lut.py refuses a product of two
    # independent activations), equal to onnxruntime
    q = _refused(tmp_path, helper.make_node("Mul", ["r", "r"], ["m1"], name="square"))
    g = import_onnx(q)
    assert "Lut" in {n.op for n in g.nodes}
    assert_matches_onnxruntime("square", g, q, _inputs(24, 1)[:, 0], min_exact=0.999)


def _tiny(path, ops, sx, sy, extra_inits=(), domain_ms=False):
    """input -> Q(sx) -> DQ -> ops -> Q(sy) -> DQ -> output on [1, 4, 8, 8] (uint8, zero point 3)."""
    inits = [numpy_helper.from_array(np.float32(sx), "sx"), numpy_helper.from_array(np.uint8(3), "zx"),
             numpy_helper.from_array(np.float32(sy), "sy"), numpy_helper.from_array(np.uint8(3), "zy"),
             *extra_inits]
    nodes = [helper.make_node("QuantizeLinear", ["input", "sx", "zx"], ["q"]), *ops,
             helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["output"])]
    if not any(o.output[0] == "yq" for o in ops):     # a float op: its QuantizeLinear
        nodes.insert(-1, helper.make_node("QuantizeLinear", ["m", "sy", "zy"], ["yq"]))
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4, 8, 8])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    opsets = [helper.make_opsetid("", 13)] + ([helper.make_opsetid("com.microsoft", 1)] if domain_ms else [])
    onnx.save(helper.make_model(g, opset_imports=opsets, ir_version=8), str(path))
    return path


def _every_code(sx):
    """Each uint8 input code once per channel (4 x 64 = 256)."""
    return (sx * (np.arange(256, dtype=np.float32) - 3)).reshape(1, 4, 8, 8).astype(np.float32)


@pytest.mark.parametrize("form", ["div", "qlinear_mul"])
def test_float32_arithmetic_mirrored_on_ties(form, tmp_path):
    """Where exact arithmetic lands on ties, onnxruntime's float32 decides them: the reference
    mirrors it on every input code (and exact rounding would disagree: the check can fail)."""
    from frontend_util import run_ort

    sx = 0.0371
    if form == "div":        # y = (x - zx) sx / 3 / sy = (x - zx) / 2 exactly: a tie on every odd code
        sy = float(np.float32(sx * 2 / 3))
        ops = [helper.make_node("DequantizeLinear", ["q", "sx", "zx"], ["d"]),
               helper.make_node("Div", ["d", "three"], ["m"])]
        path = _tiny(tmp_path / "div.onnx", ops, sx, sy, [numpy_helper.from_array(np.float32(3.0), "three")])
    else:                    # QLinearMul by a per-channel quantized constant
        sy = sx * 0.37
        c = np.array([7, 12, 200, 255], np.uint8).reshape(4, 1, 1)
        ops = [helper.make_node("QLinearMul", ["q", "sx", "zx", "c", "sc", "zc", "sy", "zy"], ["yq"],
                                domain="com.microsoft")]
        path = _tiny(tmp_path / "qlmul.onnx", ops, sx, sy, [numpy_helper.from_array(c, "c"),
                     numpy_helper.from_array(np.float32(0.0113), "sc"), numpy_helper.from_array(np.uint8(9), "zc")],
                     domain_ms=True)
    g = import_onnx(path)
    x = _every_code(sx)
    ort = run_ort(path, x, ["yq"])["yq"]
    ref = reference.evaluate(g, x, keep=True)
    assert np.array_equal(ref["yq"], ort)
    # without the mirror (QLinearConv's multiplier requantization of the same accumulator)
    exact = g.clone()
    exact.meta.pop("ort_affine")
    if form == "div":
        assert (reference.evaluate(exact, x)["output"] != reference.evaluate(g, x)["output"]).sum() > 10
