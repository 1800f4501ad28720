"""Command-line hardening (issue 10, items 1-10): what a user trips on, checked from outside.

Each test runs the command line as a user would (in this process, or as ``python -m swsc``
where the terminal or the pipe matters) and judges the result against something
independent of swsc: the file system around the output directory, onnxruntime's own
predictions, the exit status and stderr a shell sees.
"""
from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from swsc.check import fraction_text
from swsc.cli import main

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "lenet5_mnist_qdq.onnx"
DATA = ROOT / "samples" / "lenet5_mnist_qdq_test.npz"
N = 32     # samples per run: enough to see disagreement, fast enough for CI
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="swsc --backend c needs gcc")


def swsc(*args, cwd=None):
    """``swsc ARGS`` in this process (one import for the whole file): (exit code, stdout, stderr)."""
    out, err, here = io.StringIO(), io.StringIO(), os.getcwd()
    try:
        if cwd:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main([str(a) for a in args])
            except SystemExit as e:    # argparse's --help and --version
                rc = e.code
    finally:
        os.chdir(here)
    return rc, out.getvalue(), err.getvalue()


def one_line_error(err: str, words: str) -> None:
    assert words in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err


def tree(root: Path) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The first N held-out samples as .npz (x, y) and .npy (x only), and the same scaled 0..255."""
    d = tmp_path_factory.mktemp("data")
    with np.load(DATA) as f:
        x, y = f["x"][:N], f["y"][:N]
    np.savez(d / "small.npz", x=x, y=y)
    np.save(d / "small.npy", x)
    np.savez(d / "raw255.npz", x=x * 255, y=y)
    return d


# ---------------------------------------------------------------- 1, 2: names and prefixes
@pytest.mark.parametrize("name", ["../x", "/abs/x", "a/b", "", "..", ".hidden", "a\\b"])
def test_output_name_cannot_leave_the_output_directory(name, tmp_path):
    work = tmp_path / "work"
    (work / "nest").mkdir(parents=True)
    if name.startswith("/"):
        name = str(tmp_path / "abs" / "x")
    before = tree(tmp_path)
    rc, out, err = swsc("compile", SAMPLE, "-o", "nest/o", "--name", name, cwd=work)
    assert rc == 2, err
    one_line_error(err, "--name")
    assert "plain file name" in err and out == ""
    assert tree(tmp_path) == before          # nothing written anywhere, not even the -o directory


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ""])
def test_the_atomic_writer_keeps_every_file_inside_its_directory(name, tmp_path):
    """The last line of defence for names that come from data (a sweep table's model, ...)."""
    from swsc.cliutil import write_atomically
    from swsc.errors import SwscError
    with pytest.raises(SwscError, match="not a plain file name"):
        write_atomically(tmp_path / "a" / "out", {"ok.txt": lambda p: p.write_text("1"),
                                                   name: lambda p: p.write_text("2")})
    assert tree(tmp_path) == set()


def test_a_plain_name_is_used_as_given(tmp_path):
    rc, out, err = swsc("compile", SAMPLE, "-o", tmp_path, "--name", "lenet v2")
    assert rc == 0, err
    assert [p.name for p in tmp_path.iterdir()] == ["lenet v2.sws.onnx"] and "wrote" in out


@pytest.mark.parametrize("prefix", ["a-b", "9bad", "x" * 40, "ab_", "_ab", "../x", ""])
def test_an_invalid_prefix_is_refused_with_the_rule(prefix, tmp_path):
    rc, _, err = swsc("compile", SAMPLE, "--target", "c", "--prefix", prefix, "-o", tmp_path / "c")
    assert rc == 2, err
    one_line_error(err, "a letter, then at most 23 letters, digits or '_', not ending in '_'")
    assert not (tmp_path / "c").exists()


def test_a_valid_prefix_is_not_rewritten(tmp_path):
    prefix = "LeNet_5" + "x" * 17          # 24 characters, mixed case: today lower-cased
    rc, _, err = swsc("compile", SAMPLE, "--target", "c", "--prefix", prefix, "-o", tmp_path)
    assert rc == 0, err
    assert {f"{prefix}.h", f"{prefix}.c", f"{prefix}_weights.c"} <= {p.name for p in tmp_path.iterdir()}
    assert f"{prefix}_run" in (tmp_path / f"{prefix}.h").read_text()


@pytest.mark.parametrize("stem, prefix", [("lenet-5", "lenet_5"), ("9bad", "m9bad"),
                                           ("mobilenetv2-12-int8" + "x" * 20, "mobilenetv2_12_int8xxxxx")])
def test_a_model_name_that_is_no_prefix_gives_a_derived_one_that_is_printed(stem, prefix, tmp_path):
    """Only the default is derived: the symbols are checked to carry it and the user is told."""
    model = tmp_path / f"{stem}.onnx"
    shutil.copy(SAMPLE, model)
    rc, out, err = swsc("compile", model, "--target", "c", "-o", tmp_path / "c")
    assert rc == 0, err
    assert f"C prefix: {prefix} " in out
    assert f"{prefix}_run" in (tmp_path / "c" / f"{prefix}.h").read_text()


def test_a_dump_directory_that_is_a_file_is_a_usage_error(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("not a directory")
    rc, out, err = swsc("compile", SAMPLE, "-o", tmp_path / "o", "--dump-ir", taken)
    assert rc == 2, err
    one_line_error(err, f"cannot write the IR dump to directory '{taken}'")
    assert "internal error" not in err and out == ""
    assert taken.read_text() == "not a directory" and not (tmp_path / "o").exists()


# ---------------------------------------------------------------- 3: data files
def test_npy_samples_are_accepted(small):
    rc, out, err = swsc("check", SAMPLE, "--data", small / "small.npy", "--ann", "--json")
    assert rc == 0, err
    report = json.loads(out)
    assert report["samples"] == N and "accuracy_ann" not in report      # no labels in an .npy
    assert report["top1_agreement"] == 1.0 and err == ""


@pytest.mark.parametrize("fname, content, why", [
    ("model.onnx", SAMPLE.read_bytes(), "looks like a model"),
    ("d.npz", b"hello, not data", "neither a zip archive (.npz) nor a numpy array (.npy)"),
    ("d.npz", b"PK\x03\x04" + b"\0" * 40, "the .npz archive cannot be read"),
    ("d.npy", b"\x93NUMPY\x01\x00garbage", "the .npy array cannot be read"),
])
def test_unreadable_data_files_say_why(fname, content, why, tmp_path):
    data = tmp_path / fname
    data.write_bytes(content)
    for args in (["check", SAMPLE, "--data", data], ["compile", SAMPLE, "-o", tmp_path / "out", "--data", data]):
        rc, _, err = swsc(*args)
        assert rc == 1, err
        one_line_error(err, f"{data.name}: not an .npz/.npy data file: ")
        assert why in err
    assert not (tmp_path / "out").exists()


def test_a_pickled_object_array_is_refused(tmp_path):
    data = tmp_path / "obj.npz"
    np.savez(data, x=np.array([{"a": 1}], dtype=object))
    rc, _, err = swsc("check", SAMPLE, "--data", data, "--ann")
    assert rc == 1
    one_line_error(err, "not an .npz/.npy data file")


@pytest.mark.parametrize("labels, words", [
    (lambda y: y + 0.5, "non-integer numbers, e.g. "),      # today cast to int: accuracy silently wrong
    (lambda y: np.full(len(y), np.nan), "non-integer numbers, e.g. nan"),
    (lambda y: np.eye(10)[y], "not one class index"),        # one-hot rows
], ids=["fractional", "nan", "one-hot"])
def test_labels_that_are_not_class_indices_are_refused(labels, words, small, tmp_path):
    with np.load(small / "small.npz") as f:
        x, y = f["x"], f["y"]
    data = tmp_path / "labels.npz"
    np.savez(data, x=x, y=labels(y))
    rc, _, err = swsc("check", SAMPLE, "--data", data, "--ann")
    assert rc == 1, err
    one_line_error(err, "labels.npz: 'y' is ")
    assert words in err
    np.savez(data, x=x, y=y.astype(np.float32))              # whole numbers as floats are fine
    rc, out, err = swsc("check", SAMPLE, "--data", data, "--ann", "--json")
    assert rc == 0 and json.loads(out)["accuracy_ann"] == float((y == _ort_top1(x)).mean()), err


def _ort_top1(x):
    sess = ort.InferenceSession(str(SAMPLE), providers=["CPUExecutionProvider"])
    return np.array([sess.run(None, {sess.get_inputs()[0].name: x[i:i + 1]})[0].argmax() for i in range(len(x))])


def test_inputs_clamped_by_the_input_quantizer_are_warned_about(small):
    raw = np.load(small / "raw255.npz")["x"]
    clamped = float((raw > 1.0 + 0.5 / 255).mean())       # the model quantizes 0..1 with scale 1/255
    rc, _, err = swsc("check", SAMPLE, "--data", small / "raw255.npz", "--ann")
    assert rc == 0, err
    assert err.count("swsc: warning:") == 1 and "raw255.npz" in err and "clamped" in err
    assert f"{100 * clamped:.1f}%" in err
    rc, _, err = swsc("check", SAMPLE, "--data", small / "small.npz", "--ann")
    assert rc == 0 and "warning" not in err


# ---------------------------------------------------------------- 4: the wrong kind of model
def _dynamic_model(path: Path) -> None:
    """What onnxruntime's quantize_dynamic writes for a MatMul: the scale is computed at run time."""
    w = numpy_helper.from_array(np.arange(40, dtype=np.uint8).reshape(4, 10), "w")
    wz = numpy_helper.from_array(np.array(3, np.uint8), "wz")
    ws = numpy_helper.from_array(np.array(0.02, np.float32), "ws")
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
             helper.make_node("MatMulInteger", ["xq", "w", "xz", "wz"], ["acc"]),
             helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["xs", "ws"], ["s"]),
             helper.make_node("Mul", ["accf", "s"], ["y"])]
    g = helper.make_graph(nodes, "dyn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], [w, wz, ws])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def test_wrong_kinds_of_model_get_the_right_advice(tmp_path, small):
    rc, _, err = swsc("compile", SAMPLE, "-o", tmp_path)
    assert rc == 0, err
    ir = tmp_path / (SAMPLE.stem + ".sws.onnx")
    dyn = tmp_path / "dyn.onnx"
    _dynamic_model(dyn)
    cases = [(["compile", ir, "-o", tmp_path / "o"], 1, "already a compiled swsc network", "swsc run"),
             (["check", ir, "--data", small / "small.npz"], 1, "already a compiled swsc network", "swsc dump"),
             (["compile", dyn, "-o", tmp_path / "o"], 1, "dynamic quantization is not supported", "quantize_static"),
             (["dump", dyn], 1, "dynamic quantization is not supported", "DynamicQuantizeLinear"),
             (["compile", tmp_path, "-o", tmp_path / "o"], 2, "is a directory", str(tmp_path)),
             (["check", SAMPLE, "--data", tmp_path], 2, "is a directory", "data file"),
             (["dump", tmp_path], 2, "is a directory", "dump --help")]
    for args, code, words, more in cases:
        rc, _, err = swsc(*args)
        assert rc == code, (args, err)
        one_line_error(err, words)
        assert more in err and "not quantized" not in err and "does not exist" not in err, err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- 5: --debug, usage errors
def test_debug_works_anywhere_on_the_line(tmp_path):
    for args in (["--debug", "compile", SAMPLE, "--tc", "0"], ["compile", SAMPLE, "--tc", "0", "--debug"],
                 ["compile", "--debug", SAMPLE, "--tc", "0"]):
        rc, _, err = swsc(*args, "-o", tmp_path / "o")
        assert rc == 2 and "Traceback" in err and "OptionError" in err, err
        last = err.strip().splitlines()[-1]
        assert last.startswith("swsc: error: --tc must be an integer >= 1") and err.count("swsc: error:") == 1
    rc, out, _ = swsc("check", "--help")
    assert rc == 0 and "--debug" in out
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, pointer", [
    (["compile", SAMPLE, "--bogus"], "swsc compile --help"),
    (["check", SAMPLE], "swsc check --help"),
    (["run", "x.sws.onnx", "--data", "d.npz", "--mode", "fast"], "swsc run --help"),
    (["sweep", SAMPLE, "--data", DATA, "-o", "t.json", "--tc", "x"], "swsc sweep --help"),
    (["frobnicate"], "swsc --help"),
])
def test_usage_errors_point_at_the_subcommand_help(args, pointer):
    rc, _, err = swsc(*args)
    assert rc == 2, err
    one_line_error(err, f"(see '{pointer}')")
    assert "swsc: error: swsc" not in err


