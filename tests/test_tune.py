"""`swsc tune`: the search against exhaustive enumeration on a constructed model, its T_inf
against schedule-latencies, its target on the tuning data against the standard pipeline,
the CLI's errors; and the runtime's memory budget."""
from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from graphs import residual
from swsc.passes import FoldZeroPoints
from swsc.runtime.interpreter import Interpreter, run

from swsc.compiler import compile_graph, import_onnx
from swsc.errors import SwscError
from swsc.ir import Graph, Quant, Tensor
from swsc.ops import verify
from swsc.options import CompileOptions
from swsc.passmanager import PassManager
from swsc.tune import Target, Tuner, t_inf, tsa_layers

ROOT = Path(__file__).resolve().parents[1]
LENET = ROOT / "samples" / "lenet5_mnist_qat.onnx"
LENET_DATA = ROOT / "samples" / "lenet5_mnist_qat_test.npz"
RESNET = ROOT / "samples" / "resnet_digits_qat.onnx"
TC = 8
GAIN = 16     # the amplifying layer's multiplier: its input codes 0..15 become 0..240


def amplifier_chain() -> Graph:
    """Quantize -> copy -> x16 -> copy -> Dequantize, four channels, identity weights.

    The copies (multiplier 1) are exact at Ts = 0: each output frame is its input frame. The
    x16 layer's inputs are codes 0..15, so its output's most significant frame (weight 128)
    depends on input frame 4 (weight 8): it needs a long silent period, the others none."""
    g = Graph("amplifier")
    n = 4
    g.add_tensor(Tensor("x", "float32", (1, n)))
    g.inputs = ["x"]
    s_in = 1 / 255
    g.add_tensor(Tensor("q", "uint8", (1, n), quant=Quant(s_in, 0, None, 0, 255)))
    g.add_node("Quantize", "quant", ["x"], ["q"])
    prev, scale = "q", s_in
    for i, gain in enumerate((1, GAIN, 1)):
        out_scale = scale / gain
        g.add_const(f"w{i}", (127 * np.eye(n)).astype(np.int8), Quant(np.full(n, 1 / 127), np.zeros(n, int), 0,
                                                                       -128, 127))
        g.add_tensor(Tensor(f"d{i}", "uint8", (1, n), quant=Quant(out_scale, 0, None, 0, 255)))
        g.add_node("QDense", f"fc{i}", [prev, f"w{i}"], [f"d{i}"])
        prev, scale = f"d{i}", out_scale
    g.add_tensor(Tensor("y", "float32", (1, n)))
    g.add_node("Dequantize", "dq", [prev], ["y"])
    g.outputs = ["y"]
    verify(g)
    return g


def amplifier_inputs(count=64, seed=0):
    codes = np.random.default_rng(seed).integers(0, 16, (count, 4))
    return (codes / 255).astype(np.float32)


def exact_ann_q(graph: Graph, x, out: str) -> np.ndarray:
    """The exact quantized ANN's output codes, through the code-domain graph (as the tests of
    the conversion take it)."""
    return run(PassManager([FoldZeroPoints()]).run(graph), x, intermediate=True).intermediates[out]


def snn_q(graph: Graph, schedule, x, out: str) -> tuple[np.ndarray, int]:
    """The SNN through the standard pipeline (schedule-latencies inserts the delays)."""
    sg = compile_graph(graph, CompileOptions(ts=dict(schedule)))
    return run(sg, x, intermediate=True).intermediates[out], sg.t_inf


