"""1-D Conv, MaxPool, AveragePool and GlobalAveragePool on [N, C, L] (the 2-D forms with a unit H
axis, swsc/frontend/match_linear.py) against independent oracles: onnxruntime on models quantized
by onnxruntime's quantize_static (QDQ and QOperator) and a torch.onnx.export nn.Conv1d net, the
exact quantized ANN for the SNN at Ts = Tc - 1, and the gcc-built C for the integer mode."""
from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import onnx
import pytest
from frontend_util import assert_c_equals_int, assert_matches_onnxruntime, exact_snn, ort_quantize
from onnx import TensorProto, helper, numpy_helper

from swsc.compiler import import_onnx
from swsc.errors import UnsupportedOpError

ort_quant = pytest.importorskip("onnxruntime.quantization")

L = 40


def _float_model(path) -> None:
    """Conv1d (stride 2, asymmetric pads) -> Relu -> Mul -> MaxPool1d (ceil_mode) -> grouped dilated
    Conv1d -> Relu -> AveragePool1d (padded) -> Conv1d (auto_pad SAME_UPPER) -> Relu ->
    GlobalAveragePool -> Flatten -> Gemm."""
    rng = np.random.default_rng(11)
    c1 = rng.normal(0, 0.3, (8, 3, 5)).astype(np.float32)
    c2 = rng.normal(0, 0.3, (8, 4, 3)).astype(np.float32)
    c3 = rng.normal(0, 0.3, (6, 8, 4)).astype(np.float32)
    fc = rng.normal(0, 0.3, (10, 6)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in
             [(c1, "c1"), (rng.normal(0, 0.1, 8).astype(np.float32), "b1"), (c2, "c2"),
              (rng.normal(0, 0.1, 8).astype(np.float32), "b2"), (c3, "c3"), (np.zeros(6, np.float32), "b3"),
              (fc, "fc"), (np.zeros(10, np.float32), "bf"), (rng.uniform(0.5, 1.5, (8, 1)).astype(np.float32), "k")]]
    nodes = [helper.make_node("Conv", ["input", "c1", "b1"], ["a"], strides=[2], pads=[2, 1]),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Mul", ["r", "k"], ["rk"]),         # a per-channel scale of a [N, C, L] tensor
             helper.make_node("MaxPool", ["rk"], ["p"], kernel_shape=[3], strides=[2], ceil_mode=1),
             helper.make_node("Conv", ["p", "c2", "b2"], ["b"], group=2, dilations=[2], pads=[2, 2]),
             helper.make_node("Relu", ["b"], ["r2"]),
             helper.make_node("AveragePool", ["r2"], ["ap"], kernel_shape=[3], strides=[1], pads=[1, 1]),
             helper.make_node("Conv", ["ap", "c3", "b3"], ["c"], auto_pad="SAME_UPPER"),
             helper.make_node("Relu", ["c"], ["r3"]),
             helper.make_node("GlobalAveragePool", ["r3"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "bf"], ["output"], transB=1)]
    g = helper.make_graph(nodes, "conv1d", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, L])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 10])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))


def _torch_model(path) -> None:
    """nn.Conv1d / MaxPool1d / AvgPool1d / AdaptiveAvgPool1d as torch.onnx.export writes them."""
    import torch

    net = torch.nn.Sequential(
        torch.nn.Conv1d(3, 8, 5, stride=2, padding=2), torch.nn.ReLU(), torch.nn.MaxPool1d(2),
        torch.nn.Conv1d(8, 8, 3, padding=2, dilation=2, groups=4), torch.nn.ReLU(), torch.nn.AvgPool1d(2),
        torch.nn.Conv1d(8, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(),
        torch.nn.Linear(6, 10))
    torch.manual_seed(0)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (torch.zeros(1, 3, L),), str(path), dynamo=False, opset_version=13,
                          input_names=["input"], output_names=["output"])


def _inputs(n, seed):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 1, 3, L)).astype(np.float32)



def quantized_model(which: str, fmt: str, d):
    if which == "torch":
        pytest.importorskip("torch")
        _torch_model(d / "float.onnx")
    else:
        _float_model(d / "float.onnx")
    ort_quantize(str(d / "float.onnx"), str(d / "q.onnx"), _inputs(16, 0), fmt)
    return d / "q.onnx"


@pytest.fixture(scope="module", params=[(w, f) for w in ("onnx", "torch") for f in ("qdq", "qop")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def model(request, tmp_path_factory):
    which, fmt = request.param
    return quantized_model(which, fmt, tmp_path_factory.mktemp(f"conv1d-{which}-{fmt}"))


def test_reference_matches_onnxruntime(model):
    g = import_onnx(model)
    ops = [n.op for n in g.nodes]
    assert ops.count("QConv") == 3 + ("onnx" in model.parent.name) and "MaxPool" in ops and ops.count("QAvgPool") == 2
    # the model's own 3-D tensors between the 2-D windows
    assert any(len(t.shape) == 3 and t.quant is not None for t in g.tensors.values())
    assert_matches_onnxruntime(model.name, g, model, _inputs(24, 1)[:, 0], min_exact=0.999)


def test_snn_exact_and_c_bit_identical(model, tmp_path):
    g = import_onnx(model)
    xs = _inputs(24, 2)[:, 0]
    sg, snn, seen = exact_snn(g, xs)        # every tensor, the new ops' outputs included
    assert seen >= 12
    assert_c_equals_int(sg, snn, xs, tmp_path)


def test_3d_convolution_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3, 3)).astype(np.float32), "w")]
    g = helper.make_graph([helper.make_node("Conv", ["input", "w"], ["output"], name="conv3d")], "c3",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 6, 6, 6])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4, 4, 4, 4])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8),
              str(tmp_path / "f.onnx"))
    xs = rng.uniform(-1, 1, (4, 1, 3, 6, 6, 6)).astype(np.float32)
    ort_quantize(tmp_path / "f.onnx", tmp_path / "q.onnx", xs, activation_type=ort_quant.QuantType.QInt8)
    with pytest.raises(UnsupportedOpError, match="conv3d.*only 1-D and 2-D convolution"):
        import_onnx(tmp_path / "q.onnx")
