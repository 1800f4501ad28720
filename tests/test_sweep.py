"""`swsc sweep` and `swsc report`: table columns, the exact point Ts = Tc - 1, report files, errors."""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from swsc.sweep import COLUMNS, grid_points, sweep

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "samples" / "lenet5_mnist_qat.onnx"
DATA = ROOT / "samples" / "lenet5_mnist_qat_test.npz"
LIMIT = 64
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


def swsc(*args, cwd=None):
    p = subprocess.run([sys.executable, "-m", "swsc", *map(str, args)], capture_output=True, text=True, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


def ort_accuracy(n):
    """The quantized ANN's accuracy straight from onnxruntime, on the first n samples."""
    with np.load(DATA) as f:
        x, y = f["x"][:n].astype(np.float32), f["y"][:n]
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(MODEL), so, providers=["CPUExecutionProvider"])
    logits = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    return float((logits.argmax(1) == y).mean())


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    rc, out, err = swsc("sweep", MODEL, "--data", DATA, "--tc", "8", "--ts", "0,2,7", "--vth-factor", "0.5,1.0",
                        "--limit", LIMIT, "-o", d / "t.json")
    assert rc == 0, err
    assert "wrote" in out
    return d / "t.json"


def test_sweep_api_columns_and_exact_point():
    rows = sweep(MODEL, DATA, {"tc": [7, 8], "ts": [6, 7]}, limit=LIMIT, progress=False, isolated=False)
    assert len(rows) == 4
    ann = ort_accuracy(LIMIT)
    for r in rows:
        assert set(COLUMNS) <= set(r)
        assert r["samples"] == LIMIT and r["accuracy_ann"] == ann
        assert r["t_inf"] == r["tc"] + r["ts"] * 5   # five TSA layers in a chain, exact encoder
        assert any(x["op"] == "TsaLayer" and len(x["residual_hist"]) == 60 for x in r["layers"])
    for r in rows:
        if r["ts"] == r["tc"] - 1:   # every neuron sees its whole input: the SNN is the integer ANN
            assert r["accuracy_snn"] == ann and r["top1_agreement"] == 1.0


def test_sweep_json_table(table):
    doc = json.loads(table.read_text())
    assert doc["format"] == "swsc-sweep" and doc["limit"] == LIMIT and len(doc["residual_bins"]) == 61
    rows = doc["rows"]
    assert [(r["vth_factor"], r["ts"]) for r in rows] == [(0.5, 0), (0.5, 2), (0.5, 7), (1.0, 0), (1.0, 2), (1.0, 7)]
    for r in rows:
        assert set(COLUMNS) <= set(r) and r["model"] == MODEL.name and r["encoder_ts"] is None
    exact = [r for r in rows if r["ts"] == 7 and r["vth_factor"] == 0.5][0]
    assert exact["accuracy_snn"] == exact["accuracy_ann"] == ort_accuracy(LIMIT)


def test_sweep_csv_columns(tmp_path):
    rc, _, err = swsc("sweep", MODEL, "--data", DATA, "--ts", "7", "--encoder", "exact,tsa", "--encoder-ts", "0,1",
                      "--limit", 16, "--quiet", "-o", tmp_path / "t.csv")
    assert rc == 0, err
    with open(tmp_path / "t.csv") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == COLUMNS
    assert [(r[4], r[5]) for r in rows[1:]] == [("exact", ""), ("tsa", "0"), ("tsa", "1")]


def test_report_writes_markdown_and_plots(table, tmp_path):
    rc, out, err = swsc("report", table, "-o", tmp_path / "r")
    assert rc == 0, err
    md = (tmp_path / "r" / "report.md").read_text()
    assert "Table-2 style" in md and "| lenet5_mnist_qat.onnx | 64 |" in md and "Ablation" in md
    pngs = sorted(p.name for p in (tmp_path / "r").glob("*.png"))
    if HAVE_MPL:
        assert pngs == ["lenet5_mnist_qat_ablation.png", "lenet5_mnist_qat_latency.png",
                        "lenet5_mnist_qat_residuals.png"]
        for p in pngs:
            assert f"({p})" in md
        rc, _, err = swsc("report", table, "-o", tmp_path / "r2")   # deterministic, dates included
        assert rc == 0, err
        for name in pngs + ["report.md"]:
            assert (tmp_path / "r" / name).read_bytes() == (tmp_path / "r2" / name).read_bytes(), name
    else:
        assert pngs == [] and "matplotlib" in err


def test_report_without_plots(table, tmp_path):
    rc, _, err = swsc("report", table, "--no-plots", "-o", tmp_path)
    assert rc == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


@pytest.mark.parametrize("args, words", [
    (["--tc", "0"], "--tc"),
    (["--ts", "x"], "--ts"),
    (["--ts", "1,,2"], "--ts"),
    (["--tc", "5..3"], "empty"),
    (["--vth-factor", "2"], "--vth-factor"),
    (["--encoder", "foo"], "--encoder"),
    (["--limit", "0"], "--limit"),
    (["-o", "table.txt"], ".csv or .json"),
    (["--data", "missing.npz"], "does not exist"),
])
def test_bad_grid_values_exit_2_with_one_line(args, words, tmp_path):
    base = {"--data": str(DATA), "-o": str(tmp_path / "t.csv")}
    argv = ["sweep", MODEL]
    for k, v in base.items():
        if k not in args:
            argv += [k, v]
    rc, _, err = swsc(*argv, *args, cwd=tmp_path)
    assert rc == 2, err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.csv")) and not list(tmp_path.glob("*.txt"))


def test_report_errors(tmp_path):
    rc, _, err = swsc("report", tmp_path / "missing.json", "-o", tmp_path / "r")
    assert rc == 2 and "does not exist" in err
    (tmp_path / "bad.json").write_text("{}")
    rc, _, err = swsc("report", tmp_path / "bad.json", "-o", tmp_path / "r")
    assert rc == 1 and "swsc sweep" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r" / "report.md").exists()


def test_grid_points_dedupes_exact_encoder_ts():
    pts = grid_points({"ts": [2], "encoder": ["exact", "tsa"], "encoder_ts": [0, 1]})
    assert [(p["encoder"], p["encoder_ts"]) for p in pts] == [("exact", None), ("tsa", 0), ("tsa", 1)]


def test_report_without_matplotlib_still_writes_markdown(table, tmp_path):
    fake = tmp_path / "fake"
    (fake / "matplotlib").mkdir(parents=True)
    (fake / "matplotlib" / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    env = {**os.environ, "PYTHONPATH": f"{fake}:{ROOT}"}
    p = subprocess.run([sys.executable, "-m", "swsc", "report", str(table), "-o", str(tmp_path / "r")],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "matplotlib is not installed" in p.stderr
    assert sorted(x.name for x in (tmp_path / "r").iterdir()) == ["report.md"]
    assert "no figures" in (tmp_path / "r" / "report.md").read_text()