# ---------------------------------------------------------------- 6: conflicting options
@pytest.mark.parametrize("args, words", [
    (["check", SAMPLE, "--data", DATA, "--ann", "--backend", "c"], "--ann checks the integer reference evaluator"),
    (["check", SAMPLE, "--data", DATA, "--ann", "--mode", "int"], "drop --mode int"),
    (["check", SAMPLE, "--data", DATA, "--mode", "float", "--backend", "c"], "--mode float cannot apply"),
    (["run", "missing.sws.onnx", "--data", DATA, "--mode", "float", "--backend", "c"], "--mode float cannot apply"),
    (["compile", SAMPLE, "--prefix", "lenet"], "--prefix names the C symbols, so it needs --target c"),
    (["compile", SAMPLE, "--print-ir-after", "lower-to-integer"], "exists only for --target c"),
    (["compile", SAMPLE, "--print-ir-before", "lower-to-integer"], "exists only for --target c"),
    (["compile", SAMPLE, "--encoder-ts", "0"], "--encoder exact has none"),
])
def test_conflicting_options_are_refused(args, words, tmp_path):
    if args[0] == "compile":
        args = args + ["-o", tmp_path / "o"]
    rc, out, err = swsc(*args)
    assert rc == 2, err
    one_line_error(err, words)
    assert out == "" and not (tmp_path / "o").exists()


