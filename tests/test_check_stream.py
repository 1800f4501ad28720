"""`swsc check` streams its samples in chunks (memory bounded whatever their number), and the
numpy runtime's own depthwise convolution equals onnxruntime's."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from swsc import check as check_mod
from swsc import kernels, loops
from swsc.options import CompileOptions

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "resnet_digits_qat.onnx"
DATA = ROOT / "samples" / "resnet_digits_qat_test.npz"


def _without_residual_mean(report):
    """The report less residual_abs_mean: a float sum whose order follows the batches."""
    out = dict(report)
    out["layers"] = [{k: v for k, v in layer.items() if k != "residual_abs_mean"} for layer in report["layers"]]
    return out


def test_check_over_chunks_equals_one_chunk(monkeypatch):
    whole = check_mod.check(SAMPLE, DATA, CompileOptions(), limit=18, progress=False, chunk=18)
    seen = []
    evaluate = check_mod.reference.evaluate

    def recording(graph, x, **kw):
        seen.append(len(x))
        return evaluate(graph, x, **kw)

    monkeypatch.setattr(check_mod.reference, "evaluate", recording)
    parts = check_mod.check(SAMPLE, DATA, CompileOptions(), limit=18, progress=False, chunk=5)
    assert seen == [5, 5, 5, 3]            # the chunking is really used
    assert _without_residual_mean(parts) == _without_residual_mean(whole)
    for a, b in zip(parts["layers"], whole["layers"]):
        if "residual_abs_mean" in b:
            assert a["residual_abs_mean"] == pytest.approx(b["residual_abs_mean"], rel=1e-12)
    assert any("isolated_exact_fraction" in layer for layer in parts["layers"])


def test_check_chunk_follows_the_memory_budget():
    from swsc.compiler import compile_graph, import_onnx
    from swsc.runtime.interpreter import Interpreter

    g = import_onnx(SAMPLE)
    sg = compile_graph(g, CompileOptions())
    per = Interpreter(sg).sample_bytes(True) + check_mod.reference_bytes(g)
    assert check_mod.check_chunk(Interpreter(sg, budget=10 * per + 1), g) == 10
    assert check_mod.check_chunk(Interpreter(sg, budget="1M"), g) == max(1, (1 << 20) // per)


def test_agreement_equals_compare_of_the_whole():
    rng = np.random.default_rng(0)
    q, r = rng.integers(0, 4, (13, 7)).astype(np.float64), rng.integers(0, 4, (13, 7))
    acc = check_mod.Agreement()
    for i in range(0, 13, 4):
        acc.add(q[i:i + 4], r[i:i + 4])
    assert acc.result() == check_mod.compare(q, r)


def test_depthwise_conv_equals_onnxruntime():
    rng = np.random.default_rng(1)
    for (h, w), k, s, p, d in itertools.product([(7, 9), (1, 5)], [(3, 3), (1, 3), (5, 5)], [(1, 1), (2, 2), (1, 2)],
                                                [(0, 0, 0, 0), (1, 1, 1, 1), (2, 1, 0, 2)], [(1, 1), (2, 1)]):
        attrs = dict(kernel=list(k), strides=list(s), pads=list(p), dilations=list(d), group=3)
        if min(kernels.out_hw((h, w), attrs)) <= 0:
            continue
        x = rng.integers(-3, 4, (2, 3, h, w)).astype(np.float32)
        wt = rng.integers(-127, 128, (3, 1) + k).astype(np.float32)
        expect = kernels._ort_conv(x, wt, attrs)
        got = loops.depthwise_conv(x, wt, attrs)
        assert got.shape == expect.shape and np.array_equal(got, expect), (h, w, k, s, p, d)


def test_depthwise_on_frames_equals_fold_then_conv():
    rng = np.random.default_rng(2)
    tc, n, c = 8, 2, 3
    for k, s, p in [((3, 3), (1, 1), (1, 1, 1, 1)), ((3, 3), (2, 2), (0, 1, 1, 0))]:
        attrs = dict(kernel=list(k), strides=list(s), pads=list(p), dilations=[1, 1], group=c)
        frames = rng.integers(-1, 2, (tc, n, c, 9, 8)).astype(np.int8)
        wt = rng.integers(-127, 128, (c, 1) + k).astype(np.float32)
        for fold in ([], [2.0, 1.0], [4.0, 2.0, 1.0]):
            steps = tc - len(fold) + (1 if fold else 0)
            x = np.empty((steps * n, c, 9, 8), np.float32)
            loops.fold_frames(frames, fold, x.reshape((steps, n, c, 9, 8)))
            expect = kernels._ort_conv(x, wt, attrs)
            got = loops.depthwise_conv_frames(frames, fold, wt, attrs, np.empty_like(expect))
            assert np.array_equal(got, expect), (k, s, p, fold)


def test_memory_budget_option(tmp_path, capsys):
    """`swsc check/run --memory-budget` reach the runtime: the smallest budget (1M) streams `check`
    in smaller chunks than the default with the same report; a malformed size is refused."""
    import json

    from swsc.cli import main

    args = ["check", str(SAMPLE), "--data", str(DATA), "--limit", "6", "--json"]
    assert main(args) == 0
    whole = json.loads(capsys.readouterr().out)
    seen = []
    evaluate = check_mod.reference.evaluate

    def recording(graph, x, **kw):
        seen.append(len(x))
        return evaluate(graph, x, **kw)

    check_mod.reference.evaluate = recording
    try:
        assert main(args + ["--memory-budget", "1M"]) == 0
    finally:
        check_mod.reference.evaluate = evaluate
    assert len(seen) > 1 and sum(seen) == 6
    assert _without_residual_mean(json.loads(capsys.readouterr().out)) == _without_residual_mean(whole)
    assert main(["compile", str(SAMPLE), "-o", str(tmp_path)]) == 0
    ir = next(tmp_path.glob("*.sws.onnx"))
    run = ["run", str(ir), "--data", str(DATA), "--json"]
    capsys.readouterr()
    assert main(run + ["--memory-budget", "1M"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] > 0
    assert main(run + ["--memory-budget", "lots"]) != 0
    assert "memory budget" in capsys.readouterr().err
