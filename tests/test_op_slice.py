"""Slice (swsc/ops/slicing.py) against independent oracles: onnxruntime on models quantized by
onnxruntime's quantize_static (QDQ and QOperator), the exact quantized ANN for the SNN at
Ts = Tc - 1, and the gcc-built C for the integer mode."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from frontend_util import assert_matches_onnxruntime, ort_quantize
from onnx import TensorProto, helper, numpy_helper
from swsc.runtime import cbackend, interpreter, reference

from swsc.compiler import compile_graph, import_onnx
from swsc.errors import UnsupportedOpError
from swsc.options import CompileOptions

ort_quant = pytest.importorskip("onnxruntime.quantization")

#: (starts, ends, axes, steps) of the slices the test models apply, after a conv: a channel
#: subset by 2, a spatial crop, a reversed axis by a negative step, ends past the end (INT64_MAX)
SLICES = {
    "channels": ([1], [7], [1], [2]),
    "crop": ([1, 2], [9, 2**63 - 1], [2, 3], [1, 1]),
    "reverse": ([-1, 0], [-2**63, 11], [3, 2], [-2, 3]),
}


def _float_model(which: str, path) -> None:
    rng = np.random.default_rng(3)
    starts, ends, axes, steps = SLICES[which]
    c1 = rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)
    c2 = rng.normal(0, 0.3, (6, 8 if which != "channels" else 3, 3, 3)).astype(np.float32)
    fc = rng.normal(0, 0.3, (10, 6)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in
             [(c1, "c1"), (rng.normal(0, 0.1, 8).astype(np.float32), "b1"), (c2, "c2"),
              (np.zeros(6, np.float32), "b2"), (fc, "fc"), (np.zeros(10, np.float32), "bf")]]
    inits += [numpy_helper.from_array(np.array(v, np.int64), n)
              for v, n in [(starts, "st"), (ends, "en"), (axes, "ax"), (steps, "sp")]]
    nodes = [helper.make_node("Conv", ["input", "c1", "b1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Slice", ["r", "st", "en", "ax", "sp"], ["s"]),
             helper.make_node("Conv", ["s", "c2", "b2"], ["b"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["b"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "bf"], ["output"], transB=1)]
    g = helper.make_graph(nodes, "slice", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 12, 12])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 10])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))


def _inputs(n, seed):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 1, 3, 12, 12)).astype(np.float32)



def quantized_model(which: str, fmt: str, d):
    """The model with slice ``which`` quantized by onnxruntime (``fmt`` qdq or qop) in ``d``."""
    _float_model(which, d / "float.onnx")
    ort_quantize(str(d / "float.onnx"), str(d / "q.onnx"), _inputs(16, 0), fmt)
    return d / "q.onnx"


@pytest.fixture(scope="module", params=[(w, f) for w in SLICES for f in ("qdq", "qop")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def model(request, tmp_path_factory):
    which, fmt = request.param
    return quantized_model(which, fmt, tmp_path_factory.mktemp(f"slice-{which}-{fmt}"))


def test_reference_matches_onnxruntime(model):
    g = import_onnx(model)
    assert "Slice" in {n.op for n in g.nodes}
    assert_matches_onnxruntime(model.name, g, model, _inputs(24, 1)[:, 0], min_exact=0.999)


def test_snn_exact_and_c_bit_identical(model, tmp_path):
    g = import_onnx(model)
    xs = _inputs(24, 2)[:, 0]
    ann = reference.evaluate(g, xs, keep=True)
    sg = compile_graph(g, CompileOptions(tc=8, ts=7), integer=True)
    snn = interpreter.run(sg, xs, intermediate=True, mode="int")
    for name, q in snn.intermediates.items():       # every tensor, the slice's output included
        if name in ann:
            assert np.array_equal(np.rint(q), ann[name]), f"tensor '{name}' differs from the exact ANN"
    fl = interpreter.run(sg, xs, intermediate=True, mode="float")
    for name in ann:
        if name in fl.intermediates:
            assert np.array_equal(np.rint(fl.intermediates[name]), ann[name]), name
    cbackend.emit_c(sg, tmp_path)
    out, counts = cbackend.run_binary(cbackend.build(tmp_path), cbackend.quantize_input(sg, xs))
    assert np.array_equal(np.asarray(out).reshape(-1), np.rint(snn.intermediates[_decoded_tensor(sg)]).reshape(-1))
    assert counts == {s.name: (s.spikes_pos, s.spikes_neg) for s in snn.layers}


def _decoded_tensor(sg):
    dec = sg.producer(sg.outputs[0])
    return dec.inputs[0]


def test_slice_of_the_batch_axis_is_refused(tmp_path):
    _float_model("crop", tmp_path / "f.onnx")
    m = onnx.load(str(tmp_path / "f.onnx"))
    for init in m.graph.initializer:
        if init.name == "ax":
            init.CopyFrom(numpy_helper.from_array(np.array([0, 3], np.int64), "ax"))
    onnx.save(m, str(tmp_path / "bad.onnx"))
    ort_quantize(tmp_path / "bad.onnx", tmp_path / "q.onnx", _inputs(16, 0), activation_type=ort_quant.QuantType.QInt8)
    with pytest.raises(UnsupportedOpError, match="batch axis"):
        import_onnx(tmp_path / "q.onnx")
