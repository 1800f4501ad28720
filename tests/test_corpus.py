"""Self-test of the test corpus generator (tests/corpus.py).

Set SWSC_CORPUS_DIR to build/reuse the corpus in a persistent directory.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

try:
    from . import corpus  # tests/ is a package
except ImportError:
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    import corpus

ort = pytest.importorskip("onnxruntime")


def _session(path):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _run(sess, xs: np.ndarray) -> np.ndarray:
    """One sample per run (fixed batch 1); stack along axis 0."""
    return np.concatenate([sess.run(None, {"input": x[None]})[0] for x in xs], axis=0)


# Op types (domain-qualified for com.microsoft) per (arch, format), for every
# per-channel / activation-type variant.  Pins what ORT 1.32 emits; if an ORT
# upgrade changes this, update the table in corpus.py's docstring too.
_MS = "com.microsoft:"
EXPECTED_OPS = {
    ("mlp", "qdq"): {"QuantizeLinear", "DequantizeLinear", "Gemm", "MatMul", "Add", "Softmax"},
    ("mlp", "qop"): {"QuantizeLinear", "DequantizeLinear", "QLinearMatMul", _MS + "QGemm",
                     _MS + "QLinearAdd", _MS + "QLinearSoftmax"},
    ("lenet", "qdq"): {"QuantizeLinear", "DequantizeLinear", "Conv", "MaxPool", "Flatten",
                       "Gemm"},
    ("lenet", "qop"): {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "MaxPool",
                       "Flatten", _MS + "QGemm"},
    ("vgg", "qdq"): {"QuantizeLinear", "DequantizeLinear", "Conv", "AveragePool", "Shape",
                     "Gather", "Unsqueeze", "Concat", "Reshape", "Gemm"},
    ("vgg", "qop"): {"QuantizeLinear", "DequantizeLinear", "QLinearConv",
                     _MS + "QLinearAveragePool", "Shape", "Gather", "Unsqueeze", "Concat",
                     "Reshape", _MS + "QGemm"},
    ("resnet", "qdq"): {"QuantizeLinear", "DequantizeLinear", "Conv", "Add",
                        "GlobalAveragePool", "Flatten", "Gemm"},
    ("resnet", "qop"): {"QuantizeLinear", "DequantizeLinear", "QLinearConv", _MS + "QLinearAdd",
                        _MS + "QLinearGlobalAveragePool", "Flatten", _MS + "QGemm"},
    ("inception", "qdq"): {"QuantizeLinear", "DequantizeLinear", "Conv", "MaxPool", "Concat",
                           "ReduceMean", "Flatten", "Gemm"},
    ("inception", "qop"): {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "MaxPool",
                           _MS + "QLinearConcat", "ReduceMean", "Flatten", _MS + "QGemm"},
}

# Ops each pitfall model must contain (the construct it exists for).
PITFALL_OPS = {
    "pitfall-constants": {"Constant", "Identity", "ConstantOfShape", "Cast"},
    "pitfall-qcastdq": {"Cast"},
    "pitfall-fanout": {"Add"},
    "pitfall-addscales": {"Add", "Concat"},
    "pitfall-clip7bit": {"Clip"},
    "pitfall-bn": {"Div", "Add", "BatchNormalization"},
    "pitfall-float-bias": {"Conv"},
    "pitfall-s8-input-pad": {"Conv"},
}


def _ops(model: onnx.ModelProto) -> set[str]:
    return {(n.domain + ":" if n.domain else "") + n.op_type for n in model.graph.node}


def _inits(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


# --------------------------------------------------------------------------
# API / names
# --------------------------------------------------------------------------

def test_names_and_variants():
    names = corpus.model_names()
    assert len(names) == len(set(names))
    assert len(corpus.VARIANTS) == 8
    combos = {(v["format"], v["per_channel"], v["activation"]) for v in corpus.VARIANTS}
    assert len(combos) == 8
    assert len(names) == len(corpus.ARCHS) * 8 + 2 + len(corpus.PITFALLS)
    for extra in ("lenet-qdq-pt-u8-dynbatch", "lenet-qop-pc-u8-u8w", "lenet-qop-pt-s8",
                  "resnet-qdq-pc-u8", *corpus.PITFALLS):
        assert extra in names
    assert corpus.input_shape("lenet-qdq-pc-u8") == (1, 1, 16, 16)
    assert corpus.input_shape("mlp-qop-pt-s8") == (1, 64)
    assert corpus.input_shape("inception-qdq-pt-u8") == (1, 3, 12, 12)
    assert corpus.dynamic_batch("lenet-qdq-pt-u8-dynbatch")
    assert not corpus.dynamic_batch("lenet-qdq-pt-u8")
    with pytest.raises(KeyError):
        corpus.input_shape("nope-qdq-pc-u8")


def test_make_inputs_deterministic():
    for name in ("lenet-qdq-pc-u8", "mlp-qop-pt-s8", "pitfall-bn"):
        a = corpus.make_inputs(name, 5)
        b = corpus.make_inputs(name, 5)
        c = corpus.make_inputs(name, 5, seed=1)
        assert a.dtype == np.float32
        assert a.shape == (5, *corpus.input_shape(name)[1:])
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
        assert a.min() >= -1.0 and a.max() <= 1.0
    x = corpus.make_inputs("resnet-qdq-pc-u8", 32)
    assert x.min() == -1.0 and x.max() == 1.0  # full range -> nonzero u8 zero point


# --------------------------------------------------------------------------
# every model
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", corpus.model_names())
def test_model_valid_and_runs(name, corpus_dir):
    path = corpus.get_model(name, corpus_dir)
    assert path == pathlib.Path(corpus_dir) / f"{name}.onnx"
    assert path.stat().st_size < 200 * 1024
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)  # skips com.microsoft ops
    assert model.ir_version <= 8
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [13]
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["output"]

    sess = _session(path)
    xs = corpus.make_inputs(name, 4)
    y = _run(sess, xs)
    assert y.dtype == np.float32
    assert np.isfinite(y).all()
    flat = y.reshape(len(y), -1)
    assert not all(np.array_equal(flat[0], r) for r in flat[1:]), "output ignores input"
    assert np.ptp(flat, axis=0).max() > 0


@pytest.mark.parametrize("arch", corpus.ARCHS)
def test_op_types(arch, corpus_dir):
    for v in corpus.VARIANTS:
        m = onnx.load(str(corpus.get_model(f"{arch}-{v['tag']}", corpus_dir)))
        assert _ops(m) == EXPECTED_OPS[(arch, v["format"])], v["tag"]
        if v["format"] == "qdq":
            assert all(o.domain in ("", "ai.onnx") for o in m.opset_import)


@pytest.mark.parametrize("name", corpus.PITFALLS)
def test_pitfall_contents(name, corpus_dir):
    m = onnx.load(str(corpus.get_model(name, corpus_dir)))
    ops = _ops(m)
    assert PITFALL_OPS[name] <= ops
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert corpus.input_shape(name) == tuple(
        d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim)


# --------------------------------------------------------------------------
# quantization properties the downstream tests rely on
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", [n for n in corpus.model_names()
                                  if corpus.variant_of(n) is not None])
def test_quant_params(name, corpus_dir):
    m = onnx.load(str(corpus.get_model(name, corpus_dir)))
    v = corpus.variant_of(name)
    inits = _inits(m)
    # input quantization: nonzero zero point for u8 (input range is [-1, 1])
    q_in = next(n for n in m.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "input")
    zp = inits[q_in.input[2]]
    assert zp.dtype == (np.uint8 if v["activation"] == "u8" else np.int8)
    if v["activation"] == "u8":
        assert int(zp) != 0
    # 7-bit weights: no int16 saturation in ORT's u8s8 kernels
    for n in m.graph.node:
        if n.op_type in ("QLinearConv", "QLinearMatMul", "QGemm") or (
                n.op_type == "DequantizeLinear" and n.input[0] in inits
                and inits[n.input[0]].ndim >= 2):
            w = inits[n.input[3] if n.op_type != "DequantizeLinear" else n.input[0]]
            if w.dtype == np.int8:
                assert -64 <= w.min() and w.max() <= 64, n.name
            elif w.dtype == np.uint8:
                assert w.max() <= 127, n.name


def test_u8_weights_have_per_channel_zero_points(corpus_dir):
    m = onnx.load(str(corpus.get_model("lenet-qop-pc-u8-u8w", corpus_dir)))
    inits = _inits(m)
    zps = [inits[n.input[5]] for n in m.graph.node if n.op_type == "QGemm"]
    assert zps and all(z.dtype == np.uint8 and z.ndim == 1 and len(np.unique(z)) > 1
                       for z in zps)


def test_dynbatch(corpus_dir):
    name = "lenet-qdq-pt-u8-dynbatch"
    m = onnx.load(str(corpus.get_model(name, corpus_dir)))
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    sess = _session(corpus.get_model(name, corpus_dir))
    xs = corpus.make_inputs(name, 5)
    yb = sess.run(None, {"input": xs})[0]
    assert yb.shape == (5, 10)
    np.testing.assert_array_equal(yb, _run(sess, xs))
    # same network as the fixed-batch model
    ref = _session(corpus.get_model("lenet-qdq-pt-u8", corpus_dir))
    np.testing.assert_array_equal(yb, _run(ref, xs))


@pytest.mark.parametrize("arch", corpus.ARCHS)
def test_logits_informative(arch, corpus_dir):
    """Activations neither die nor explode: argmax varies, float ~ quantized."""
    xs = corpus.make_inputs(arch, 32, seed=5)
    yf = _run(_session(corpus.get_float_model(arch, corpus_dir)), xs)
    assert len(set(yf.argmax(1))) >= 4
    for v in corpus.VARIANTS:
        yq = _run(_session(corpus.get_model(f"{arch}-{v['tag']}", corpus_dir)), xs)
        assert len(set(yq.argmax(1))) >= 4, v["tag"]
        assert (yq.argmax(1) == yf.argmax(1)).mean() >= 0.6, v["tag"]


def test_s8_input_pad_zero_points(corpus_dir):
    m = onnx.load(str(corpus.get_model("pitfall-s8-input-pad", corpus_dir)))
    inits = _inits(m)
    zps = [inits[n.input[2]] for n in m.graph.node if n.op_type == "QuantizeLinear"]
    assert all(z.dtype == np.int8 for z in zps)
    assert int(zps[0]) != 0 and int(zps[1]) != 0


def test_clip7bit_clips(corpus_dir):
    m = onnx.load(str(corpus.get_model("pitfall-clip7bit", corpus_dir)))
    clip = next(n for n in m.graph.node if n.op_type == "Clip")
    m.graph.output.append(onnx.helper.make_tensor_value_info(clip.input[0],
                                                             onnx.TensorProto.UINT8, None))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    xs = corpus.make_inputs("pitfall-clip7bit", 8)
    pre = np.concatenate([sess.run([clip.input[0]], {"input": x[None]})[0] for x in xs])
    assert (pre > 127).any()


def test_addscales_differ(corpus_dir):
    m = onnx.load(str(corpus.get_model("pitfall-addscales", corpus_dir)))
    inits = _inits(m)
    prod = {o: n for n in m.graph.node for o in n.output}
    for op in ("Add", "Concat"):
        node = next(n for n in m.graph.node if n.op_type == op)
        scales = [float(inits[prod[i].input[1]]) for i in node.input]
        assert max(scales) / min(scales) > 10, (op, scales)


# --------------------------------------------------------------------------
# caching
# --------------------------------------------------------------------------

def test_cache_reused_and_deterministic(corpus_dir, tmp_path):
    for name in ("vgg-qdq-pc-s8", "pitfall-fanout"):
        p = corpus.get_model(name, corpus_dir)
        mtime = p.stat().st_mtime_ns
        assert corpus.get_model(name, corpus_dir) == p
        assert p.stat().st_mtime_ns == mtime
        fresh = corpus.get_model(name, tmp_path)
        assert fresh.read_bytes() == p.read_bytes()
    fp = corpus.get_float_model("vgg", tmp_path)
    m = onnx.load(str(fp))
    assert m.opset_import[0].version == 13 and m.ir_version == 8
    assert not [f for f in tmp_path.iterdir() if f.name.endswith(".tmp")]