def test_tuner_finds_the_exhaustive_optimum_on_a_constructed_model():
    g, x = amplifier_chain(), amplifier_inputs()
    ref = exact_ann_q(g, x, "d2")
    names = ["fc0", "fc1", "fc2"]
    # exhaustive oracle: every schedule through the standard pipeline, the shortest exact one
    best = None
    for combo in itertools.product(range(TC), repeat=3):
        if best is not None and TC + sum(combo) > best[0]:
            continue
        q, tinf = snn_q(g, zip(names, combo), x, "d2")
        if np.array_equal(np.rint(q), ref) and (best is None or tinf < best[0]):
            best = (tinf, combo)
    assert best is not None and best[1][0] == 0 and best[1][2] == 0 and best[1][1] >= 3   # as constructed
    result = Tuner(g, x, None, CompileOptions(), Target(agreement=None, exact=1.0), progress=False).run()
    assert result.best is not None
    assert result.best.t_inf == best[0]
    assert result.best.schedule == dict(zip(names, best[1]))
    # the isolated errors say which layer needs silence: the copies are exact at Ts = 0
    assert result.errors["fc0"][0] == 0 and result.errors["fc2"][0] == 0 and result.errors["fc1"][0] > 0


@pytest.mark.parametrize("target", [Target(agreement=0.99), Target(agreement=None, exact=0.9),
                                    Target(agreement=None, accuracy_drop=0.0)])
def test_tuned_schedule_meets_its_target_on_the_tuning_data(target):
    """Recomputed independently of the tuner: compiled with --ts, run by the standard runtime,
    compared with the code-domain ANN."""
    graph = import_onnx(LENET)
    with np.load(LENET_DATA) as f:
        x, y = f["x"][:48].astype(np.float32), f["y"][:48]
    result = Tuner(graph, x, y, CompileOptions(), target, progress=False).run(max_evals=10)
    assert result.best is not None
    out = graph.producer(graph.outputs[0]).inputs[0]
    q, tinf = snn_q(graph, result.best.schedule, x, out)
    ref = exact_ann_q(graph, x, out)
    assert tinf == result.best.t_inf
    top, top_ref = q.argmax(1), ref.argmax(1)
    if target.agreement is not None:
        assert (top == top_ref).mean() >= target.agreement
    if target.exact is not None:
        assert (np.rint(q) == ref).mean() >= target.exact
    if target.accuracy_drop is not None:
        assert (top == y).mean() >= (top_ref == y).mean() - target.accuracy_drop
    # no evaluated schedule that met the target is shorter than the answer
    assert all(e.t_inf >= result.best.t_inf for e in result.evaluations if target.met(e.metrics))


@pytest.mark.parametrize("seed", range(6))
def test_t_inf_matches_schedule_latencies(seed):
    """The tuner's critical-path T_inf equals what compiling the schedule gives, on a residual
    block (shortcut delays) and the ResNet sample (a shortcut with its own layer)."""
    rng = np.random.default_rng(seed)
    for graph in (residual(seed), import_onnx(RESNET)):
        sg = compile_graph(graph, CompileOptions(ts=0))
        s = {n: int(rng.integers(0, TC)) for n in tsa_layers(sg)}
        assert t_inf(sg, s) == int(compile_graph(graph, CompileOptions(ts=s)).t_inf)


