"""The C backend: generated C (gcc, -Werror -pedantic, ASan/UBSan) against the numpy
integer mode (bit for bit: outputs and per-layer spike counts) and against onnxruntime.

Keep this file fast: sanitizer builds at -O1, few samples; the full corpus sweep is
marked ``slow``.
"""
from __future__ import annotations

import dataclasses
import filecmp
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from graphs import dense_output, residual, tiny_cnn
from swsc.runtime import cbackend as cb
from swsc.runtime import cplan, ctemplates
from swsc.runtime.interpreter import Interpreter, decode

import swsc.ops
from swsc.compiler import compile_graph
from swsc.errors import SwscError, UnsupportedOpError
from swsc.ir import Graph, Quant, Tensor
from swsc.ops import verify
from swsc.options import CompileOptions

REPO = Path(__file__).resolve().parents[1]
SHARED_MODELS = REPO.parent / "shared" / "models"

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="the C backend tests need gcc")

STRICT = "-std=c99 -O1 -Wall -Wextra -Werror -pedantic"
SAN_FLAGS = " -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all"


@pytest.fixture(scope="session")
def cflags(tmp_path_factory) -> str:
    """STRICT plus ASan/UBSan where this gcc can link them."""
    d = tmp_path_factory.mktemp("san")
    (d / "t.c").write_text("int main(void) { return 0; }\n")
    r = subprocess.run(["gcc", *(STRICT + SAN_FLAGS).split(), "-o", str(d / "t"), str(d / "t.c")],
                       capture_output=True)
    if r.returncode == 0 and subprocess.run([str(d / "t")]).returncode == 0:
        return STRICT + SAN_FLAGS
    return STRICT


# ------------------------------------------------------------------ oracles
def int_reference(g: Graph, x: np.ndarray):
    """The numpy integer mode: quantized outputs q [N, ...] (decoded per docs/integer.md from
    the decoder's input frames), spike counts {layer: (pos, neg)}, and the float outputs."""
    it = Interpreter(g, "int")
    res = it.run(x)
    env = it._run_batch({g.inputs[0]: x}, {}, True)
    node = g.producer(g.outputs[0])
    if node.op == "Softmax":
        node = g.producer(node.inputs[0])
    A = np.rint(decode(env[node.inputs[0]], g.coding.beta)).astype(np.int64)
    t16 = node.attrs.get("int_theta_q16")
    code = A if t16 is None else (A * t16 + 2**15) >> 16
    q = code + g.tensors[node.inputs[0]].quant.lo
    return q, {s.name: (s.spikes_pos, s.spikes_neg) for s in res.layers}, res.outputs[g.outputs[0]]


def c_run(g: Graph, d: Path, x_q: np.ndarray, flags: str, prefix: str = "sws"):
    cb.emit_c(g, d, prefix=prefix, header_info={"source": "tests/test_cbackend.py"})
    exe = cb.build(d, cflags=flags)
    return cb.run_binary(exe, x_q)


def assert_matches_numpy(g: Graph, x: np.ndarray, d: Path, flags: str, prefix: str = "sws"):
    x_q = cb.quantize_input(g, x)
    out, counts = c_run(g, d, x_q, flags, prefix)
    q, ref_counts, y = int_reference(g, x)
    assert out.shape == q.shape
    np.testing.assert_array_equal(out, q)
    assert counts == ref_counts and list(counts) == list(ref_counts)    # same layers, same order
    if g.producer(g.outputs[0]).op != "Softmax":
        np.testing.assert_array_equal(cb.dequantize_output(g, out), y)
    assert sum(p + n for p, n in counts.values()) > 0
    return out, counts


