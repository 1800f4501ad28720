"""Property checks of the semantics note (../shared/design/semantics.md), independent of any model."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from swsc.compiler import compile_graph
from swsc.ir import Graph, Quant, Tensor
from swsc.options import CompileOptions
from swsc.errors import SwscError
from swsc.kernels import decode, encode_exact
from swsc.loops import max_pool_spikes, tsa_scan, tsa_scan_units
from swsc.ops import op_of
from swsc.ops.quantize import encode_frames
from swsc.runtime import reference
from swsc.runtime.interpreter import run

from graphs import residual, tiny_cnn


def code_sum(tc, beta):
    return sum(beta ** (tc - k) for k in range(1, tc + 1))


@pytest.mark.parametrize("beta", [2, 3])
@pytest.mark.parametrize("tc", [1, 2, 4, 6, 8])
def test_exact_encoder_decodes_every_level(tc, beta):
    levels = np.arange(0, code_sum(tc, beta) + 1, dtype=np.float64)
    frames = encode_exact(levels, tc, beta, 1.0)
    assert set(np.unique(frames)) <= {-1, 0, 1}
    assert np.array_equal(decode(frames, beta), levels)


def _identity_graph(levels: int = 256) -> Graph:
    """Quantize -> Dequantize: the encoder's output decoded directly."""
    g = Graph("enc")
    g.add_tensor(Tensor("x", "float32", (1, levels)))
    g.add_tensor(Tensor("q", "uint8", (1, levels), quant=Quant(1.0, 0, None, 0, 255)))
    g.add_tensor(Tensor("y", "float32", (1, levels)))
    g.add_node("Quantize", "q", ["x"], ["q"])
    g.add_node("Dequantize", "dq", ["q"], ["y"])
    g.inputs, g.outputs = ["x"], ["y"]
    return g


@pytest.mark.parametrize("encoder_ts, wrong", [(0, 63), (1, 0)])
def test_tsa_encoder_levels(encoder_ts, wrong):
    """The note: at Tc=8, beta=2, Ts_enc=0 decodes 63 of 256 levels wrongly (212 -> 191); Ts_enc=1 none."""
    sg = compile_graph(_identity_graph(), CompileOptions(encoder="tsa", encoder_ts=encoder_ts))
    levels = np.arange(256, dtype=np.float32)[None]
    y = run(sg, levels).outputs["y"][0]
    assert int((y != levels[0]).sum()) == wrong
    if encoder_ts == 0:
        assert y[212] == 191
    assert sg.t_inf == 8 + encoder_ts


@pytest.mark.parametrize("encoder, encoder_ts", [("exact", 0), ("tsa", 0), ("tsa", 1)])
def test_integer_encoder_table_is_the_encoder_simulation(encoder, encoder_ts):
    """lower-to-integer's table of the input encoder (what integer mode and the C read) holds,
    for every code, the frames of the one encoder simulation the float interpreter runs."""
    sg = compile_graph(_identity_graph(), CompileOptions(encoder=encoder, encoder_ts=encoder_ts), integer=True)
    enc = next(n for n in sg.nodes if n.op == "SwsEncode")
    q = sg.tensors[enc.outputs[0]].quant
    codes = np.arange(q.hi - q.lo + 1, dtype=np.float64)
    frames = encode_frames(codes, encoder, enc.attrs["ts"], sg.coding, q.theta or 1.0, q.hi - q.lo)
    assert np.array_equal(sg.const(enc.inputs[1]), frames.T)


def test_runtimes_run_ops_through_their_hooks():
    """Every op of a compiled graph has a numpy ``run`` hook and every op of a canonical one a
    ``reference`` hook; a graph of the other kind is refused with a SwscError, not a crash."""
    canonical = tiny_cnn()
    sg = compile_graph(tiny_cnn(), CompileOptions(ts=2))
    assert all(callable(getattr(op_of(n), "run", None)) for n in sg.nodes)
    assert all(callable(getattr(op_of(n), "reference", None)) for n in canonical.nodes)
    x = np.zeros((1,) + canonical.tensors[canonical.inputs[0]].shape[1:], np.float32)
    with pytest.raises(SwscError, match="interpreter cannot run"):
        run(canonical, x)
    with pytest.raises(SwscError, match="reference evaluator does not run"):
        reference.evaluate(sg, x)


