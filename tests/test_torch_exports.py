"""Models made the way users make them (tests/corpus_torch.py: torch.onnx.export legacy and
dynamo, onnxruntime quantize_static QDQ/QOperator/A16W8, PyTorch QAT prepared and converted
on the x86, fbgemm and qnnpack backends, float heads, batch-1 graphs without a batch axis).

Two oracles: onnxruntime on the original model (the reference evaluator must equal it,
final and layer-by-layer), and the exact quantized ANN (the SNN at Ts = Tc - 1, float and
integer mode, must equal it on every element).

Before this corpus's fixes 23 of its 48 models were refused: every MLP (float Flatten or
Reshape of the input before the quantizer), the QAT-prepared ResNets (Relu after the
residual add feeds the next layer with no Q/DQ pair), the float heads (NHWC Transpose,
per-channel Sub/Div normalization), the batch-less LeNets (output [10]) and the 16-bit models.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

import corpus_torch as ct
from frontend_util import assert_c_equals_int, assert_matches_onnxruntime, exact_snn, run_ort
from swsc.check import check
from swsc.compiler import compile_graph, import_onnx
from swsc.errors import PassError
from swsc.options import CompileOptions
from swsc.passes import FoldZeroPoints
from swsc.passmanager import PassManager
from swsc.runtime.interpreter import run

pytestmark = pytest.mark.skipif(not ct.available(), reason="torch is not installed (pip install -e '.[dev]')")

N_REF = 32
N_SNN = 4
#: onnxruntime has no 16-bit integer kernels: it runs A16W8 clusters in float32; the reference
#: mirrors that with onnxruntime's own float kernels (docs/frontend.md), as bit-identical as 8-bit
MIN_EXACT = {8: 0.999, 16: 0.999}


def _names():
    return [n for n in ct.model_names() if ct.dynamo_available() or "-dynamo-" not in n] + list(ct.ACTIVATIONS)


def _bits(graph) -> int:
    return 16 if any(t.dtype in ("uint16", "int16") for t in graph.tensors.values()) else 8


@pytest.mark.parametrize("name", _names())
def test_reference_equals_onnxruntime(name, corpus_dir):
    path = ct.get_model(name, corpus_dir)
    g = import_onnx(path)
    xs = ct.make_inputs(name, N_REF, seed=1)
    assert_matches_onnxruntime(name, g, path, xs, min_exact=MIN_EXACT[_bits(g)])


@pytest.mark.parametrize("name", _names())
def test_snn_equals_the_exact_quantized_ann(name, corpus_dir):
    g = import_onnx(ct.get_model(name, corpus_dir))
    tc = _bits(g)                                  # Tc = 16 codes 16-bit activations exactly
    x = ct.make_inputs(name, N_SNN, seed=11)
    ann = run(PassManager([FoldZeroPoints()]).run(g), x, intermediate=True).intermediates
    options = CompileOptions(tc=tc, ts=tc - 1)
    modes = [(compile_graph(g, options), "float")]
    try:
        modes.append((compile_graph(g, options, integer=True), "int"))
    except PassError as e:
        # at Tc = 16 a residual Add's membrane bound does not fit the default 32-bit membranes
        # (nor int64 with --membrane-bits 64; docs/integer.md): the integer mode, and so the C
        # backend, refuse it with this error; the float runtime is exact
        assert tc == 16 and ("inside 32 bits" in str(e) or "membrane bound exceeds int64" in str(e)), e
    for sg, mode in modes:
        snn = run(sg, x, intermediate=True, mode=mode).intermediates
        shared = [k for k in snn if k in ann]
        assert len(shared) >= 3
        for k in shared:
            assert np.array_equal(np.rint(snn[k]), np.rint(ann[k])), (mode, k)


def test_float_head_shape_ops_follow_the_quantizer(corpus_dir):
    """The MLP's Flatten of the float input is moved past the per-tensor QuantizeLinear (exact):
    the graph input keeps the model's shape and an integer Reshape follows the Quantize."""
    g = import_onnx(ct.get_model("mlp-legacy-qdq-pc-u8", corpus_dir))
    assert g.tensors[g.inputs[0]].shape == (1, 1, 8, 8)
    q = next(n for n in g.nodes if n.op == "Quantize")
    assert [n.op for n in g.nodes if q.outputs[0] in n.inputs] == ["Reshape"]


def test_batchless_output_keeps_a_batch_axis_in_the_ir(corpus_dir, tmp_path):
    path = ct.get_model("lenet_squeeze-legacy-qdq-pc-u8", corpus_dir)
    g = import_onnx(path)
    assert g.tensors[g.outputs[0]].shape == (1, 10)
    assert g.meta["batchless_outputs"] == "output"
    # swsc check feeds onnxruntime one frame at a time and stacks its [10] outputs
    np.savez(tmp_path / "d.npz", x=ct.make_inputs("lenet_squeeze", 6, seed=2))
    rep = check(path, tmp_path / "d.npz", ann=True)
    assert rep["samples"] == 6 and rep["exact_fraction"] == 1.0 and rep["top1_agreement"] == 1.0, rep
    # the runtimes give each frame the model's own output shape (onnxruntime's [10], not the IR's [1, 10])
    import onnxruntime as ort

    xs = ct.make_inputs("lenet_squeeze", 3, seed=2)
    ort_shape = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": xs[:1]})[0].shape
    assert ort_shape == (10,)
    assert run(compile_graph(g, CompileOptions()), xs).outputs["output"].shape == (3,) + ort_shape