# ------------------------------------------------------------------ hand-built graphs
VARIANTS = {
    "default": CompileOptions(),
    "beta3-tsa-enc": CompileOptions(tc=6, ts=[1, 3], beta=3.0, encoder="tsa", encoder_ts=1),
    "long-window": CompileOptions(tc=12, ts=0, vth_factor=1.0),
    "big-ts": CompileOptions(tc=4, ts=9),
    "tc20": CompileOptions(tc=20, ts=3),      # 32-bit spike masks
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("model", ["tiny", "tiny-s8", "residual"])
def test_hand_built_bit_exact(model, variant, tmp_path, cflags):
    build = {"tiny": tiny_cnn, "tiny-s8": lambda: tiny_cnn(in_dtype="int8"), "residual": residual}[model]
    opts = VARIANTS[variant]
    if model == "residual" and isinstance(opts.ts, list):
        opts = CompileOptions(**{**opts.__dict__, "ts": [1, 3, 2]})
    try:
        g = compile_graph(build(), opts, integer=True)
    except SwscError as e:    # e.g. a 20-bit add weight at Tc = 20 needs more than int64
        pytest.skip(f"lower-to-integer rejects this combination: {e}")
    x = np.random.default_rng(1).uniform(-1.2, 1.2, (12,) + g.tensors[g.inputs[0]].shape[1:]).astype(np.float32)
    assert_matches_numpy(g, x, tmp_path / "c", cflags)


def _structural_graph(seed: int = 0) -> Graph:
    """Transpose, Concat along a spatial axis, global average pooling, a 1x1 conv with
    groups, max pooling with padding, and a dense layer after a transpose + reshape."""
    rng = np.random.default_rng(seed)
    g = Graph("structural")
    q8 = lambda s, z=0: Quant(s, z, None, 0, 255)  # noqa: E731
    g.add_tensor(Tensor("x", "float32", (1, 4, 5, 6)))
    g.inputs = ["x"]
    g.add_tensor(Tensor("q", "uint8", (1, 4, 5, 6), quant=q8(1 / 127.5, 128)))
    g.add_node("Quantize", "quant", ["x"], ["q"])
    g.add_const("w", rng.integers(-60, 61, (6, 2, 1, 1)).astype(np.int8), Quant(0.01, 0, None, -128, 127))
    g.add_tensor(Tensor("c", "uint8", (1, 6, 5, 6), quant=q8(0.02)))
    g.add_node("QConv", "conv", ["q", "w"], ["c"], {"kernel": [1, 1], "group": 2})
    g.add_tensor(Tensor("m", "uint8", (1, 6, 3, 3), quant=q8(0.02)))
    g.add_node("MaxPool", "pool", ["c"], ["m"], {"kernel": [3, 2], "strides": [2, 2], "pads": [1, 0, 1, 0]})
    g.add_tensor(Tensor("t", "uint8", (1, 3, 3, 6), quant=q8(0.02)))
    g.add_node("Transpose", "tr", ["m"], ["t"], {"perm": [0, 2, 3, 1]})
    g.add_tensor(Tensor("k", "uint8", (1, 3, 6, 6), quant=q8(0.02)))
    g.add_node("Concat", "cat", ["t", "t"], ["k"], {"axis": 2})
    g.add_tensor(Tensor("a", "uint8", (1, 3, 1, 1), quant=q8(0.01, 5)))
    g.add_node("QAvgPool", "gap", ["k"], ["a"], {"kernel": [6, 6]})
    g.add_tensor(Tensor("f", "uint8", (1, 108), quant=q8(0.02)))
    g.add_node("Reshape", "flat", ["k"], ["f"], {"shape": [1, 108]})
    g.add_const("w2", rng.integers(-60, 61, (4, 108)).astype(np.int8), Quant(0.004, 0, None, -128, 127))
    g.add_tensor(Tensor("d", "uint8", (1, 4), quant=q8(0.05, 90)))
    g.add_node("QDense", "fc", ["f", "w2"], ["d"])
    g.add_tensor(Tensor("y", "float32", (1, 4)))
    g.add_node("Dequantize", "dq", ["d"], ["y"])
    g.add_tensor(Tensor("y2", "float32", (1, 3, 1, 1)))
    g.add_node("Dequantize", "dq2", ["a"], ["y2"])
    g.outputs = ["y", "y2"]
    verify(g)
    return g


def test_structural_ops_and_two_outputs(tmp_path, cflags):
    g = compile_graph(_structural_graph(), CompileOptions(), integer=True)
    x = np.random.default_rng(3).uniform(-1, 1, (6, 4, 5, 6)).astype(np.float32)
    out, counts = c_run(g, tmp_path / "c", cb.quantize_input(g, x), cflags)
    assert out.shape == (6, 4 + 3)                     # two outputs, concatenated
    it = Interpreter(g, "int")
    res = it.run(x)
    env = it._run_batch({g.inputs[0]: x}, {}, True)
    for k, (name, lo, hi) in enumerate([("d", 0, 4), ("a", 4, 7)]):
        A = np.rint(decode(env[name], g.coding.beta)).astype(np.int64)
        np.testing.assert_array_equal(out[:, lo:hi], A.reshape(len(x), -1) + g.tensors[name].quant.lo)
        np.testing.assert_array_equal(cb.dequantize_output(g, out[:, lo:hi], k).reshape(res.outputs[g.outputs[k]].shape),
                                      res.outputs[g.outputs[k]])
    assert counts == {s.name: (s.spikes_pos, s.spikes_neg) for s in res.layers}


# ------------------------------------------------------------------ corpus and sample models
def _frontend():
    from swsc.compiler import import_onnx
    return import_onnx


CORPUS_FAST = ["mlp-qop-pc-s8", "lenet-qdq-pt-u8", "lenet-qop-pc-u8-u8w", "vgg-qdq-pc-s8", "vgg-qop-pt-u8",
               "resnet-qop-pt-s8", "inception-qdq-pc-u8", "pitfall-s8-input-pad", "pitfall-addscales",
               "pitfall-clip7bit"]


def _corpus_case(name, corpus_dir, tmp_path, flags, n=3):
    flags = flags.replace("-O1", "-O0")
    import corpus
    import_onnx = _frontend()
    g = compile_graph(import_onnx(corpus.get_model(name, corpus_dir)), CompileOptions(), integer=True)
    assert_matches_numpy(g, corpus.make_inputs(name, n), tmp_path / "c", flags)


@pytest.mark.parametrize("name", CORPUS_FAST)
def test_corpus_bit_exact(name, corpus_dir, tmp_path, cflags):
    _corpus_case(name, corpus_dir, tmp_path, cflags)


@pytest.mark.slow
def test_corpus_all_bit_exact(corpus_dir, tmp_path):
    # strict, without the sanitizers: they build and run CORPUS_FAST above and test_sanitizers;
    # here they would only double the time of 50 builds
    import corpus
    for name in corpus.model_names():
        _corpus_case(name, corpus_dir, tmp_path / name, STRICT, n=2)


def _shared_models():
    return sorted(SHARED_MODELS.glob("*.onnx")) if SHARED_MODELS.is_dir() else []


@pytest.mark.parametrize("path", _shared_models(), ids=lambda p: p.stem)
def test_shared_models_bit_exact(path, tmp_path):
    import_onnx = _frontend()
    try:
        g = compile_graph(import_onnx(path), CompileOptions(), integer=True)
    except SwscError as e:
        pytest.skip(f"the compiler does not take {path.name}: {e}")
    x = np.random.default_rng(0).uniform(-1, 1, (1,) + g.tensors[g.inputs[0]].shape[1:]).astype(np.float32)
    # strict at -O0, no sanitizers: MobileNetV2's 1.4 MB core and 17 MB of weights take minutes
    # to build and run under them; the samples and the corpus are checked with them
    assert_matches_numpy(g, x, tmp_path / "c", STRICT.replace("-O1", "-O0"))


@pytest.mark.parametrize("name", ["lenet-qdq-pt-s8", "resnet-qop-pc-u8", "inception-qop-pt-u8"])
def test_against_onnxruntime(name, corpus_dir, tmp_path):
    """With Ts >= Tc - 1 every neuron sees its whole input before firing: the C output is the
    quantized ANN's (onnxruntime's) up to its float32 requantization rounding (1 LSB)."""
    import corpus

    from swsc.oracle import Oracle
    import_onnx = _frontend()
    path = corpus.get_model(name, corpus_dir)
    g = compile_graph(import_onnx(path), CompileOptions(ts=7), integer=True)
    x = corpus.make_inputs(name, 16)
    out, _ = c_run(g, tmp_path / "c", cb.quantize_input(g, x), "-std=c99 -O2")
    y = next(iter(Oracle(path).run(x).values()))
    dq = g.tensors[g.producer(g.outputs[0]).inputs[0]].quant
    q_ort = np.rint(y / float(np.ravel(dq.scale)[0]) + float(np.ravel(dq.zero_point)[0]))
    diff = np.abs(out - q_ort.reshape(out.shape))
    assert diff.max() <= 1
    assert np.mean(diff == 0) >= 0.99


# ------------------------------------------------------------------ adversarial
def _hot_graph(seed: int, u8_weights: bool, include_pad: int = 1) -> Graph:
    """Extreme weights (full int8 range or uint8 with a zero point: w - z_w up to 255), a big
    bias, a strided dilated grouped conv, a padded avg pool, a residual add and a dense layer."""
    rng = np.random.default_rng(seed)
    g = Graph("hot")
    g.add_tensor(Tensor("x", "float32", (1, 4, 7, 7)))
    g.inputs = ["x"]
    q8 = lambda s, z=0: Quant(s, z, None, 0, 255)  # noqa: E731
    g.add_tensor(Tensor("q", "uint8", (1, 4, 7, 7), quant=q8(1 / 255, 3)))
    g.add_node("Quantize", "quant", ["x"], ["q"])
    if u8_weights:
        w = rng.choice([0, 255], (4, 2, 3, 3)).astype(np.uint8)
        wq = Quant(np.full(4, 0.004), np.array([0, 255, 128, 1]), 0, 0, 255)
    else:
        w = rng.choice([-128, 127], (4, 2, 3, 3)).astype(np.int8)
        wq = Quant(np.full(4, 0.004), np.zeros(4, int), 0, -128, 127)
    g.add_const("w", w, wq)
    g.add_const("b", rng.normal(0, 3000, 4))
    g.add_tensor(Tensor("c", "uint8", (1, 4, 3, 3), quant=q8(0.05)))
    g.add_node("QConv", "conv", ["q", "w", "b"], ["c"],
               {"kernel": [3, 3], "pads": [2, 0, 1, 1], "strides": [2, 2], "dilations": [2, 1], "group": 2})
    # count_include_pad=0: the pool keeps its input's scale, so the divisors 1, 2, 4 make exact ties
    g.add_tensor(Tensor("a", "uint8", (1, 4, 3, 3), quant=q8(0.07 if include_pad else 0.05, 2)))
    g.add_node("QAvgPool", "avg", ["c"], ["a"], {"kernel": [2, 2], "strides": [1, 1], "pads": [1, 1, 0, 0],
                                                   "count_include_pad": include_pad})
    g.add_tensor(Tensor("s", "uint8", (1, 4, 3, 3), quant=q8(0.02)))
    g.add_node("QAdd", "add", ["a", "c"], ["s"])
    g.add_tensor(Tensor("r", "uint8", (1, 36), quant=q8(0.02)))
    g.add_node("Reshape", "flat", ["s"], ["r"], {"shape": [1, 36]})
    return dense_output(g, "r", "w2", rng.choice([-128, 127], (6, 36)).astype(np.int8),
                        Quant(0.01, 0, None, -128, 127), q8(0.5, 7))


@pytest.mark.parametrize("u8", [False, True], ids=["s8w", "u8w"])
def test_adversarial_inputs_and_weights(u8, tmp_path, cflags):
    """All-max, all-min and random extreme inputs through extreme weights, under UBSan."""
    g = compile_graph(_hot_graph(3, u8), CompileOptions(tc=10, ts=[3, 9, 1, 2]), integer=True)
    shape = g.tensors[g.inputs[0]].shape[1:]
    rng = np.random.default_rng(5)
    x = np.stack([np.full(shape, 1e9), np.full(shape, -1e9), np.full(shape, 3.0),
                  *rng.choice([-1e9, 1e9], (4,) + shape), rng.uniform(-1, 2, shape)]).astype(np.float32)
    out, counts = assert_matches_numpy(g, x, tmp_path / "c", cflags)
    assert out.min() >= 0 and out.max() <= 255


def test_avgpool_divisor_varying_at_padded_borders(tmp_path, cflags):
    """count_include_pad=0 divides border windows by fewer taps: the integer constants bq, rq
    vary by position. With the input's scale kept (dyadic divisors, so the ANN's many exact
    ties stay exact in integer units), at Ts = Tc-1 the integer mode equals the exact ANN on
    every tensor, and the C equals the integer mode."""
    from swsc.passes import FoldZeroPoints
    from swsc.runtime.interpreter import run

    from swsc.passmanager import PassManager

    graph = _hot_graph(3, False, include_pad=0)
    g = compile_graph(graph, CompileOptions(tc=8, ts=7), integer=True)
    rq = g.const(g.node("avg").inputs[5])
    assert len(np.unique(rq)) > 1, "the reset must differ between inner and border windows"
    x = np.random.default_rng(2).uniform(-1, 2, (24,) + tuple(g.tensors[g.inputs[0]].shape[1:])).astype(np.float32)
    ann = run(PassManager([FoldZeroPoints()]).run(graph), x, intermediate=True).intermediates
    snn = run(g, x, intermediate=True, mode="int").intermediates
    for k in ("a", "s", "d"):
        assert np.array_equal(np.rint(snn[k]), np.rint(ann[k])), k
    assert_matches_numpy(g, x, tmp_path / "c", cflags)


def test_int64_membranes_only_on_request(tmp_path, cflags):
    """--membrane-bits 64 gives int64_t membranes (and finer constants), bit-exact like the default."""
    x = np.random.default_rng(6).uniform(-1, 1, (6, 3, 5, 5)).astype(np.float32)
    for bits, want in ((64, "int64_t U = 0"), (32, "int32_t U = 0")):
        g = compile_graph(residual(), CompileOptions(ts=1, membrane_bits=bits), integer=True)
        assert_matches_numpy(g, x, tmp_path / str(bits), cflags)
        core = (tmp_path / str(bits) / "sws.c").read_text()
        assert want in core
        assert ("int64_t" in core) == (bits == 64)


def _models_at_default_options(corpus_dir):
    import corpus
    import_onnx = _frontend()
    for name in corpus.model_names():
        yield name, import_onnx(corpus.get_model(name, corpus_dir))
    for path in sorted((REPO / "samples").glob("*.onnx")):
        yield path.stem, import_onnx(path)


def test_no_int64_in_any_core_at_default_options(corpus_dir, tmp_path):
    """Every corpus model and bundled sample: int32 membranes (the proven bound fits 32 bits,
    saturating where the exact one would not) and no 64-bit integer anywhere in the core."""
    for name, graph in _models_at_default_options(corpus_dir):
        g = compile_graph(graph, CompileOptions(), integer=True)
        for node in g.nodes:
            if node.op == "TsaLayer":
                assert node.attrs["int_membrane"] == "int32" and node.attrs["int_bound"] < 2**31, (name, node.name)
        report = cb.emit_c(g, tmp_path / name, prefix="m")
        assert "int64_t" not in (tmp_path / name / "m.c").read_text(), name
        assert all(0 < lay.membrane_bits <= 32 for lay in report.layers if lay.op == "TsaLayer"), name


def test_raw_input_outside_range(tmp_path, cflags):
    """Raw codes outside a narrowed input range clamp instead of reading past the table."""
    src = tiny_cnn()
    src.tensors["q"].quant.lo, src.tensors["q"].quant.hi = 20, 200
    g = compile_graph(src, CompileOptions(), integer=True)
    noise = np.random.default_rng(0).choice([0, 255], (2, 6, 6))
    x_q = np.stack([np.full((2, 6, 6), 255), np.full((2, 6, 6), 200), np.zeros((2, 6, 6)),
                    np.full((2, 6, 6), 20), noise, np.clip(noise, 20, 200)]).astype(np.uint8)
    out, _ = c_run(g, tmp_path / "c", x_q, cflags)
    np.testing.assert_array_equal(out[0::2], out[1::2])
    x = (np.clip(noise, 20, 200)[None].astype(np.float32) - 128) / 127.5
    q, _, _ = int_reference(g, x)
    np.testing.assert_array_equal(out[5:], q)


# ------------------------------------------------------------------ names, text, determinism
EVIL = 'evil */ name\n"quoted" \\back\\slash ??/ caf\u00e9 /* x */'


def _evil_graph() -> Graph:
    g = tiny_cnn()
    g.name = "model " + EVIL
    rename = {t: f"{t} {EVIL}" for t in g.tensors}
    for old, new in rename.items():
        t = g.tensors.pop(old)
        t.name = new
        g.tensors[new] = t
    for i, n in enumerate(g.nodes):
        n.name = f"{i}{EVIL}" if i % 2 else f"node{i} {EVIL}"
        n.inputs = [rename.get(v, v) for v in n.inputs]
        n.outputs = [rename.get(v, v) for v in n.outputs]
    g.inputs = [rename[v] for v in g.inputs]
    g.outputs = [rename[v] for v in g.outputs]
    verify(g)
    return g


def test_hostile_names(tmp_path, cflags):
    g = compile_graph(_evil_graph(), CompileOptions(), integer=True)
    x = np.random.default_rng(2).uniform(-1, 1, (4, 2, 6, 6)).astype(np.float32)
    cb.emit_c(g, tmp_path / "c", header_info={"note": EVIL})
    for f in (tmp_path / "c").iterdir():
        if f.suffix in (".c", ".h"):
            text = f.read_bytes()
            assert all(b < 128 for b in text), f.name
            for piece in ("*/ name", '"quoted"', "\\back", "??/", "/* x", "evil */"):
                assert piece.encode() not in text, (f.name, piece)
            assert b"evil __ name" in text or f.name == "sws_internal.h"   # the sanitized name is there
    assert_matches_numpy(g, x, tmp_path / "c", cflags)
    ref = compile_graph(tiny_cnn(), CompileOptions(), integer=True)
    out_evil, _ = cb.run_binary(tmp_path / "c" / "sws_main", cb.quantize_input(g, x))
    out_ref, _ = c_run(ref, tmp_path / "ref", cb.quantize_input(ref, x), STRICT)
    np.testing.assert_array_equal(out_evil, out_ref)


def test_sanitizers():
    taken: set = set()
    assert cb.c_ident("9 lives", taken) == "n9_lives"
    assert cb.c_ident("9 lives", taken) == "n9_lives_1"
    assert cb.c_ident("N9-LIVES", taken) == "N9_LIVES_2"     # case-insensitive: macros are upper-cased
    assert cb.c_ident("", taken) == "x"
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", cb.c_ident("\u00e9\u00e9", taken))
    s = cb.c_comment(EVIL)
    for bad in ("*", "/", "\\", '"', "'", "?", "\n"):
        assert bad not in s
    assert all(32 <= ord(ch) < 127 for ch in s)
    assert cb.c_int(-2**31) == "(-2147483647 - 1)" and cb.c_int(2**40) == "1099511627776LL"
    with pytest.raises(SwscError):
        cb.emit_c(compile_graph(tiny_cnn(), CompileOptions(), integer=True), "/nonexistent-never", prefix="1bad")


def test_core_has_no_float_malloc_stdio(tmp_path):
    g = compile_graph(residual(), CompileOptions(), integer=True)
    cb.emit_c(g, tmp_path)
    for name in ("sws.c", "sws_weights.c", "sws_internal.h"):
        text = (tmp_path / name).read_text()
        for word in ("float", "double", "malloc", "printf", "stdio", "math.h"):
            assert not re.search(rf"\b{word}\b", text), (name, word)


@pytest.mark.skipif(shutil.which("ld") is None or shutil.which("nm") is None, reason="needs binutils")
def test_core_links_alone_with_prefixed_symbols(tmp_path):
    """The core and its weights need no library (freestanding; gcc may still call mem* for
    loops), export only prefixed symbols, and also build for a 32-bit target where gcc can."""
    g = compile_graph(_structural_graph(), CompileOptions(), integer=True)
    cb.emit_c(g, tmp_path, prefix="tnet")
    objs = []
    for src in ("tnet.c", "tnet_weights.c"):
        obj = tmp_path / src.replace(".c", ".o")
        subprocess.run(["gcc", *STRICT.replace("-O1", "-O2").split(), "-ffreestanding", "-c", "-o", str(obj),
                        str(tmp_path / src)], check=True)
        objs.append(str(obj))
    subprocess.run(["ld", "-r", "-o", str(tmp_path / "core.o"), *objs], check=True)
    undefined = subprocess.run(["nm", "-u", str(tmp_path / "core.o")], capture_output=True, text=True,
                               check=True).stdout.split()
    assert [u for u in undefined if u not in ("U", "memset", "memcpy", "memmove")] == []
    exported = subprocess.run(["nm", "-g", "--defined-only", str(tmp_path / "core.o")], capture_output=True,
                              text=True, check=True).stdout.splitlines()
    assert exported and all(line.split()[-1].startswith("tnet_") for line in exported)
    m32 = subprocess.run(["gcc", "-m32", *STRICT.split(), "-ffreestanding", "-c", "-o", str(tmp_path / "m32.o"),
                          str(tmp_path / "tnet.c")], capture_output=True, text=True)
    missing_target = any(w in m32.stderr for w in ("-m32", "unrecognized", "No such file", "not supported"))
    assert m32.returncode == 0 or missing_target, m32.stderr


def test_every_plan_names_a_shipped_fragment():
    """The plans' templates exist where the loader looks (swsc/ops/<op>.c.j2, shipped as
    package data), and an op without a c_plan is listed as unsupported by name."""
    env = ctemplates.env()
    plans = [obj for mod in vars(swsc.ops).values() if inspect.ismodule(mod)
             for obj in vars(mod).values() if dataclasses.is_dataclass(obj) and isinstance(obj, type)
             and isinstance(getattr(obj, "template", None), str)]
    assert len(plans) >= 10
    for plan in plans:
        assert plan.template.startswith("ops/") and plan.template.endswith(".c.j2"), plan
        env.get_template(plan.template)
    assert '"swsc.ops" = ["*.c.j2"]' in (Path(__file__).parent.parent / "pyproject.toml").read_text()
    g = compile_graph(tiny_cnn(), CompileOptions(), integer=True)
    g.nodes[1].op, saved = "QConv", g.nodes[1].op   # an op without a C plan
    try:
        with pytest.raises(UnsupportedOpError, match="no code for this op"):
            cplan.Planner(g, "sws")
    finally:
        g.nodes[1].op = saved


def test_deterministic(tmp_path):
    g1 = compile_graph(residual(), CompileOptions(), integer=True)
    g2 = compile_graph(residual(), CompileOptions(), integer=True)
    r1 = cb.emit_c(g1, tmp_path / "a", prefix="m", header_info={"source": "x"})
    cb.emit_c(g2, tmp_path / "b", prefix="m", header_info={"source": "x"})
    cb.emit_c(g1, tmp_path / "c", prefix="m", header_info={"source": "x"})
    script = ("import sys; sys.path.insert(0, %r)\n"
              "from graphs import residual\nfrom swsc.compiler import compile_graph\n"
              "from swsc.options import CompileOptions\nfrom swsc.runtime import cbackend as cb\n"
              "cb.emit_c(compile_graph(residual(), CompileOptions(), integer=True), %r, prefix='m',"
              " header_info={'source': 'x'})\n" % (str(Path(__file__).parent), str(tmp_path / "d")))
    subprocess.run([sys.executable, "-c", script], check=True, env={**os.environ, "PYTHONHASHSEED": "12345"})
    names = sorted(p.name for p in r1.files)
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    for n in names:
        assert filecmp.cmp(tmp_path / "a" / n, tmp_path / "b" / n, shallow=False), n
        assert filecmp.cmp(tmp_path / "a" / n, tmp_path / "c" / n, shallow=False), n
        assert filecmp.cmp(tmp_path / "a" / n, tmp_path / "d" / n, shallow=False), n


# ------------------------------------------------------------------ linking, harness, memory
def test_two_models_one_binary(tmp_path, cflags):
    """Two models with different prefixes link into one program, and each computes its own."""
    ga = compile_graph(tiny_cnn(), CompileOptions(), integer=True)
    gb = compile_graph(residual(), CompileOptions(ts=1), integer=True)
    cb.emit_c(ga, tmp_path / "a", prefix="net_a")
    cb.emit_c(gb, tmp_path / "b", prefix="net_b")
    xa = np.random.default_rng(0).uniform(-1, 1, (1, 2, 6, 6)).astype(np.float32)
    xb = np.random.default_rng(1).uniform(-1, 1, (1, 3, 5, 5)).astype(np.float32)
    qa, qb = cb.quantize_input(ga, xa), cb.quantize_input(gb, xb)
    main = tmp_path / "both.c"
    main.write_text(
        '#include <stdio.h>\n#include "net_a.h"\n#include "net_b.h"\n'
        "static const net_a_input_t xa[NET_A_INPUT_SIZE] = {%s};\n"
        "static const net_b_input_t xb[NET_B_INPUT_SIZE] = {%s};\n"
        "int main(void) {\n"
        "    int32_t ya[NET_A_OUTPUT_SIZE], yb[NET_B_OUTPUT_SIZE];\n    int i;\n"
        "    if (net_a_run(xa, ya) || net_b_run(xb, yb)) return 1;\n"
        '    for (i = 0; i < NET_A_OUTPUT_SIZE; ++i) printf("%%ld ", (long)ya[i]);\n    printf("\\n");\n'
        '    for (i = 0; i < NET_B_OUTPUT_SIZE; ++i) printf("%%ld ", (long)yb[i]);\n    printf("\\n");\n'
        '    printf("%%ld %%ld\\n", (long)net_a_last_stats()->spikes_pos[0], (long)net_b_last_stats()->spikes_pos[0]);\n'
        "    return 0;\n}\n" % (", ".join(map(str, qa.ravel())), ", ".join(map(str, qb.ravel()))))
    srcs = [str(main)] + [str(tmp_path / d / f"{p}{s}") for d, p in (("a", "net_a"), ("b", "net_b"))
                          for s in (".c", "_weights.c", "_float.c")]
    exe = tmp_path / "both"
    subprocess.run(["gcc", *cflags.split(), f"-I{tmp_path / 'a'}", f"-I{tmp_path / 'b'}", "-o", str(exe), *srcs,
                    "-lm"], check=True)
    lines = subprocess.run([str(exe)], capture_output=True, text=True, check=True,
                           env={**os.environ, "ASAN_OPTIONS": "detect_leaks=0"}).stdout.splitlines()
    qa_ref, ca, _ = int_reference(ga, xa)
    qb_ref, cb_, _ = int_reference(gb, xb)
    assert [int(v) for v in lines[0].split()] == qa_ref.ravel().tolist()
    assert [int(v) for v in lines[1].split()] == qb_ref.ravel().tolist()
    assert [int(v) for v in lines[2].split()] == [ca["quant"][0], cb_["quant"][0]]


_TWO_ARENAS = r"""
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include "sws.h"
#define MAXN 64
/* the harness's I/O format; two threads run alternate frames at once, each on its own arena */
static sws_input_t x[MAXN][SWS_INPUT_SIZE];
static int32_t y[MAXN][SWS_OUTPUT_SIZE], st[MAXN][2 * SWS_N_LAYERS];
static long n;
static sws_arena_t first;
struct job { sws_arena_t *mem; long start; };

static void *work(void *arg)
{
    struct job *j = arg;
    long i;
    int k;
    for (i = j->start; i < n; i += 2) {
        const struct sws_stats *s;
        if (sws_run_arena(j->mem, x[i], y[i]) != 0) return arg;
        s = sws_arena_stats(j->mem);
        for (k = 0; k < SWS_N_LAYERS; ++k) {
            st[i][k] = s->spikes_pos[k];
            st[i][SWS_N_LAYERS + k] = s->spikes_neg[k];
        }
    }
    return NULL;
}

int main(void)
{
    sws_arena_t *second = malloc(SWS_ARENA_BYTES);
    struct job a, b;
    pthread_t ta, tb;
    void *ra, *rb;
    long i;
    if (!second) return 2;
    a.mem = &first, a.start = 0, b.mem = second, b.start = 1;
    while (n < MAXN && fread(x[n], sizeof x[0][0], SWS_INPUT_SIZE, stdin) == SWS_INPUT_SIZE) ++n;
    if (pthread_create(&ta, NULL, work, &a) || pthread_create(&tb, NULL, work, &b)) return 2;
    if (pthread_join(ta, &ra) || pthread_join(tb, &rb) || ra || rb) return 3;
    for (i = 0; i < n; ++i) {
        fwrite(y[i], sizeof y[i][0], SWS_OUTPUT_SIZE, stdout);
        fwrite(st[i], sizeof st[i][0], 2 * SWS_N_LAYERS, stdout);
    }
    free(second);
    return 0;
}
"""


def test_application_owned_arenas(tmp_path, cflags):
    """Two caller-owned arenas (one static, one malloc'd) used by two threads at once, with the
    static instance compiled out (-DSWS_NO_STATIC_ARENA): every frame's outputs and spike counts
    equal the numpy integer mode's and the static variant's."""
    g = compile_graph(residual(), CompileOptions(ts=1), integer=True)
    x = np.random.default_rng(9).uniform(-1, 1, (40, 3, 5, 5)).astype(np.float32)
    d = tmp_path / "c"
    x_q = cb.quantize_input(g, x)
    static_out, static_counts = c_run(g, d, x_q, cflags)
    (d / "two.c").write_text(_TWO_ARENAS)
    exe = d / "two"
    subprocess.run(["gcc", *cflags.split(), "-pthread", "-DSWS_NO_STATIC_ARENA", f"-I{d}", "-o", str(exe),
                    str(d / "two.c"), str(d / "sws.c"), str(d / "sws_weights.c")], check=True)
    out, counts = cb.run_binary(exe, x_q, per_sample=True)
    q, ref_counts, _ = int_reference(g, x)
    np.testing.assert_array_equal(out, q)
    np.testing.assert_array_equal(out, static_out)
    assert {k: (int(p.sum()), int(m.sum())) for k, (p, m) in counts.items()} == ref_counts == static_counts
    header = (d / "sws.h").read_text()
    assert re.search(r"#define SWS_ARENA_BYTES \d+", header)


def test_float_helpers_and_harness(tmp_path, cflags):
    """quantize/dequantize/softmax helpers agree with numpy; the harness takes files; -m reports."""
    g = compile_graph(tiny_cnn(), CompileOptions(), integer=True)
    d = tmp_path / "c"
    report = cb.emit_c(g, d)
    exe = cb.build(d, cflags=cflags)
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.uniform(-1.5, 1.5, (3, 2, 6, 6)),
                        (np.arange(72).reshape(1, 2, 6, 6) - 36) / 127.5 * 1.0]).astype(np.float32)
    x[0, 0, 0, :3] = [np.inf, -np.inf, 0.5 / 127.5]          # saturation and an exact tie
    prog = tmp_path / "helpers.c"
    prog.write_text(
        '#include <stdio.h>\n#include "sws.h"\n'
        "int main(void) {\n    float x[SWS_INPUT_SIZE], y[SWS_OUTPUT_SIZE];\n"
        "    sws_input_t q[SWS_INPUT_SIZE];\n    int32_t o[SWS_OUTPUT_SIZE];\n"
        "    while (fread(x, sizeof x[0], SWS_INPUT_SIZE, stdin) == SWS_INPUT_SIZE) {\n"
        "        sws_quantize_input(x, q);\n        sws_run(q, o);\n        sws_dequantize_output(o, y);\n"
        "        sws_apply_tail(y);\n"
        "        fwrite(q, sizeof q[0], SWS_INPUT_SIZE, stdout);\n        fwrite(y, sizeof y[0], SWS_OUTPUT_SIZE, stdout);\n"
        "    }\n    return 0;\n}\n")
    subprocess.run(["gcc", *cflags.split(), f"-I{d}", "-o", str(tmp_path / "helpers"), str(prog), str(d / "sws.c"),
                    str(d / "sws_weights.c"), str(d / "sws_float.c"), "-lm"], check=True)
    raw = subprocess.run([str(tmp_path / "helpers")], input=x.tobytes(), capture_output=True, check=True,
                         env={**os.environ, "ASAN_OPTIONS": "detect_leaks=0"}).stdout
    n = len(x)
    rec = 72 + 5 * 4
    buf = np.frombuffer(raw, dtype=np.uint8).reshape(n, rec)
    q_c = buf[:, :72].reshape(x.shape)
    y_c = buf[:, 72:].copy().view(np.float32)
    np.testing.assert_array_equal(q_c, cb.quantize_input(g, x))
    _, _, y_ref = int_reference(g, x)
    np.testing.assert_array_equal(y_c, y_ref)
    # the harness with file arguments, then a truncated sample
    inp, outp = tmp_path / "in.bin", tmp_path / "out.bin"
    inp.write_bytes(q_c.tobytes())
    subprocess.run([str(exe), str(inp), str(outp)], check=True, env={**os.environ, "ASAN_OPTIONS": "detect_leaks=0"})
    out, _ = cb.run_binary(exe, q_c)
    L = len(json.loads((d / "manifest.json").read_text())["layers"])
    assert np.frombuffer(outp.read_bytes(), dtype=np.int32).reshape(n, -1)[:, :5].tolist() == out.tolist()
    assert L == 3
    bad = subprocess.run([str(exe)], input=q_c.tobytes()[:-1], capture_output=True,
                         env={**os.environ, "ASAN_OPTIONS": "detect_leaks=0"})
    assert bad.returncode == 2
    text = cb.memory_report(exe)
    assert f"{report.flash_bytes:>10} {report.ram_bytes:>10}" in text