def _valid_trains(rng, shape, tc, beta):
    """Random ternary trains whose every prefix is >= 0, like TSA neuron outputs."""
    frames = rng.integers(-1, 2, (tc,) + shape).astype(np.int8)
    E = np.zeros(shape)
    for k in range(tc):
        frames[k] = np.where((frames[k] < 0) & (E <= 0), 0, frames[k])
        E = beta * E + frames[k]
    return frames


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), tc=st.integers(1, 8), beta=st.sampled_from([2, 3]),
       k=st.sampled_from([2, 3]), stride=st.sampled_from([1, 2]), pad=st.sampled_from([0, 1]))
def test_spike_maxpool_decodes_to_exact_max(seed, tc, beta, k, stride, pad):
    rng = np.random.default_rng(seed)
    frames = _valid_trains(rng, (3, 2, 7, 7), tc, beta)
    attrs = {"kernel": [k, k], "strides": [stride, stride], "pads": [pad] * 4}
    out = max_pool_spikes(frames, attrs, beta)
    assert set(np.unique(out)) <= {-1, 0, 1}
    values = decode(frames, beta)
    # independent oracle: the max over each window, by explicit loops
    n, c, h, w = values.shape
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    want = np.full((n, c, ho, wo), -np.inf)
    for i in range(ho):
        for j in range(wo):
            for di in range(k):
                for dj in range(k):
                    y, x = i * stride - pad + di, j * stride - pad + dj
                    if 0 <= y < h and 0 <= x < w:
                        want[:, :, i, j] = np.maximum(want[:, :, i, j], values[:, :, y, x])
    assert np.array_equal(decode(out, beta), want)


def _round_half_even(v):
    """Independent of numpy's rint: floor, then settle exact halves on the even neighbour."""
    f = np.floor(v)
    frac = v - f
    return np.where(frac > 0.5, f + 1, np.where(frac < 0.5, f, np.where(f % 2 == 0, f, f + 1)))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), tc=st.integers(2, 8), extra=st.integers(0, 2))
def test_tsa_with_full_silent_period_is_exact(seed, tc, extra):
    """With Ts >= Tc - 1 the output is clamp(round(sum_t beta^(Tc-t) z(t)), 0, hi'), ties to even
    (docs/semantics.md, section 3: strict comparisons at the last step)."""
    rng = np.random.default_rng(seed)
    beta, hi = 2, code_sum(tc, 2)
    # dyadic inputs keep float64 exact, so exact ties n + 1/2 really occur
    z = rng.integers(-40, 60, (tc, 500)) / 8.0
    b = rng.integers(-8, 8, 500) / 16.0
    frames, _, _ = tsa_scan(z, b, ts=tc - 1 + extra, tc=tc, beta=beta, vth=0.5, hi_norm=hi)
    exact = np.tensordot([beta ** (tc - 1 - t) for t in range(tc)], z + b, axes=1)
    assert np.array_equal(decode(frames, beta), np.clip(_round_half_even(exact), 0, hi))


def _tsa_reference(z, b, *, ts, tc, beta, vth, hi):
    """Section 3 of the note, one neuron and one step at a time, in exact rational arithmetic."""
    from fractions import Fraction as Fr

    R = Fr(beta) ** ts
    trains = []
    for i in range(z.shape[1]):
        u, E, train = Fr(0), 0, []
        for t in range(tc + ts):
            H = beta * u + (Fr(z[t, i]) + Fr(b[i]) if t < tc else 0)
            f = 0
            k = t - ts                      # output step, 0-based
            if k >= 0:
                last = k == tc - 1
                up = H > vth * R if last else H >= vth * R
                down = H < -vth * R if last else H <= -vth * R
                if up and (beta * E + 1) * beta ** (tc - 1 - k) <= hi:
                    f = 1
                elif down and E > 0:
                    f = -1
                E = beta * E + f
                train.append(f)
            u = H - f * R
        trains.append(train)
    return np.array(trains, dtype=np.int8).T


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), tc=st.integers(1, 8), ts=st.integers(0, 9), beta=st.sampled_from([2, 3]),
       vth=st.sampled_from([0.5, 1.0]), clamp=st.booleans())
