"""The generated host harness (main.c): usage, terminal hint, memory table, macro names, and
the raw input that `swsc raw` writes for it (checked against the numpy integer mode)."""
from __future__ import annotations

import os
import pty
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from graphs import tiny_cnn
from swsc.check import output_quant_tensors
from swsc.compiler import compile_graph, import_onnx
from swsc.options import CompileOptions
from swsc.runtime import cbackend as cb
from swsc.runtime.interpreter import run

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="the harness tests need gcc")
#: 23 characters then '_': a 24-character identifier cut here used to end in '_'
LONG = "abcdefghijklmnopqrstuvw_xyz_and_a_much_longer_tail_for_the_memory_table"


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    g = tiny_cnn()
    for n in g.nodes:
        if n.op == "QConv":
            n.name = LONG
    sg = compile_graph(g, CompileOptions(), integer=True)
    d = tmp_path_factory.mktemp("harness")
    cb.emit_c(sg, d, prefix="tiny")
    return cb.build(d, cflags="-std=c99 -O1 -Wall -Wextra -Werror -pedantic")


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(harness, flag):
    r = subprocess.run([str(harness), flag], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith("usage: tiny_main [-m] [INPUT [OUTPUT]]")
    assert "swsc raw" in r.stdout and "72 values of uint8_t" in r.stdout   # 2 x 6 x 6 inputs


@pytest.mark.parametrize("args, msg", [(["--bogus"], "unknown option --bogus"),
                                       (["a", "b", "c"], "too many arguments"),
                                       (["/nonexistent/x.bin"], "cannot open /nonexistent/x.bin")])
def test_bad_arguments_one_line(harness, args, msg):
    r = subprocess.run([str(harness), *args], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and msg in r.stderr and r.stderr.count("\n") == 1 and r.stdout == ""


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_says_it_reads_stdin_on_a_terminal(harness):
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([str(harness)], stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.write(master, b"\x04")                     # end of input at the terminal
        out, err = p.communicate(timeout=10)
    finally:
        os.close(master)
        os.close(slave)
    assert p.returncode == 0 and b"reading raw samples from stdin" in err and out == b""
    r = subprocess.run([str(harness)], input=b"", capture_output=True, timeout=10)   # a pipe: no hint
    assert r.returncode == 0 and r.stderr == b""


def test_memory_table_aligns_long_names(harness):
    r = subprocess.run([str(harness), "-m"], capture_output=True, text=True, timeout=10)
    rows = [line for line in r.stdout.splitlines()[1:] if not line.lstrip().startswith(("ram =", "stats"))]
    assert any(LONG[:40] in row for row in rows)
    assert len(rows) >= 4 and len({len(row) for row in rows}) == 1, rows   # every column ends in one place


def test_macro_names_do_not_end_in_underscore(harness):
    names = re.findall(r"^#define (\w+)", (harness.parent / "tiny.h").read_text(), re.M)
    assert any("ABCDEFGHIJKLMNOPQRSTUVW" in n for n in names)
    assert [n for n in names if n.endswith("_")] == []


def test_swsc_raw_feeds_the_harness(tmp_path):
    model = REPO / "samples" / "lenet5_mnist_qop.onnx"
    x = np.load(REPO / "samples" / "lenet5_mnist_qop_test.npz")["x"][:6]
    np.savez(tmp_path / "x.npz", x=x)
    sg = compile_graph(import_onnx(model), CompileOptions(), integer=True)
    cb.emit_c(sg, tmp_path / "c", prefix="lenet")
    exe = cb.build(tmp_path / "c")
    r = subprocess.run([sys.executable, "-m", "swsc", "raw", str(model), "--data", str(tmp_path / "x.npz"), "-o",
                        str(tmp_path / "in.bin"), "--limit", "5"], capture_output=True, text=True)
    assert r.returncode == 0 and "5 samples of 784 uint8 values" in r.stderr
    subprocess.run([str(exe), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")], check=True, timeout=60)
    man = cb._manifest(exe)
    out, _ = cb.parse_results(man, (tmp_path / "out.bin").read_bytes(), 5)
    res = run(sg, x[:5], mode="int", intermediate=True)
    np.testing.assert_array_equal(out.reshape(5, -1), res.intermediates[output_quant_tensors(sg)[0]].reshape(5, -1))
    bad = subprocess.run([sys.executable, "-m", "swsc", "raw", str(model), "--data", str(tmp_path / "nope.npz"),
                          "-o", str(tmp_path / "o.bin")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "does not exist" in bad.stderr


def test_makefile_and_firmware_module_agree(harness):
    """The Makefile's Cortex-M4 flags are the ones the benchmark's peer is built with."""
    from swsc.runtime import firmware as fw
    mk = (harness.parent / "Makefile").read_text()
    assert f"MCUFLAGS ?= {fw.MCU_FLAGS}\n" in mk
    assert all(flag in mk for flag in fw.LINK_FLAGS.split())
    assert {"fw_startup.c", "fw_link.ld"} <= {p.name for p in harness.parent.iterdir()}