def test_softmax_tail(tmp_path, corpus_dir, cflags):
    import corpus
    import_onnx = _frontend()
    g = compile_graph(import_onnx(corpus.get_model("mlp-qdq-pt-u8", corpus_dir)), CompileOptions(), integer=True)
    cb.emit_c(g, tmp_path / "c")
    h = (tmp_path / "c" / "sws.h").read_text()
    assert "#define SWS_HAS_TAIL 1" in h
    assert "expf" in (tmp_path / "c" / "sws_float.c").read_text()


def test_memory_plan(tmp_path):
    """Buffers whose lifetimes overlap never share bytes; a chain reuses; the report adds up."""
    g = compile_graph(residual(), CompileOptions(), integer=True)
    pl = cb.Planner(g, "sws")
    pl.plan()
    bufs = list(pl.buffers.values())
    for i, a in enumerate(bufs):
        for b in bufs[i + 1:]:
            if not (a.end < b.start or b.end < a.start):
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset
    # a train of Tc = 8 frames is two uint8 masks; the shortcut c0 stays alive until the add:
    # three 150-byte buffers at once, not two, and not all four
    assert pl.mask_t == "uint8_t"
    assert pl.arena == 3 * 3 * 25 * 2 and pl.unshared == 4 * 3 * 25 * 2
    rep = cb.emit_c(g, tmp_path)
    assert rep.ram_bytes == rep.arena_bytes + rep.work_bytes + rep.stats_bytes
    assert rep.flash_bytes == sum(lay.flash_bytes for lay in rep.layers)
    assert [lay.name for lay in rep.layers] == ["quant", "conv0", "conv1", "add"]
    assert "total" in rep.format()


