"""End to end: every test-corpus model compiled to SWS and simulated, against onnxruntime.

With Ts >= Tc - 1 every TSA layer has seen its whole input before it fires, so the SNN
computes exactly what the quantized ANN computes in exact arithmetic (semantics note,
section 3), rounding exact ties half to even as onnxruntime's rint does. onnxruntime
itself requantizes in float32, which differs from exact arithmetic on about 1e-5 of a
layer's elements, and a QDQ AveragePool whose input and output share a scale (exact ties
on a quarter of a 2x2 pool's outputs) runs in float32 there and rounds about 7% of those
ties to the odd neighbour (measured on the VGG corpus models). Later layers can turn one
such 1-LSB difference into a few. So three checks:

* the SNN, in float and in integer mode (which the generated C matches bit for bit,
  tests/test_cbackend.py), equals the exact quantized ANN (the fold-zero-points graph)
  on every element;
* each spiking layer alone, fed with the reference evaluator's input (the reference is
  bit-exact with onnxruntime, tests/test_frontend.py), matches onnxruntime's output on
  >= 99.9% of elements, within 1 LSB (the float32 pools' ties: >= 98%);
* end to end against onnxruntime, the propagated differences stay small.
"""
from __future__ import annotations

import numpy as np
import pytest

import corpus
from graphs import wide_dense
from swsc.check import check, output_quant_tensors
from swsc.compiler import compile_graph, import_onnx
from swsc.options import CompileOptions
from swsc.passes import FoldZeroPoints, Rescale
from swsc.passmanager import PassManager
from swsc.runtime.interpreter import run

SAMPLES = 64
EXACT = CompileOptions(tc=8, ts=7)


@pytest.mark.parametrize("name", corpus.model_names())
def test_snn_equals_the_exact_quantized_ann(name, corpus_dir):
    g = import_onnx(corpus.get_model(name, corpus_dir))
    x = corpus.make_inputs(name, SAMPLES, seed=11)
    ann = run(PassManager([FoldZeroPoints()]).run(g), x, intermediate=True).intermediates
    sg = compile_graph(g, EXACT, integer=True)
    for mode in ("float", "int"):       # the integer mode is what the generated C computes, bit for bit
        snn = run(sg, x, intermediate=True, mode=mode).intermediates
        shared = [k for k in snn if k in ann]
        assert output_quant_tensors(g)[0] in shared
        for k in shared:
            assert np.array_equal(np.rint(snn[k]), np.rint(ann[k])), (mode, k)


def test_a_layer_too_wide_for_float32_stays_exact():
    """The runtime's float32 GEMMs are exact only while every partial sum stays below 2^24;
    a 16384-wide layer with full-scale weights on inputs whose exact sum is 0 passes that
    (in float32 it came out 1-3 LSB off on 44 of 64 outputs) and must take the exact path."""
    g = wide_dense(16384)
    first = np.random.default_rng(1).integers(200, 256, (32, 8192))
    x = (np.concatenate([first, first], axis=1) / 255).astype(np.float32)
    ann = run(PassManager([FoldZeroPoints()]).run(g), x, intermediate=True).intermediates["d"]
    assert np.all(ann == 128)
    snn = run(compile_graph(g, EXACT), x, intermediate=True).intermediates["d"]
    assert np.array_equal(np.rint(snn), ann)


@pytest.mark.parametrize("name", corpus.model_names())
def test_against_onnxruntime(name, corpus_dir, tmp_path):
    data = tmp_path / "data.npz"
    np.savez(data, x=corpus.make_inputs(name, SAMPLES, seed=11))
    report = check(corpus.get_model(name, corpus_dir), data, EXACT)
    tie_prone = False
    for layer in report["layers"]:
        if "isolated_exact_fraction" not in layer:
            continue
        assert layer["isolated_max_abs_lsb"] <= 1, layer
        if layer["isolated_exact_fraction"] < 0.999:
            assert layer["name"].startswith("averagepool"), layer   # only the float32 pool's ties
            assert layer["isolated_exact_fraction"] >= 0.98, layer
            tie_prone = True
    if tie_prone:
        assert report["max_abs_lsb"] <= 3 and report["top1_agreement"] >= 0.9, report
    else:
        assert report["max_abs_lsb"] <= 2 and report["top1_agreement"] >= 0.98, report
        assert report["exact_fraction"] >= 0.98, report


@pytest.mark.parametrize("name", ["lenet-qdq-pc-u8", "resnet-qop-pc-s8", "inception-qdq-pt-u8"])
def test_rescale_keeps_the_meaning_of_affine_layers(name, corpus_dir):
    """rescale only re-expresses each layer in spike-amplitude units (eq. 18-19)."""
    g = import_onnx(corpus.get_model(name, corpus_dir))
    x = corpus.make_inputs(name, SAMPLES, seed=3)
    folded = run(PassManager([FoldZeroPoints()]).run(g), x, intermediate=True).intermediates
    for tc in (8, 6, 4):
        rescaled = run(PassManager([FoldZeroPoints(), Rescale(CompileOptions(tc=tc))]).run(g), x,
                       intermediate=True).intermediates
        for k in folded:
            assert np.array_equal(np.rint(folded[k]), np.rint(rescaled[k])), (tc, k)