def swsc(*args):
    p = subprocess.run([sys.executable, "-m", "swsc", *map(str, args)], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def test_cli_tune_writes_a_schedule_that_compile_accepts(tmp_path):
    ts, doc = tmp_path / "ts.json", tmp_path / "tune.json"
    rc, out, err = swsc("tune", LENET, "--data", LENET_DATA, "--limit", 40, "--max-evals", 4, "-o", ts,
                        "--report", doc)
    assert rc == 0, err
    assert "uniform Ts=0" in out and "tuned front" in out
    schedule = json.loads(ts.read_text())
    d = json.loads(doc.read_text())
    assert d["format"] == "swsc-tune" and d["holdout"]["samples"] == 20 and len(d["uniform"]) == TC
    rc, out, err = swsc("compile", LENET, "--ts", ts, "-o", tmp_path / "c")
    assert rc == 0, err
    assert f"T_inf = {d['t_inf']} steps" in out
    assert set(schedule) == set(tsa_layers(compile_graph(import_onnx(LENET))))
    # swsc report renders the document: both tables and the plot beside fig. 3
    rc, out, err = swsc("report", doc, "-o", tmp_path / "rep")
    assert rc == 0, err
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "Tuned silent periods: lenet5_mnist_qat" in text and "| uniform Ts=7 | 43 |" in text
    assert (tmp_path / "rep" / "lenet5_mnist_qat_tuned_latency.png").stat().st_size > 0


@pytest.mark.parametrize("args, message", [
    (["--data", "missing.npz"], "does not exist"),
    (["--data", LENET_DATA, "--agreement", "1.5"], "fraction"),
    (["--data", LENET_DATA, "-o", "ts.txt"], ".json"),
    (["--data", LENET_DATA, "--holdout", "1.0"], "--holdout"),
    (["--data", LENET_DATA, "--memory-budget", "lots"], "memory budget"),
])
def test_cli_tune_errors_are_one_line(args, message, tmp_path):
    rc, out, err = swsc("tune", LENET, *args)
    assert rc != 0
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_tune_refuses_an_encoder_ts_without_the_tsa_encoder(tmp_path):
    """tune shares compile's conversion options and their checks (swsc.cliutil.compile_options)."""
    rc, out, err = swsc("tune", LENET, "--data", LENET_DATA, "--encoder-ts", 2, "-o", tmp_path / "ts.json")
    assert rc == 2 and out == "" and not (tmp_path / "ts.json").exists()
    assert err.startswith("swsc: error: --encoder-ts is the silent period of the tsa encoder; --encoder exact has "
                          "none") and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_tune_takes_the_conversion_options_but_ts():
    from swsc.cli import build_parser
    from swsc.cliutil import compile_options
    a = build_parser().parse_args(["tune", "m.onnx", "--data", "d.npz", "--tc", "4", "--beta", "3", "--encoder", "tsa",
                                   "--encoder-ts", "0", "--vth-factor", "1.0", "--input-shape", "1,1,28,28",
                                   "--membrane-bits", "24"])
    assert compile_options(a) == CompileOptions(tc=4, beta=3.0, encoder="tsa", encoder_ts=0, vth_factor=1.0,
                                                membrane_bits=24)
    assert a.input_shape == "1,1,28,28" and not hasattr(a, "ts")
    defaults = build_parser().parse_args(["tune", "m.onnx", "--data", "d.npz"])
    assert compile_options(defaults) == CompileOptions()


def test_memory_budget_sets_the_batch_and_never_the_result(monkeypatch):
    graph = import_onnx(RESNET)
    sg = compile_graph(graph, CompileOptions(ts=1))
    with np.load(ROOT / "samples" / "resnet_digits_qat_test.npz") as f:
        x = f["x"][:40].astype(np.float32)
    small, large = Interpreter(sg, budget="1M"), Interpreter(sg, budget="1G")
    assert small.default_batch() < large.default_batch()
    assert small.default_batch() == max(1, (1 << 20) // small.sample_bytes())
    a, b = small.run(x, intermediate=True), large.run(x, intermediate=True)
    assert all(np.array_equal(a.outputs[k], b.outputs[k]) for k in a.outputs)
    assert a.totals() == b.totals()
    assert set(a.intermediates) == set(b.intermediates)
    assert all(np.array_equal(a.intermediates[k], b.intermediates[k]) for k in a.intermediates)
    # the named intermediates are the same arrays as in the full set
    some = sorted(a.intermediates)[:2]
    c = Interpreter(sg).run(x, intermediate=some)
    assert set(c.intermediates) == set(some)
    assert all(np.array_equal(c.intermediates[k], a.intermediates[k]) for k in some)
    monkeypatch.setenv("SWSC_MEMORY_BUDGET", "2M")
    assert Interpreter(sg).budget == 2 << 20
    monkeypatch.setenv("SWSC_MEMORY_BUDGET", "plenty")
    with pytest.raises(SwscError, match="memory budget"):
        Interpreter(sg)