def test_print_ir_of_lower_to_integer_works_with_target_c(tmp_path):
    rc, _, err = swsc("compile", SAMPLE, "--target", "c", "--print-ir-after", "lower-to-integer", "-o", tmp_path)
    assert rc == 0 and 'after pass "lower-to-integer"' in err


# ---------------------------------------------------------------- 7: check gates CI
def test_check_gates_exit_1_on_disagreement_and_0_on_agreement(small):
    data = small / "small.npz"
    rc, out, err = swsc("check", SAMPLE, "--data", data, "--tc", "2", "--min-top1", "0.999", "--json")
    report = json.loads(out)
    ort_disagree = report["top1_differing"]
    assert rc == 1 and ort_disagree > 0 and report["top1_agreement"] < 0.999, err
    one_line_error(err, "swsc: check failed: top-1 agreement with onnxruntime is ")
    assert f"({ort_disagree} of {N} samples differ), below --min-top1 0.999" in err
    assert report["gates"] == {"min_top1": 0.999} and report["gate_failures"]
    # the paper's exactness condition Ts >= Tc - 1: the SNN equals the quantized ANN
    rc, out, err = swsc("check", SAMPLE, "--data", data, "--ts", "7", "--min-top1", "0.999", "--min-exact", "1",
                        "--max-lsb", "0")
    assert rc == 0 and err == "", err
    assert "gate_failures: []" in out