def test_needs_integer_graph(tmp_path):
    g = compile_graph(tiny_cnn(), CompileOptions())
    with pytest.raises(SwscError, match="lower-to-integer"):
        cb.emit_c(g, tmp_path)


def _two_output_model(path: Path) -> Path:
    """A QDQ conv whose model also outputs its dequantized input: two graph outputs."""
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(0)
    inits = [nh.from_array(np.float32(1 / 255), "s"), nh.from_array(np.uint8(0), "z"),
             nh.from_array(rng.integers(-60, 61, (3, 1, 3, 3)).astype(np.int8), "wq"),
             nh.from_array(np.float32(0.01), "ws"), nh.from_array(np.int8(0), "wz"),
             nh.from_array(np.float32(0.002), "so")]
    nodes = [h.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             h.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             h.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
             h.make_node("Conv", ["xd", "wd"], ["c"], pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c"], ["r"]),
             h.make_node("QuantizeLinear", ["r", "so", "z"], ["cq"]),
             h.make_node("DequantizeLinear", ["cq", "so", "z"], ["y"])]
    g = h.make_graph(nodes, "two_out", [h.make_tensor_value_info("x", T.FLOAT, [1, 1, 5, 5])],
                     [h.make_tensor_value_info("y", T.FLOAT, [1, 3, 5, 5]),
                      h.make_tensor_value_info("xd", T.FLOAT, [1, 1, 5, 5])], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def test_check_compares_every_output_of_the_c_build(tmp_path):
    from swsc.check import check

    model = _two_output_model(tmp_path / "two_out.onnx")
    data = tmp_path / "d.npz"
    np.savez(data, x=np.random.default_rng(1).uniform(0, 1, (16, 1, 5, 5)).astype(np.float32))
    report = check(model, data, CompileOptions(tc=8, ts=7), backend="c", progress=False)
    assert report["backend_identical"] is True
    assert report["exact_fraction"] == 1.0
    by_tensor = {layer["tensor"]: layer for layer in report["layers"]}
    assert by_tensor["cq"]["exact_fraction"] == 1.0
