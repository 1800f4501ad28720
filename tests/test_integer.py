"""Integer mode (docs/integer.md) against the float semantics, and its proven bounds."""
from __future__ import annotations

import numpy as np
import pytest

from swsc.compiler import compile_graph
from swsc.errors import PassError
from swsc.options import CompileOptions
from swsc.runtime.interpreter import run

from graphs import residual, tiny_cnn


@pytest.mark.parametrize("make", [tiny_cnn, residual])
@pytest.mark.parametrize("tc, ts", [(8, 2), (8, 7), (6, 1), (4, 0)])
def test_integer_mode_agrees_with_float_mode(make, tc, ts):
    g = make()
    x = np.random.default_rng(7).uniform(-1, 1, (300,) + g.tensors[g.inputs[0]].shape[1:]).astype(np.float32)
    sg = compile_graph(g, CompileOptions(tc=tc, ts=ts), integer=True)
    rf = run(sg, x, intermediate=True)
    ri = run(sg, x, intermediate=True, mode="int")
    out = [n.inputs[0] for n in sg.nodes if n.op == "SwsDecode"][0]
    qf, qi = np.rint(rf.intermediates[out]), np.rint(ri.intermediates[out])
    # float mode rounds exact ties by float noise, integer mode exactly: they may differ there, by 1
    assert (qf == qi).mean() >= 0.999
    assert np.abs(qf - qi).max() <= 1
    assert (np.argmax(rf.outputs[sg.outputs[0]].reshape(300, -1), 1)
            == np.argmax(ri.outputs[sg.outputs[0]].reshape(300, -1), 1)).mean() >= 0.99


def test_integer_mode_rejects_real_beta():
    with pytest.raises(PassError, match="integer --beta"):
        compile_graph(tiny_cnn(), CompileOptions(beta=2.5), integer=True)


@pytest.mark.parametrize("fill", ["max", "min", "extremes"])
def test_adversarial_inputs_stay_inside_the_proven_bound(fill):
    """Saturated inputs and large weights: the runtime checks every membrane against the
    bound lower-to-integer proved (it raises if the bound were wrong)."""
    g = tiny_cnn(seed=3)
    g.tensors["w"].data[:] = 127
    g.tensors["w2"].data[:] = -128
    shape = (64,) + g.tensors["x"].shape[1:]
    x = {"max": np.full(shape, 10.0), "min": np.full(shape, -10.0),
         "extremes": np.random.default_rng(0).choice([-10.0, 10.0], shape)}[fill].astype(np.float32)
    for ts in (0, 2, 7):
        sg = compile_graph(g, CompileOptions(ts=ts), integer=True)
        run(sg, x, mode="int")


def test_integer_mode_agrees_with_float_mode_on_the_corpus(corpus_dir):
    """Issue 5's bar on every test-corpus model: >= 99.9% of output elements, top-1 100%."""
    import corpus
    from swsc.check import output_quant_tensors
    from swsc.compiler import import_onnx
    for name in corpus.model_names():
        g = import_onnx(corpus.get_model(name, corpus_dir))
        x = corpus.make_inputs(name, 32, seed=5)
        sg = compile_graph(g, CompileOptions(), integer=True)
        q = output_quant_tensors(g)[0]
        qf = np.rint(run(sg, x, intermediate=True).intermediates[q])
        qi = run(sg, x, intermediate=True, mode="int").intermediates[q]
        assert (qf == qi).mean() >= 0.999 and np.abs(qf - qi).max() <= 1, name
        assert np.array_equal(np.argmax(qf.reshape(32, -1), 1), np.argmax(qi.reshape(32, -1), 1)), name
