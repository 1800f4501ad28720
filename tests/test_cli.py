"""The command line as a user meets it: exit codes, one-line errors, files written or not."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "lenet5_mnist_qdq.onnx"
DATA = ROOT / "samples" / "lenet5_mnist_qdq_test.npz"


def swsc(*args, cwd=None):
    p = subprocess.run([sys.executable, "-m", "swsc", *map(str, args)], capture_output=True, text=True, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


def test_version_and_help():
    rc, out, _ = swsc("--version")
    assert rc == 0 and out.startswith("swsc ")
    for args in (["--help"], ["compile", "--help"], ["check", "--help"], ["run", "--help"], ["dump", "--help"]):
        rc, out, _ = swsc(*args)
        assert rc == 0 and "usage:" in out


@pytest.mark.parametrize("args, code, words", [
    (["frobnicate"], 2, "invalid choice"),
    (["compile", "missing.onnx"], 2, "does not exist"),
    (["compile", SAMPLE, "--tc", "0"], 2, "--tc"),
    (["compile", SAMPLE, "--beta", "1"], 2, "--beta"),
    (["compile", SAMPLE, "--ts", "-1"], 2, "silent period"),
    (["compile", SAMPLE, "--vth-factor", "3"], 2, "--vth-factor"),
    (["compile", SAMPLE, "--ts", "1,2"], 1, "TSA layers"),
    (["compile", SAMPLE, "--target", "c", "--tc", "32"], 1, "a shorter window may fit"),
    (["compile", SAMPLE, "--print-ir-after", "nope"], 2, "unknown pass"),
    (["check", SAMPLE, "--data", "missing.npz"], 2, "does not exist"),
    (["check", SAMPLE, "--data", DATA, "--limit", "0"], 2, "--limit"),
])
def test_errors_are_one_line_without_traceback(args, code, words, tmp_path):
    rc, out, err = swsc(*args, "-o", tmp_path) if args[0] == "compile" else swsc(*args)
    assert rc == code, err
    assert words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.onnx"))


@pytest.mark.parametrize("x, words", [
    (np.zeros((0, 1, 28, 28), np.float32), "no samples"),
    (np.full((3, 1, 28, 28), np.nan, np.float32), "NaN or infinite"),
    (np.zeros((3, 5), np.float32), "samples of shape [5]"),
])
def test_bad_data_files_are_refused(x, words, tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, x=x)
    for args in (["check", SAMPLE, "--data", data], ["compile", SAMPLE, "-o", tmp_path / "out", "--data", data]):
        rc, _, err = swsc(*args)
        assert rc == 1 and words in err and "d.npz" in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_two_input_model_is_refused_for_data_runs(tmp_path):
    s, z = helper.make_tensor("s", TensorProto.FLOAT, [], [0.01]), helper.make_tensor("z", TensorProto.UINT8, [], [0])
    nodes = [helper.make_node("QuantizeLinear", [x, "s", "z"], [x + "q"]) for x in ("a", "b")] + \
            [helper.make_node("DequantizeLinear", [x + "q", "s", "z"], [x + "d"]) for x in ("a", "b")]
    g = helper.make_graph(nodes, "two_in", [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 4])
                                             for x in ("a", "b")],
                          [helper.make_tensor_value_info(x + "d", TensorProto.FLOAT, [1, 4]) for x in ("a", "b")],
                          [s, z])
    model = tmp_path / "two_in.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(model))
    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((2, 4), np.float32))
    rc, _, err = swsc("check", model, "--data", data)
    assert rc == 2 and "2 inputs" in err and "two_in.onnx" in err and "Traceback" not in err, err


def test_output_that_is_not_a_directory_is_a_usage_error(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for out in (afile, afile / "sub"):
        rc, _, err = swsc("compile", SAMPLE, "-o", out)
        assert rc == 2 and "cannot write to output directory" in err and "Traceback" not in err, err
    assert afile.read_text() == "keep me"
    rc, _, _ = swsc("compile", SAMPLE, "-o", tmp_path / "ir")
    assert rc == 0
    ir = tmp_path / "ir" / (SAMPLE.stem + ".sws.onnx")
    rc, _, err = swsc("run", ir, "--data", DATA, "-o", tmp_path / "ir")     # -o of run is a file
    assert rc == 2 and "is a directory" in err and "Traceback" not in err, err


def test_float_model_is_refused_with_a_hint(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    m = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]),
                          opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "float.onnx"
    onnx.save(m, str(path))
    rc, _, err = swsc("compile", path, "-o", tmp_path / "out")
    assert rc == 1 and "float.onnx" in err and "quantiz" in err.lower()
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_compile_dump_run_check(tmp_path):
    rc, out, err = swsc("compile", SAMPLE, "-o", tmp_path, "--data", DATA)
    assert rc == 0, err
    ir = tmp_path / "lenet5_mnist_qdq.sws.onnx"
    assert ir.exists() and "T_inf = 18 steps" in out and "OPF" in out
    assert [p.name for p in tmp_path.iterdir()] == [ir.name]        # no temp files left behind
    rc, out, err = swsc("dump", ir)
    assert rc == 0 and out.startswith("# swsc IR") and "TsaLayer" in out
    rc, out, err = swsc("run", ir, "--data", DATA, "-o", tmp_path / "y.npz", "--json")
    summary = json.loads(out)
    assert rc == 0 and summary["samples"] == 500 and summary["accuracy"] > 0.95
    assert np.load(tmp_path / "y.npz")["logits"].shape == (500, 10)
    rc, out, err = swsc("check", SAMPLE, "--data", DATA, "--limit", "64", "--json")
    report = json.loads(out)
    assert rc == 0 and out.count("\n") == 1
    for key in ("samples", "top1_agreement", "exact_fraction", "max_abs_lsb", "accuracy_snn", "accuracy_ref",
                "t_inf", "opf", "ann_macs", "spikes_pos", "spikes_neg", "layers"):
        assert key in report
    rc, out, err = swsc("check", SAMPLE, "--data", DATA, "--limit", "64", "--ann", "--json")
    assert rc == 0 and json.loads(out)["exact_fraction"] == 1.0


def test_print_ir_after_all_names_every_pass(tmp_path):
    rc, out, err = swsc("compile", SAMPLE, "-o", tmp_path, "--print-ir-after-all")
    assert rc == 0
    for name in ("fold-zero-points", "rescale", "insert-encoder", "lower-to-sws", "schedule-latencies"):
        assert f'after pass "{name}"' in err


def test_dump_of_a_quantized_model_shows_the_canonical_graph():
    rc, out, err = swsc("dump", SAMPLE)
    assert rc == 0 and "QConv" in out and "after import" in out.splitlines()[0]


def test_compile_target_c_and_check_backend_c(tmp_path):
    rc, out, err = swsc("compile", SAMPLE, "--target", "c", "--prefix", "lenet", "-o", tmp_path)
    assert rc == 0, err
    assert {"lenet.h", "lenet.c", "lenet_weights.c", "main.c", "Makefile"} <= {p.name for p in tmp_path.iterdir()}
    assert "flash" in out and "ram" in out
    rc, out, err = swsc("check", SAMPLE, "--data", DATA, "--limit", "32", "--backend", "c", "--json")
    report = json.loads(out)
    assert rc == 0 and report["backend_identical"] is True
    assert report["flash_bytes"] > 0 and report["ram_bytes"] > 0 and report["top1_agreement"] >= 0.96
    rc, out, err = swsc("check", SAMPLE, "--data", DATA, "--limit", "32", "--mode", "int", "--json")
    assert rc == 0 and json.loads(out)["top1_agreement"] >= 0.96


def test_c_target_rejects_real_beta(tmp_path):
    rc, out, err = swsc("compile", SAMPLE, "--target", "c", "--beta", "2.5", "-o", tmp_path / "c")
    assert rc != 0 and "integer --beta" in err and "Traceback" not in err
    assert not (tmp_path / "c").exists()