def test_check_exact_and_lsb_gates(small):
    rc, _, err = swsc("check", SAMPLE, "--data", small / "small.npz", "--encoder", "tsa", "--encoder-ts", "0",
                      "--min-exact", "0.999", "--max-lsb", "0")
    assert rc == 1
    one_line_error(err, "below --min-exact 0.999")
    assert "elements differ)" in err and "above --max-lsb 0" in err


@pytest.mark.parametrize("value", ["1.5", "-0.1", "high"])
def test_gate_values_are_checked(value):
    rc, _, err = swsc("check", SAMPLE, "--data", DATA, "--min-top1", value)
    assert rc == 2
    one_line_error(err, "takes a fraction in [0, 1]")


def test_text_output_does_not_round_a_disagreement_away(small):
    assert fraction_text(1.0) == "1" and fraction_text(0.0) == "0"
    assert fraction_text(0.999996) == ">0.99999" and fraction_text(1 - 1e-9) == ">0.99999"
    assert fraction_text(3e-7) == "<0.00001" and fraction_text(0.96875) == "0.96875"
    rc, out, _ = swsc("check", SAMPLE, "--data", small / "small.npz", "--tc", "2")
    assert rc == 0
    layers = [ln for ln in out.splitlines() if ln.startswith("  ")]
    assert layers and any("max_abs_lsb=0" not in ln for ln in layers)
    for ln in layers:
        fields = dict(f.split("=", 1) for f in ln.split(":", 1)[1].split())
        if fields.get("max_abs_lsb", "0") != "0":
            assert fields["exact_fraction"] != "1", ln
        if fields.get("isolated_max_abs_lsb", "0") != "0":
            assert fields["isolated_exact_fraction"] != "1", ln


def test_check_json_records_every_option(small):
    rc, out, _ = swsc("check", SAMPLE, "--data", small / "small.npz", "--mode", "int", "--limit", "8", "--ts", "3",
                      "--encoder", "tsa", "--encoder-ts", "2", "--vth-factor", "1.0", "--json")
    r = json.loads(out)
    assert rc == 0 and (r["mode"], r["backend"], r["ann"], r["limit"], r["samples"]) == ("int", "numpy", False, 8, 8)
    assert r["options"] == {"tc": 8, "ts": 3, "beta": 2.0, "encoder": "tsa", "encoder_ts": 2, "vth_factor": 1.0,
                            "ts_default": 2}
    rc, out, _ = swsc("check", SAMPLE, "--data", small / "small.npz", "--ann", "--limit", "4", "--json")
    r = json.loads(out)
    assert rc == 0 and r["ann"] is True and r["mode"] is None and r["backend"] is None


