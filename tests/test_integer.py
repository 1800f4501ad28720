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


def _neuron_reference(acc, bq, rq, *, acc_mul, ts, tc, beta, num, den, hi):
    """docs/integer.md's neuron with Python's unbounded integers: den*H against num*rq, no
    saturation (the oracle for the clamped, threshold-divided runtime scan)."""
    U = E = 0
    frames = []
    for t in range(tc + ts):
        H = beta * U + (acc[t] * acc_mul + bq if t < tc else 0)
        if t < ts:
            U = H
            continue
        k, last = t - ts, t - ts == tc - 1
        up = den * H > num * rq if last else den * H >= num * rq
        down = den * H < -num * rq if last else den * H <= -num * rq
        f = int(up and (beta * E + 1) * beta ** (tc - 1 - k) <= hi) - int(down and E > 0)
        frames.append(f)
        U, E = H - f * rq, beta * E + f
    return frames, E


@pytest.mark.parametrize("beta, num, den", [(2, 1, 2), (3, 1, 2), (2, 1, 1), (2, 3, 5)])
def test_saturated_membrane_changes_no_spike(beta, num, den):
    """Clamping U at saturation_level (and comparing H with the divided thresholds) gives the
    spikes and E of the exact unbounded neuron, on inputs that drive it far past the clamp."""
    from swsc.passes.lower_to_integer import membrane_bound, saturation_level
    from swsc.loops import tsa_scan_int
    rng = np.random.default_rng(beta * 100 + den)
    for tc, ts in ((8, 2), (8, 7), (5, 0), (4, 9)):
        n, fan, acc_mul = 400, 50, 3
        acc = rng.integers(-fan, fan + 1, (tc, n, 1))
        acc[:, :100] = rng.choice([-fan, fan], (tc, 100, 1))         # saturating drive
        acc[:, 100:200] = rng.integers(-2, 3, (tc, 100, 1))          # near the thresholds
        bq = rng.integers(-40, 41, (1,))
        rq = rng.integers(1, 200, (1,))
        hi = int(sum(beta ** (tc - k) for k in range(1, tc + 1)))
        z = fan * acc_mul + int(abs(bq[0]))
        sat = saturation_level(z_max=z, rq_max=int(rq[0]), beta=beta)
        bound = membrane_bound(fan=fan, acc_mul=acc_mul, bq_max=int(abs(bq[0])), rq_max=int(rq[0]), beta=beta,
                               tc=tc, ts=ts, num=num, den=den, sat=sat)
        frames, E, U = tsa_scan_int(acc, bq, rq, acc_mul=acc_mul, ts=ts, tc=tc, beta=beta, vth=(num, den), hi=hi,
                                    sat=sat, bound=bound)
        for j in range(n):
            ref, e = _neuron_reference([int(v) for v in acc[:, j, 0]], int(bq[0]), int(rq[0]), acc_mul=acc_mul,
                                       ts=ts, tc=tc, beta=beta, num=num, den=den, hi=hi)
            assert list(frames[:, j, 0]) == ref and int(E[j, 0]) == e, (tc, ts, j)
        assert np.any(np.abs(U) == sat), (tc, ts)     # the drive really reached the clamp