def test_tsa_neuron_matches_the_note_step_by_step(seed, tc, ts, beta, vth, clamp):
    """The runtime's neuron (numba loop) against the note's rule in exact arithmetic, for any
    silent period (inputs still arriving while it fires), both threshold factors and the upper
    clamp; also with the first silent steps folded into one input, as the interpreter does."""
    rng = np.random.default_rng(seed)
    R = float(beta) ** ts
    hi = code_sum(tc, beta) // 2 if clamp else code_sum(tc, beta)
    # dyadic inputs: float64 holds them exactly, so exact threshold ties really occur
    z = rng.integers(-24, 40, (tc, 300)) * R / 8
    b = rng.integers(-8, 8, 300) * R / 16
    want = _tsa_reference(z, b, ts=ts, tc=tc, beta=beta, vth=vth, hi=hi)
    frames, _, _ = tsa_scan(z, b, ts=ts, tc=tc, beta=beta, vth=vth, hi_norm=hi)
    assert np.array_equal(frames, want)
    j = min(ts, tc)
    if j > 1:
        weights = [beta ** (j - 1 - t) for t in range(j)]
        folded = np.concatenate([np.tensordot(weights, z[:j], axes=1)[None], z[j:]])
        frames, _, _ = tsa_scan_units(folded / R, b / R, ts=ts, tc=tc, beta=beta, vth=vth, hi_norm=hi, start=j,
                                      fold_bias=b / R * sum(weights))
        assert np.array_equal(frames, want)


def test_delay_shifts_train_by_its_steps():
    sg = compile_graph(residual(), CompileOptions(ts=2))
    delays = [n for n in sg.nodes if n.op == "SpikeDelay"]
    assert len(delays) == 1
    d = delays[0]
    assert sg.tensors[d.outputs[0]].t0 - sg.tensors[d.inputs[0]].t0 == d.attrs["delay"] == 2
    # on the global time line, the delayed train is the input train shifted by `delay` steps
    x = np.random.default_rng(0).uniform(0, 1, (4, 3, 5, 5)).astype(np.float32)
    env = run(sg, x, intermediate=True).intermediates
    assert np.array_equal(env[d.inputs[0]], env[d.outputs[0]])


@pytest.mark.parametrize("ts", [0, 1, 2, 5])
def test_t_inf_on_a_chain(ts):
    sg = compile_graph(tiny_cnn(), CompileOptions(tc=8, ts=ts))
    assert int(sg.meta["l_tsa"]) == 2
    assert sg.t_inf == 8 + ts * 2


@pytest.mark.parametrize("ts", [[1, 2, 3], {"conv0": 4}])
def test_t_inf_is_longest_path_on_branches(ts):
    sg = compile_graph(residual(), CompileOptions(tc=6, ts=ts, ts_default=1))
    per = {n.name: n.attrs["ts"] for n in sg.nodes if n.op == "TsaLayer"}
    longest = per["conv0"] + per["conv1"] + per["add"]
    assert sg.t_inf == 6 + longest
    add = sg.node("add")
    assert len({sg.tensors[i].t0 for i in add.inputs if sg.tensors[i].dtype == "spike"}) == 1


def test_large_layers_get_smaller_batches_and_the_same_results(monkeypatch):
    """The automatic batch shrinks with the memory one sample's largest layer takes, and
    batching never changes a result (outputs, spike counts, OPF)."""
    from swsc.runtime import interpreter

    sg = compile_graph(tiny_cnn(), CompileOptions(ts=2))
    x = np.random.default_rng(0).uniform(-1, 1, (37, 2, 6, 6)).astype(np.float32)
    whole = run(sg, x)
    assert interpreter.Interpreter(sg).default_batch() == 128
    monkeypatch.setattr(interpreter, "BATCH_BYTES", 50_000)
    assert 1 < interpreter.Interpreter(sg).default_batch() < 10
    parts = run(sg, x)
    assert all(np.array_equal(whole.outputs[k], parts.outputs[k]) for k in whole.outputs)
    assert whole.totals() == parts.totals()