# ---------------------------------------------------------------- 8: swsc run
@needs_gcc
def test_run_int_and_c_predict_what_onnxruntime_predicts(small, tmp_path):
    rc, _, err = swsc("compile", SAMPLE, "--ts", "7", "-o", tmp_path)     # Ts >= Tc-1: exact
    assert rc == 0, err
    ir = tmp_path / (SAMPLE.stem + ".sws.onnx")
    x = np.load(small / "small.npz")["x"]
    sess = ort.InferenceSession(str(SAMPLE), providers=["CPUExecutionProvider"])
    ref = np.concatenate([sess.run(None, {sess.get_inputs()[0].name: x[i:i + 1]})[0] for i in range(len(x))])
    got = {}
    for args in (["--mode", "int"], ["--backend", "c"], []):
        out_file = tmp_path / f"y{len(got)}.npz"
        rc, out, err = swsc("run", ir, "--data", small / "small.npz", *args, "-o", out_file, "--json")
        assert rc == 0, err
        summary = json.loads(out)
        with np.load(out_file) as f:
            got[" ".join(args)] = (f["logits"], f["predictions"])
        assert summary["mode"] == ("float" if not args else "int")
        assert summary["backend"] == ("c" if "c" in args else "numpy")
    for logits, pred in got.values():
        assert logits.shape == ref.shape and pred.shape == (N,) and pred.dtype.kind == "i"
        assert np.array_equal(pred, ref.argmax(1))                 # onnxruntime's own top-1
        assert np.allclose(logits, ref, atol=1e-6)
    assert np.array_equal(got["--mode int"][0], got["--backend c"][0])


# ---------------------------------------------------------------- 9: progress
def test_sweep_reports_each_grid_point(small, tmp_path):
    rc, _, err = swsc("sweep", SAMPLE, "--data", small / "small.npz", "--tc", "8", "--ts", "1,2", "--limit", "8",
                      "-o", tmp_path / "t.csv", "--quiet")
    assert rc == 0, err
    lines = err.strip().splitlines()
    assert any("[1/2] Tc=8 Ts=1" in ln for ln in lines) and any("[2/2] Tc=8 Ts=2" in ln for ln in lines), err
    assert "2/2 done" in lines[-1]


def _on_a_terminal(*args) -> tuple[int, str]:
    """Run swsc with stderr on a pseudo-terminal (where progress bars show); (rc, what it drew)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))   # a fresh pty is 0 wide
    p = subprocess.Popen([sys.executable, "-m", "swsc", *map(str, args)], stdout=subprocess.PIPE,
                         stderr=slave)
    os.close(slave)
    chunks = []

    def drain():
        while True:
            try:
                b = os.read(master, 4096)
            except OSError:        # EIO: the terminal's other side closed
                return
            if not b:
                return
            chunks.append(b)
    t = threading.Thread(target=drain)
    t.start()
    p.communicate(timeout=300)
    t.join(timeout=30)
    os.close(master)
    return p.returncode, b"".join(chunks).decode(errors="replace")


@needs_gcc
def test_check_backend_c_and_compile_show_their_steps_on_a_terminal(small, tmp_path):
    rc, drawn = _on_a_terminal("check", SAMPLE, "--data", small / "small.npz", "--limit", "8", "--backend", "c")
    assert rc == 0, drawn
    for words in ("onnxruntime", "swsc numpy int", "building with", "on 8 samples"):
        assert words in drawn, drawn
    rc, drawn = _on_a_terminal("compile", SAMPLE, "-o", tmp_path)
    assert rc == 0 and "importing" in drawn and "converting" in drawn, drawn


# ---------------------------------------------------------------- 10: pipes
@pytest.mark.parametrize("args", [["dump", SAMPLE], ["check", SAMPLE, "--data", DATA, "--ann", "--limit", "4"]])
def test_a_closed_stdout_ends_quietly(args):
    r, w = os.pipe()
    os.close(r)                        # `swsc ... | head` after head has exited
    p = subprocess.run([sys.executable, "-m", "swsc", *map(str, args)], stdout=w, stderr=subprocess.PIPE, text=True)
    os.close(w)
    assert p.stderr == "" and p.returncode == 141     # as a tool killed by SIGPIPE