@pytest.mark.slow
@pytest.mark.skipif(shutil.which(os.environ.get("CC") or "gcc") is None, reason="no C compiler")
def test_c_equals_the_integer_mode_on_every_model(corpus_dir, tmp_path):
    """The gcc-built C of every model of the corpus (Ts = 2; Tc = 16 for A16W8 where the integer
    mode fits its membranes) equals the numpy integer mode: decoded outputs and every layer's
    spike counts. Strict, unoptimized and without sanitizers, to keep 48 builds in budget."""
    built = 0
    for name in _names():
        g = import_onnx(ct.get_model(name, corpus_dir))
        tc = _bits(g)
        try:
            sg = compile_graph(g, CompileOptions(tc=tc, ts=2), integer=True)
        except PassError as e:      # a 16-bit residual Add's membrane bound (as above)
            assert tc == 16, (name, e)
            continue
        xs = ct.make_inputs(name, 2, seed=7)
        snn = run(sg, xs, intermediate=True, mode="int")
        assert_c_equals_int(sg, snn, xs, tmp_path / name, "-std=c99 -O0 -Wall -Wextra -Werror -pedantic")
        built += 1
    assert built >= len(_names()) - 2


@pytest.mark.skipif(shutil.which(os.environ.get("CC") or "gcc") is None, reason="no C compiler")
@pytest.mark.parametrize("name", ["lenet_norm-legacy-qdq-pc-u8", "lenet_norm-legacy-qop-pt-s8"])
def test_float_head_in_the_c_backend(name, corpus_dir, tmp_path):
    """A float head (per-channel Sub/Div normalization) runs in the generated C's
    ``sws_quantize_input``: on float inputs its codes equal onnxruntime's own first QuantizeLinear
    of the original model, and the integer core on them equals the numpy integer mode."""
    path = ct.get_model(name, corpus_dir)
    g = import_onnx(path)
    assert [n.op for n in g.nodes][:2] == ["FloatArith", "FloatArith"]
    xs = ct.make_inputs(name, 8, seed=5)
    sg, snn, _ = exact_snn(g, xs)
    d = tmp_path / "c"
    assert_c_equals_int(sg, snn, xs, d)
    prog = tmp_path / "q.c"
    prog.write_text('#include <stdio.h>\n#include "sws.h"\nint main(void) {\n    float x[SWS_INPUT_SIZE];\n'
                    "    sws_input_t q[SWS_INPUT_SIZE];\n"
                    "    while (fread(x, sizeof x[0], SWS_INPUT_SIZE, stdin) == SWS_INPUT_SIZE) {\n"
                    "        sws_quantize_input(x, q);\n        fwrite(q, sizeof q[0], SWS_INPUT_SIZE, stdout);\n"
                    "    }\n    return 0;\n}\n")
    exe = tmp_path / "q"
    subprocess.run([os.environ.get("CC") or "gcc", "-std=c99", "-O2", "-Wall", "-Werror", f"-I{d}", "-o", str(exe),
                    str(prog), str(d / "sws_float.c"), "-lm"], check=True)
    raw = subprocess.run([str(exe)], input=xs.astype(np.float32).tobytes(), capture_output=True, check=True).stdout
    quantize = next(n for n in g.nodes if n.op == "Quantize")
    codes = np.frombuffer(raw, dtype=g.tensors[quantize.outputs[0]].dtype).reshape(len(xs), -1)
    ort_codes = run_ort(path, xs, [quantize.outputs[0]])[quantize.outputs[0]].reshape(len(xs), -1)
    np.testing.assert_array_equal(codes, ort_codes)


@pytest.mark.parametrize("name", ct.ACTIVATIONS)
def test_activations_become_tables(name, corpus_dir):
    """The exported LeNet's LeakyRelu and Sigmoid (once refused by name) are table layers; the
    tests above check them against onnxruntime and the exact ANN like every other model."""
    ops = [n.op for n in import_onnx(ct.get_model(name, corpus_dir)).nodes]
    assert ops.count("Lut") >= 2, ops


@pytest.mark.skipif(shutil.which(os.environ.get("CC") or "gcc") is None, reason="no C compiler")
# the random inputs reach past the 16-bit input quantizer's range on purpose
@pytest.mark.filterwarnings("ignore:.*are clamped:swsc.errors.SwscWarning")
def test_16bit_activations_through_check_and_the_c_backend(corpus_dir, tmp_path):
    """A16W8 at Tc = 16, Ts = 15: the generated C equals the integer mode, and each layer alone on
    the reference's input agrees with onnxruntime (>= 99.9%, 1 LSB)."""
    np.savez(tmp_path / "d.npz", x=ct.make_inputs("lenet", 8, seed=3))
    rep = check(ct.get_model("lenet-legacy-qdq-a16w8", corpus_dir), tmp_path / "d.npz",
                CompileOptions(tc=16, ts=15), backend="c")
    assert rep["backend_identical"] and rep["max_abs_lsb"] <= 1 and rep["top1_agreement"] == 1.0, rep
    alone = [layer for layer in rep["layers"] if "isolated_exact_fraction" in layer]
    assert len(alone) >= 4
    assert all(la["isolated_exact_fraction"] >= 0.999 and la["isolated_max_abs_lsb"] <= 1 for la in alone), alone
