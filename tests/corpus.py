"""Test corpus generator: small float ONNX models and their quantized variants.

The float models are built with ``onnx.helper`` (opset 13, ir_version 8) and
quantized with ``onnxruntime.quantization.quantize_static`` (MinMax
calibration on 32 samples of ``make_inputs(arch, 32, seed=CALIB_SEED)``).
``quant_pre_process`` is NOT run: it folds vgg's Shape->Gather->Unsqueeze->
Concat->Reshape sub-graph into a constant Reshape and fuses mlp's MatMul+Add
into a Gemm, removing exactly the constructs those models exist to test.
Hand-written QDQ "pitfall" models reproduce constructs seen in real exporter
output.  Every model is cached atomically as ``cache_dir/<name>.onnx`` (float
models as ``cache_dir/float-<arch>.onnx``); a cached file is reused only if
its ``metadata_props["swsc_corpus_version"] == CORPUS_VERSION`` (bump it
whenever generation changes).

API
---
``ARCHS``                    ("mlp", "lenet", "vgg", "resnet", "inception")
``VARIANTS``                 8 dicts {"format": "qdq"|"qop", "per_channel": bool,
                             "activation": "u8"|"s8", "weight": "s8",
                             "reduce_range": True, "tag": "qdq-pc-u8", ...}
``model_names()``            "<arch>-<qdq|qop>-<pc|pt>-<u8|s8>" for all archs x
                             variants (40), then "lenet-qdq-pt-u8-dynbatch"
                             (symbolic batch 'N'; otherwise identical to
                             lenet-qdq-pt-u8) and "lenet-qop-pc-u8-u8w" (uint8
                             per-channel weights), then ``PITFALLS`` (8).
``input_shape(name)``        full input shape incl. batch.  Batch is always
                             reported as 1 (also for the dynbatch model; use
                             ``dynamic_batch(name)``).  Also accepts an arch.
``make_inputs(name, n, seed=0)``  float32 in [-1, 1], [n, *input_shape[1:]]
``get_model(name, cache_dir)``    path of the quantized (or pitfall) model
``get_float_model(arch, cache_dir)``  path of the float model of ``arch``
Extras: ``dynamic_batch(name)``, ``variant_of(name)`` (None for pitfalls),
``arch_of(name)`` ("pitfall" for pitfalls), ``PITFALLS``, ``CORPUS_VERSION``.

All models have one float32 input "input" and one float32 output "output".
Every model except the dynbatch one has a fixed batch of 1: feed one sample
per ``InferenceSession.run``.  Outputs: [1, 10] logits (mlp: Softmax
probabilities); pitfalls: a [1, C, 8, 8] feature map.

IMPORTANT: weights are 7-bit (``reduce_range=True``: int8 in [-64, 64], uint8
in [0, 127]).  On x86 CPUs without AVX-VNNI (this machine: AVX2 only) ORT's
MLAS u8 x s8 kernels use VPMADDUBSW, which saturates the int16 sum of two
adjacent products (2*255*127 > 32767).  With 8-bit weights the ORT result of
u8-activation models (and of ALL QDQ models: QDQ s8 models showed the same
errors, consistent with ORT's x86 QDQ s8->u8 conversion) was off by tens of
output LSBs versus exact integer / unoptimised QDQ arithmetic, and is
machine-dependent.  With 7-bit weights the int16 pair
sum cannot saturate and ORT matches the exact integer result (s8 x s8 QOp
kernels do not saturate).  The hand-written pitfall models use 7-bit weights
too.  Measured: ORT_DISABLE_ALL (float QDQ reference) vs default session
output is bit-identical for all models except vgg-qdq-* (<= 4 output LSB,
fused QLinearAveragePool/QGemm rounding), mlp-qdq-* (1 LSB, Softmax) and
pitfall-float-bias (1 LSB at one element).

Op types emitted by ORT 1.32 quantize_static (identical for pt/pc and u8/s8)
--------------------------------------------------------------------------
QDQ (all ops below except Q/DQ stay float ops between DQ and Q):

=========== ===================================================================
mlp         QuantizeLinear, DequantizeLinear, Gemm, MatMul, Add, Softmax
lenet       QuantizeLinear, DequantizeLinear, Conv, MaxPool, Flatten, Gemm
vgg         QuantizeLinear, DequantizeLinear, Conv, AveragePool, Shape, Gather,
            Unsqueeze, Concat, Reshape, Gemm
resnet      QuantizeLinear, DequantizeLinear, Conv, Add, GlobalAveragePool,
            Flatten, Gemm
inception   QuantizeLinear, DequantizeLinear, Conv, MaxPool, Concat,
            ReduceMean, Flatten, Gemm
=========== ===================================================================

QOperator ("qop"; [ms] = domain com.microsoft, opset_import com.microsoft 1):

=========== ===================================================================
mlp         QuantizeLinear, QGemm[ms], QLinearMatMul, QLinearAdd[ms],
            QLinearSoftmax[ms] (attr opset=13), DequantizeLinear
lenet       QuantizeLinear, QLinearConv, MaxPool, Flatten, QGemm[ms],
            DequantizeLinear  (MaxPool/Flatten run on the 8-bit tensors)
vgg         QuantizeLinear, QLinearConv, QLinearAveragePool[ms], Shape, Gather,
            Unsqueeze, Concat, Reshape, QGemm[ms], DequantizeLinear
            (Shape/Reshape act on the 8-bit tensor)
resnet      QuantizeLinear, QLinearConv, QLinearAdd[ms],
            QLinearGlobalAveragePool[ms] (channels_last=0), Flatten, QGemm[ms],
            DequantizeLinear
inception   QuantizeLinear, QLinearConv, MaxPool, QLinearConcat[ms],
            DequantizeLinear, ReduceMean (float), QuantizeLinear, Flatten,
            QGemm[ms], DequantizeLinear
=========== ===================================================================

Notable ORT behaviour (see tests/test_corpus.py::test_op_types, which pins
these sets):
* Relu never appears: it is folded into the preceding op's output Q range
  (zero point = qmin) in both formats.
* Gemm stays Gemm (QDQ) / becomes QGemm (QOp); never MatMul+Add.  The
  MatMul+Add(bias) of mlp stays MatMul + Add: the Add's constant bias is
  quantized like an *activation* (u8/s8 DQ initializer with its own
  scale/zero point, not int32), QOp: QLinearAdd with a u8/s8 constant input.
* Conv/Gemm biases: int32 DQ, zero point 0, scale = x_scale*w_scale.  For
  per-tensor the bias scale is a 1-D tensor of length 1 while the zero point
  is a scalar; per-channel: 1-D [C] with axis=0.
* Per-channel weight DQ: axis=0 for Conv and for Gemm B ([N, K], transB=1);
  axis=1 for MatMul B ([K, N]).
* AveragePool, MaxPool, Reshape, Flatten (QDQ) are wrapped in DQ/Q with the
  SAME scale/zero point on both sides.  GlobalAveragePool (QDQ) and
  ReduceMean (both formats) are not quantized: DQ -> op (-> Flatten) -> Q with
  a new scale.  In QDQ inception, Flatten after ReduceMean stays float.
* QDQ Concat: inputs keep their own scales, output scale = max of them.
* Softmax output scale is fixed: QDQ 1/255, QOp 1/256 (zp 0 for u8, -128
  for s8), independent of calibration.
* Input zero point (calibrated range exactly [-1, 1]): u8 128, s8 0 (the
  s8-with-nonzero-zp + padding case is pitfall-s8-input-pad).
* lenet-qop-pc-u8-u8w: QLinearConv ignores weight_type and per-channel
  quantizes Conv weights as int8 (zp 0) anyway; only the QGemm weights are
  uint8 with distinct per-channel zero points (44..77, values 0..127).
* lenet-qdq-pt-u8-dynbatch: input ['N', 1, 16, 16], output ['N', 10]; same
  weights/scales as lenet-qdq-pt-u8; runs with any batch.
* At session creation ORT fuses DQ->op->Q into QLinearConv/QGemm/... for QDQ
  models; in resnet-qdq-pc-s8 some Convs and an Add stay unfused (float).
  ORT also removes the no-op Cast of pitfall-qcastdq and folds the float bias
  of pitfall-float-bias into a QLinearConv.

Pitfall models (hand-written QDQ, opset 13, input [1, 2, 8, 8], u8
activations unless noted): see the ``_pitfall_*`` functions for which
real-export pitfall each reproduces.
"""

from __future__ import annotations

import logging
import os
import pathlib
import tempfile
import uuid
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CORPUS_VERSION = "1"
OPSET = 13
IR_VERSION = 8
N_CALIB = 32
CALIB_SEED = 12345

ARCHS: tuple[str, ...] = ("mlp", "lenet", "vgg", "resnet", "inception")

VARIANTS: list[dict] = [
    {
        "format": fmt,
        "per_channel": pc,
        "activation": act,
        "weight": "s8",
        "reduce_range": True,
        "tag": f"{fmt}-{'pc' if pc else 'pt'}-{act}",
    }
    for fmt in ("qdq", "qop")
    for pc in (False, True)
    for act in ("u8", "s8")
]

_EXTRA = {
    "lenet-qdq-pt-u8-dynbatch": (
        "lenet",
        {"format": "qdq", "per_channel": False, "activation": "u8", "weight": "s8",
         "reduce_range": True, "tag": "qdq-pt-u8", "dynbatch": True},
    ),
    "lenet-qop-pc-u8-u8w": (
        "lenet",
        {"format": "qop", "per_channel": True, "activation": "u8", "weight": "u8",
         "reduce_range": True, "tag": "qop-pc-u8"},
    ),
}

PITFALLS: tuple[str, ...] = (
    "pitfall-constants",
    "pitfall-qcastdq",
    "pitfall-fanout",
    "pitfall-addscales",
    "pitfall-clip7bit",
    "pitfall-bn",
    "pitfall-float-bias",
    "pitfall-s8-input-pad",
)

_ARCH_INPUT = {
    "mlp": (1, 64),
    "lenet": (1, 1, 16, 16),
    "vgg": (1, 3, 16, 16),
    "resnet": (1, 3, 16, 16),
    "inception": (1, 3, 12, 12),
}
_PITFALL_INPUT = (1, 2, 8, 8)


# --------------------------------------------------------------------------
# names / shapes / inputs
# --------------------------------------------------------------------------

def model_names() -> list[str]:
    names = [f"{a}-{v['tag']}" for a in ARCHS for v in VARIANTS]
    names += list(_EXTRA)
    names += list(PITFALLS)
    return names


def _parse(name: str) -> tuple[str, dict | None]:
    """(arch, variant) of a quantized model name; variant None for pitfalls."""
    if name in PITFALLS:
        return "pitfall", None
    if name in _EXTRA:
        return _EXTRA[name]
    for a in ARCHS:
        for v in VARIANTS:
            if name == f"{a}-{v['tag']}":
                return a, v
    raise KeyError(f"unknown corpus model {name!r}")


def arch_of(name: str) -> str:
    """Architecture of a model name ("pitfall" for pitfall models)."""
    return _parse(name)[0]


def variant_of(name: str) -> dict | None:
    """Variant dict of a quantized model (None for pitfall models)."""
    v = _parse(name)[1]
    return None if v is None else dict(v)


def dynamic_batch(name: str) -> bool:
    """True if the model's batch dim is symbolic ('N'); else it is fixed 1."""
    v = _parse(name)[1]
    return bool(v and v.get("dynbatch"))


def input_shape(name: str) -> tuple:
    if name in ARCHS:
        return _ARCH_INPUT[name]
    arch, _ = _parse(name)
    if arch == "pitfall":
        return _PITFALL_INPUT
    return _ARCH_INPUT[arch]


def make_inputs(name: str, n: int, seed: int = 0) -> np.ndarray:
    """Deterministic float32 inputs in [-1, 1], shape [n, *input_shape[1:]].

    Each sample is ``clip(offset + amp * U(-1, 1), -1, 1)`` with a random
    per-(sample, channel) offset in [-0.4, 0.4] and per-sample amp in
    [0.6, 1]: iid pixel noise alone would make globally pooled features
    nearly identical across samples.  The values reach both -1 and +1, so a
    uint8 input gets zero point 128 (int8: 0).
    """
    shape = input_shape(name)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    full = (n, *shape[1:])
    ch = (n, shape[1]) + (1,) * (len(shape) - 2) if len(shape) > 2 else (n, 1)
    offset = rng.uniform(-0.4, 0.4, size=ch)
    amp = rng.uniform(0.6, 1.0, size=(n,) + (1,) * (len(shape) - 1))
    x = offset + amp * rng.uniform(-1.0, 1.0, size=full)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def _calib_inputs(key: str) -> np.ndarray:
    return make_inputs(key, N_CALIB, seed=CALIB_SEED)


# --------------------------------------------------------------------------
# graph-building helpers
# --------------------------------------------------------------------------

class _Net:
    """Tiny graph builder (float ops, named nodes, initializers)."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def uname(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"

    def const(self, arr: np.ndarray, prefix: str = "c") -> str:
        name = self.uname(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        """Append a named node; returns its (single) output tensor name."""
        nm = self.uname(op_type.lower())
        out = out or nm
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=nm, **attrs))
        return out

    # random parameters --------------------------------------------------
    def he(self, shape, fan_in, gain=1.0) -> np.ndarray:
        std = gain * np.sqrt(2.0 / fan_in)
        return (self.rng.standard_normal(shape) * std).astype(np.float32)

    def small_bias(self, n, std=0.05) -> np.ndarray:
        return (self.rng.standard_normal(n) * std).astype(np.float32)

    # float layers --------------------------------------------------------
    def conv(self, x, cin, cout, k, pad=0, stride=1, gain=1.0, out=None):
        w = self.he((cout, cin, k, k), cin * k * k, gain)
        b = self.small_bias(cout)
        return self.op("Conv", [x, self.const(w, "w"), self.const(b, "b")], out=out,
                       kernel_shape=[k, k], pads=[pad] * 4, strides=[stride, stride])

    def gemm(self, x, fin, fout, out=None, gain=1.0):
        w = self.he((fout, fin), fin, gain)
        b = self.small_bias(fout)
        return self.op("Gemm", [x, self.const(w, "w"), self.const(b, "b")], out=out, transB=1)

    def relu(self, x, out=None):
        return self.op("Relu", [x], out=out)


def _make_model(net: _Net, in_shape, out_shape, extra_outputs=(), doc="") -> onnx.ModelProto:
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, list(in_shape))
    outs = [helper.make_tensor_value_info("output", TensorProto.FLOAT,
                                          None if out_shape is None else list(out_shape))]
    outs += [helper.make_tensor_value_info(e, TensorProto.FLOAT, None) for e in extra_outputs]
    graph = helper.make_graph(net.nodes, "swsc_corpus", [inp], outs, initializer=net.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="swsc-corpus", producer_version=CORPUS_VERSION)
    model.ir_version = IR_VERSION
    model.doc_string = doc
    return model


def _session(model: onnx.ModelProto | str | os.PathLike):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def _run_all(model: onnx.ModelProto, xs: np.ndarray) -> dict[str, np.ndarray]:
    """Run a batch-1 model sample by sample; stack every output along axis 0."""
    sess = _session(model)
    names = [o.name for o in sess.get_outputs()]
    res = {n: [] for n in names}
    for x in xs:
        for n, v in zip(names, sess.run(names, {"input": x[None]})):
            res[n].append(v)
    return {n: np.concatenate(v, axis=0) for n, v in res.items()}


# --------------------------------------------------------------------------
# float architectures
# --------------------------------------------------------------------------
# Each builder returns (net, head_gemm_node, feature_tensor).  The head Gemm is
# re-scaled from data afterwards (_calibrate_head) so that logits are centred
# and have std ~2 over random inputs (varied argmax).

def _build_mlp(net: _Net):
    x = net.relu(net.gemm("input", 64, 32))
    w = net.he((32, 16), 32)
    b = net.small_bias(16)
    x = net.op("MatMul", [x, net.const(w, "w")])
    x = net.op("Add", [x, net.const(b, "b")])
    feat = net.relu(x)
    logits = net.gemm(feat, 16, 10, out="logits")
    net.op("Softmax", [logits], out="output", axis=-1)
    return logits, feat


def _build_lenet(net: _Net):
    x = net.relu(net.conv("input", 1, 6, 5, pad=2))
    x = net.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = net.relu(net.conv(x, 6, 12, 3))
    x = net.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = net.op("Flatten", [x], axis=1)
    feat = net.relu(net.gemm(x, 12 * 3 * 3, 32))
    out = net.gemm(feat, 32, 10, out="output")
    return out, feat


def _build_vgg(net: _Net):
    x = net.relu(net.conv("input", 3, 8, 3, pad=1))
    x = net.relu(net.conv(x, 8, 8, 3, pad=1))
    x = net.op("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = net.relu(net.conv(x, 8, 16, 3, pad=1))
    x = net.op("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
    # Reshape to [N, -1] through a shape sub-graph (forces constant folding).
    shp = net.op("Shape", [x])
    n = net.op("Gather", [shp, net.const(np.array(0, dtype=np.int64), "idx")], axis=0)
    n1 = net.op("Unsqueeze", [n, net.const(np.array([0], dtype=np.int64), "axes")])
    tgt = net.op("Concat", [n1, net.const(np.array([-1], dtype=np.int64), "minus1")], axis=0)
    feat = net.op("Reshape", [x, tgt])
    out = net.gemm(feat, 16 * 4 * 4, 10, out="output")
    return out, feat


def _build_resnet(net: _Net):
    stem = net.relu(net.conv("input", 3, 8, 3, pad=1))
    # block 1 (identity shortcut)
    y = net.relu(net.conv(stem, 8, 8, 3, pad=1))
    y = net.conv(y, 8, 8, 3, pad=1, gain=0.5)
    b1 = net.relu(net.op("Add", [y, stem]))
    # block 2 (stride 2, 8 -> 16, 1x1 stride-2 conv shortcut)
    y = net.relu(net.conv(b1, 8, 16, 3, pad=1, stride=2))
    y = net.conv(y, 16, 16, 3, pad=1, gain=0.5)
    sc = net.conv(b1, 8, 16, 1, stride=2, gain=0.7)
    b2 = net.relu(net.op("Add", [y, sc]))
    x = net.op("GlobalAveragePool", [b2])
    feat = net.op("Flatten", [x], axis=1)
    out = net.gemm(feat, 16, 10, out="output")
    return out, feat


def _build_inception(net: _Net):
    x = net.relu(net.conv("input", 3, 8, 3, pad=1))
    a = net.relu(net.conv(x, 8, 4, 1))
    b = net.relu(net.conv(x, 8, 4, 1))
    b = net.relu(net.conv(b, 4, 6, 3, pad=1))
    c = net.op("MaxPool", [x], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
    c = net.relu(net.conv(c, 8, 4, 1))
    y = net.op("Concat", [a, b, c], axis=1)
    y = net.op("ReduceMean", [y], axes=[2, 3], keepdims=1)
    feat = net.op("Flatten", [y], axis=1)
    out = net.gemm(feat, 14, 10, out="output")
    return out, feat


_BUILDERS = {
    "mlp": _build_mlp,
    "lenet": _build_lenet,
    "vgg": _build_vgg,
    "resnet": _build_resnet,
    "inception": _build_inception,
}


def _calibrate_head(net: _Net, arch: str, logits: str, feat: str, target_std=2.0):
    """Data-dependent init of the last Gemm: centred logits with std ~target_std."""
    model = _make_model(net, _ARCH_INPUT[arch], None, extra_outputs=[feat])
    xs = make_inputs(arch, 64, seed=777)
    f = _run_all(model, xs)[feat].reshape(64, -1)
    gemm = next(n for n in net.nodes if n.output[0] == logits)
    inits = {t.name: t for t in net.inits}
    w = numpy_helper.to_array(inits[gemm.input[1]]).astype(np.float64)
    b = numpy_helper.to_array(inits[gemm.input[2]]).astype(np.float64)
    lg = f @ w.T
    s = target_std / max(float((lg - lg.mean(axis=0)).std()), 1e-6)
    w = w * s
    b = -(f @ w.T).mean(axis=0) + 0.1 * b
    for nm, arr in ((gemm.input[1], w), (gemm.input[2], b)):
        inits[nm].CopyFrom(numpy_helper.from_array(arr.astype(np.float32), nm))


def _float_model(arch: str, dynbatch: bool = False) -> onnx.ModelProto:
    net = _Net(zlib.crc32(arch.encode()))
    logits, feat = _BUILDERS[arch](net)
    in_shape = _ARCH_INPUT[arch]
    _calibrate_head(net, arch, logits, feat)
    out_shape = [1, 10]
    if dynbatch:
        in_shape = ("N", *in_shape[1:])
        out_shape = ["N", 10]
    return _make_model(net, in_shape, out_shape, doc=f"swsc corpus float {arch}")


# --------------------------------------------------------------------------
# caching
# --------------------------------------------------------------------------

def _atomic_save(model: onnx.ModelProto, path: pathlib.Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        onnx.save(model, str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _cached_ok(path: pathlib.Path, version: str = CORPUS_VERSION) -> bool:
    if not path.exists():
        return False
    try:
        m = onnx.load(str(path))
    except Exception:
        return False
    meta = {p.key: p.value for p in m.metadata_props}
    return meta.get("swsc_corpus_version") == version


def _stamp(model: onnx.ModelProto, name: str, version: str = CORPUS_VERSION) -> None:
    for k, v in (("swsc_corpus_version", version), ("swsc_corpus_name", name)):
        p = next((p for p in model.metadata_props if p.key == k), None)
        if p is None:
            p = model.metadata_props.add()
            p.key = k
        p.value = v


def get_float_model(arch: str, cache_dir) -> pathlib.Path:
    if arch not in ARCHS:
        raise KeyError(f"unknown arch {arch!r}")
    return _get_float(arch, pathlib.Path(cache_dir), dynbatch=False)


def _get_float(arch: str, cache_dir: pathlib.Path, dynbatch: bool) -> pathlib.Path:
    path = cache_dir / f"float-{arch}{'-dynbatch' if dynbatch else ''}.onnx"
    if not _cached_ok(path):
        m = _float_model(arch, dynbatch)
        _stamp(m, path.stem)
        _atomic_save(m, path)
    return path


class _Reader:
    def __init__(self, xs: np.ndarray):
        self._it = iter([{"input": x[None]} for x in xs])

    def get_next(self):
        return next(self._it, None)


def _quantize(arch: str, variant: dict, name: str, out_path: pathlib.Path, cache_dir) -> None:
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    fpath = _get_float(arch, cache_dir, bool(variant.get("dynbatch")))
    qt = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.ERROR)  # quantize_static logs pre-processing advice
    try:
        with tempfile.TemporaryDirectory(prefix="swsc-q-") as td:
            # ORT writes "<input stem>-inferred.onnx" next to its input and
            # deletes it again: work on a private copy so that concurrent
            # builders sharing cache_dir do not race on that file.
            tmp_in = pathlib.Path(td) / "float.onnx"
            tmp_in.write_bytes(fpath.read_bytes())
            tmp_out = pathlib.Path(td) / "q.onnx"
            quantize_static(
                str(tmp_in), str(tmp_out), _Reader(make_inputs(arch, N_CALIB, seed=CALIB_SEED)),
                quant_format=(QuantFormat.QDQ if variant["format"] == "qdq"
                              else QuantFormat.QOperator),
                per_channel=variant["per_channel"],
                activation_type=qt[variant["activation"]],
                weight_type=qt[variant["weight"]],
                reduce_range=variant["reduce_range"],
                calibrate_method=CalibrationMethod.MinMax,
            )
            m = onnx.load(str(tmp_out))
    finally:
        root.setLevel(old_level)
    _stamp(m, name)
    _atomic_save(m, out_path)


def get_model(name: str, cache_dir) -> pathlib.Path:
    cache_dir = pathlib.Path(cache_dir)
    arch, variant = _parse(name)
    path = cache_dir / f"{name}.onnx"
    if _cached_ok(path):
        return path
    if arch == "pitfall":
        m = _pitfall_model(name)
        _stamp(m, name)
        _atomic_save(m, path)
    else:
        _quantize(arch, variant, name, path, cache_dir)
    return path


# --------------------------------------------------------------------------
# hand-written QDQ pitfall models
# --------------------------------------------------------------------------

_U8, _S8 = "u8", "s8"


class _QNet(_Net):
    """Builder that emits either a float probe graph (ranges=None) or QDQ.

    Both passes draw the same random numbers (draw before branching on mode),
    so the float pass measures the activation ranges of the quantized graph.
    """

    def __init__(self, seed: int, ranges: dict | None):
        super().__init__(seed)
        self.quant = ranges is not None
        self.ranges = ranges or {}
        self.probes: dict[str, str] = {}
        self.fixed: dict[str, tuple] = {}
        self.qp: dict[str, tuple[float, int, str]] = {}

    # activation quantization ---------------------------------------------
    def qparams(self, tag: str, dtype: str, qmax_override: int | None = None):
        if tag not in self.qp:
            lo, hi = self.fixed.get(tag) or self.ranges[tag]
            lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
            qmin, qmax = (0, 255) if dtype == _U8 else (-128, 127)
            if qmax_override is not None:
                qmax = qmax_override
            scale = max((hi - lo) / (qmax - qmin), 1e-8)
            zp = int(np.clip(np.round(qmin - lo / scale), qmin, qmax))
            self.qp[tag] = (np.float32(scale), zp, dtype)
        return self.qp[tag]

    def _qinits(self, tag):
        scale, zp, dtype = self.qp[tag]
        npdt = np.uint8 if dtype == _U8 else np.int8
        return (self.const(np.array(scale, dtype=np.float32), f"{tag}_scale"),
                self.const(np.array(zp, dtype=npdt), f"{tag}_zp"))

    def q(self, x: str, tag: str, dtype: str = _U8, fixed=None, qmax_override=None) -> str:
        if fixed is not None:
            self.fixed[tag] = fixed
        if not self.quant:
            self.probes[tag] = x
            return x
        self.qparams(tag, dtype, qmax_override)
        s, z = self._qinits(tag)
        return self.op("QuantizeLinear", [x, s, z])

    def dq(self, xq: str, tag: str) -> str:
        if not self.quant:
            return xq
        s, z = self._qinits(tag)
        return self.op("DequantizeLinear", [xq, s, z])

    def qdq(self, x, tag, dtype=_U8, **kw) -> str:
        return self.dq(self.q(x, tag, dtype, **kw), tag)

    # weights / biases ------------------------------------------------------
    @staticmethod
    def wquant(w: np.ndarray):
        """Symmetric per-output-channel 7-bit int8 in [-64, 64] (like ORT's
        reduce_range; see module doc on u8s8 saturation): (int8, f32 scales)."""
        amax = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
        scale = (np.maximum(amax, 1e-8) / 64.0).astype(np.float32)
        wq = np.clip(np.round(w / scale.reshape(-1, *[1] * (w.ndim - 1))), -64, 64)
        return wq.astype(np.int8), scale

    def wdq(self, w: np.ndarray, via_constant: bool = False):
        """Weight as DQ(int8 per-channel, axis 0) or a float initializer.

        Returns (tensor name, per-channel scales or None)."""
        if not self.quant:
            return self.const(w, "w"), None
        wq, scale = self.wquant(w)
        if via_constant:
            src = self.op("Constant", [], value=numpy_helper.from_array(wq, self.uname("wconst")))
        else:
            src = self.const(wq, "wq")
        zp = self.const(np.zeros(w.shape[0], dtype=np.int8), "wzp")
        return self.op("DequantizeLinear", [src, self.const(scale, "wscale"), zp], axis=0), scale

    def bdq(self, b: np.ndarray, x_tag: str, w_scale, via_identity=False, zero_subgraph=False):
        """Bias as DQ(int32, scale = x_scale * w_scale, axis 0), or float."""
        if not self.quant:
            return self.const(b, "b")
        bscale = (self.qp[x_tag][0] * w_scale).astype(np.float32)
        zp = self.const(np.zeros(b.shape[0], dtype=np.int32), "bzp")
        if zero_subgraph:
            shp = self.const(np.array([b.shape[0]], dtype=np.int64), "bshape")
            zeros = self.op("ConstantOfShape", [shp],
                            value=numpy_helper.from_array(np.zeros(1, np.float32), "v"))
            src = self.op("Cast", [zeros], to=TensorProto.INT32)
        else:
            bq = np.round(b / bscale).astype(np.int32)
            src = self.const(bq, "bq")
            if via_identity:
                src = self.op("Identity", [src])
        return self.op("DequantizeLinear", [src, self.const(bscale, "bscale"), zp], axis=0)

    def qconv(self, x_dq: str, x_tag: str, cin: int, cout: int, k: int, pad=0, stride=1,
              gain=1.0, bias_shift=0.0, w_via_constant=False, b_via_identity=False,
              zero_bias=False) -> str:
        w = self.he((cout, cin, k, k), cin * k * k, gain)
        b = self.small_bias(cout) + np.float32(bias_shift)
        if zero_bias:
            b = np.zeros(cout, np.float32)
        wn, ws = self.wdq(w, via_constant=w_via_constant)
        bn = self.bdq(b, x_tag, ws, via_identity=b_via_identity, zero_subgraph=zero_bias)
        return self.op("Conv", [x_dq, wn, bn], kernel_shape=[k, k], pads=[pad] * 4,
                       strides=[stride, stride])

    def finish(self, x: str) -> None:
        """Rename tensor x to the graph output name "output"."""
        for n in self.nodes:
            for i, o in enumerate(n.output):
                if o == x:
                    n.output[i] = "output"
            for i, o in enumerate(n.input):
                if o == x:
                    n.input[i] = "output"
        self.probes = {t: ("output" if v == x else v) for t, v in self.probes.items()}


def _pitfall_constants(net: _QNet):
    # Pitfall: exporters (torch.onnx with do_constant_folding=False, TF2ONNX)
    # emit weights as `Constant` nodes instead of initializers, pass biases
    # through `Identity(initializer)` (shared-weight dedup), and materialise a
    # zero bias with `ConstantOfShape -> Cast(int32)`.  The front-end must
    # constant-fold all of these.  Biases are int32 DQ with scale x_s*w_s.
    x = net.qdq("input", "in", fixed=(-1.0, 1.0))
    y = net.qconv(x, "in", 2, 4, 3, pad=1, w_via_constant=True, b_via_identity=True)
    y = net.qdq(net.relu(y), "a1")
    y = net.qconv(y, "a1", 4, 4, 3, pad=1, w_via_constant=True, zero_bias=True)
    return net.qdq(y, "out")


def _pitfall_qcastdq(net: _QNet):
    # Pitfall: some exporters (e.g. TFLite->ONNX converters, ONNX-level
    # type-fixup passes) leave `QuantizeLinear -> Cast(to=uint8) ->
    # DequantizeLinear` where the Cast is a no-op on an already-uint8 tensor.
    # The front-end must see through the Cast to pair Q and DQ.
    x = net.qdq("input", "in", fixed=(-1.0, 1.0))
    y = net.relu(net.qconv(x, "in", 2, 4, 3, pad=1))
    yq = net.q(y, "a1")
    if net.quant:
        yq = net.op("Cast", [yq], to=TensorProto.UINT8)
    y = net.dq(yq, "a1")
    y = net.qconv(y, "a1", 4, 3, 3, pad=1)
    return net.qdq(y, "out")


def _pitfall_fanout(net: _QNet):
    # Pitfall: ORT's default (DedicatedQDQPair=False) and hand-written QAT
    # exports share one DequantizeLinear between several consumers, and one
    # QuantizeLinear output between several DequantizeLinear nodes.  A
    # front-end that pattern-matches "DQ -> op" 1:1 (or deletes a DQ after
    # fusing it into its first consumer) breaks on these.
    x = net.qdq("input", "in", fixed=(-1.0, 1.0))          # x feeds two convs
    a = net.relu(net.qconv(x, "in", 2, 4, 3, pad=1))
    b = net.relu(net.qconv(x, "in", 2, 4, 1))
    aq = net.q(a, "a")
    a1 = net.dq(aq, "a")                                   # first DQ of aq
    a2 = net.dq(aq, "a")                                   # second DQ of aq
    c = net.relu(net.qconv(a1, "a", 4, 4, 3, pad=1))
    c = net.qdq(c, "c")
    s = net.qdq(net.op("Add", [c, a2]), "s")
    bb = net.qdq(b, "b")
    return net.qdq(net.op("Add", [s, bb]), "out")


def _pitfall_addscales(net: _QNet):
    # Pitfall: residual Add / Concat whose inputs were quantized with very
    # different scales (here ~50x apart): the integer implementation must
    # rescale each input separately (QLinearAdd/QLinearConcat semantics);
    # assuming equal scales (as a naive per-tensor requant does) is wrong.
    x = net.qdq("input", "in", fixed=(-1.0, 1.0))
    big = net.qdq(net.qconv(x, "in", 2, 4, 3, pad=1, gain=4.0), "big")
    small = net.qdq(net.qconv(x, "in", 2, 4, 3, pad=1, gain=0.08), "small")
    s = net.qdq(net.relu(net.op("Add", [big, small])), "sum")
    y = net.op("Concat", [s, small, x], axis=1)   # three different scales in
    return net.qdq(y, "out")


def _pitfall_clip7bit(net: _QNet):
    # Pitfall: PyTorch QAT with quant_min=0, quant_max=127 (reduce_range /
    # 7-bit observers) exports `QuantizeLinear(uint8)` followed by a
    # `Clip(0, 127)` on the *uint8* tensor (min/max as uint8 inputs).  The
    # scale here maps 127 to half the calibrated max, so the top of the range is
    # actually clipped (~1-3% of values): ignoring the Clip changes the result.
    x = net.qdq("input", "in", fixed=(-1.0, 1.0))
    y = net.relu(net.qconv(x, "in", 2, 4, 3, pad=1))
    if net.quant:
        lo, hi = net.ranges["a1"]
        net.fixed["a1"] = (0.0, 0.5 * float(hi) * 255.0 / 127.0)
    yq = net.q(y, "a1")
    if net.quant:
        yq = net.op("Clip", [yq, net.const(np.array(0, np.uint8), "cmin"),
                             net.const(np.array(127, np.uint8), "cmax")])
    y = net.dq(yq, "a1")
    y = net.qconv(y, "a1", 4, 4, 3, pad=1)
    return net.qdq(y, "out")


def _pitfall_bn(net: _QNet):
    # Pitfall: PyTorch QAT ConvBn modules (before `fuse_modules`/`convert`)
    # export Conv(x, DQ(w_int8 * bn_scale)) -> Div(bn_scale per channel) ->
    # Add(conv bias) -> BatchNormalization -> Relu -> Q: an *unfused* Conv+BN
    # that the front-end must fold (Div, Add, BN) into the conv scale/bias.
    x = net.qdq("input", "in", fixed=(-1.0, 1.0))
    c = 4
    w = net.he((c, 2, 3, 3), 18)
    gamma = net.rng.uniform(0.5, 1.5, c).astype(np.float32)
    beta = net.small_bias(c, 0.1)
    mean = net.small_bias(c, 0.1)
    var = net.rng.uniform(0.5, 2.0, c).astype(np.float32)
    bconv = net.small_bias(c, 0.1)
    sf = (gamma / np.sqrt(var + 1e-5)).astype(np.float32)   # folded-weight factor
    wn, _ = net.wdq(w * sf[:, None, None, None])
    y = net.op("Conv", [x, wn], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    y = net.op("Div", [y, net.const(sf.reshape(c, 1, 1), "bnsf")])
    y = net.op("Add", [y, net.const(bconv.reshape(c, 1, 1), "cbias")])
    y = net.op("BatchNormalization", [y, net.const(gamma, "gamma"), net.const(beta, "beta"),
                                      net.const(mean, "mean"), net.const(var, "var")],
               epsilon=1e-5)
    y = net.qdq(net.relu(y), "a1")
    y = net.qconv(y, "a1", 4, 3, 3, pad=1)
    return net.qdq(y, "out")


def _pitfall_float_bias(net: _QNet):
    # Pitfall: exporters that quantize only weights/activations (e.g. some
    # TensorRT-oriented QAT toolkits, pytorch-quantization) leave the Conv bias
    # as a plain float32 initializer; the front-end must quantize it itself
    # (to x_scale*w_scale) rather than expecting an int32 DQ.
    x = net.qdq("input", "in", fixed=(-1.0, 1.0))
    w = net.he((4, 2, 3, 3), 18)
    b = net.small_bias(4, 0.2)
    wn, _ = net.wdq(w)
    y = net.op("Conv", [x, wn, net.const(b, "fbias")], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    y = net.qdq(net.relu(y), "a1")
    y = net.qconv(y, "a1", 4, 3, 3, pad=1)
    return net.qdq(y, "out")


def _pitfall_s8_input_pad(net: _QNet):
    # Pitfall: int8 activations with a NONZERO zero point feeding padded convs.
    # Padding must insert the zero point (real 0.0), not the integer 0.  Both
    # the input (asymmetric range [-1, 1.5] -> zp -26) and a hidden
    # activation (conv without Relu plus a bias shift) are s8 with zp != 0.
    x = net.qdq("input", "in", _S8, fixed=(-1.0, 1.5))
    y = net.qconv(x, "in", 2, 4, 3, pad=1, bias_shift=0.6)
    y = net.qdq(y, "a1", _S8)
    y = net.qconv(y, "a1", 4, 3, 3, pad=1)
    return net.qdq(y, "out", _S8)


_PITFALL_BUILDERS = {
    "pitfall-constants": _pitfall_constants,
    "pitfall-qcastdq": _pitfall_qcastdq,
    "pitfall-fanout": _pitfall_fanout,
    "pitfall-addscales": _pitfall_addscales,
    "pitfall-clip7bit": _pitfall_clip7bit,
    "pitfall-bn": _pitfall_bn,
    "pitfall-float-bias": _pitfall_float_bias,
    "pitfall-s8-input-pad": _pitfall_s8_input_pad,
}


def _pitfall_model(name: str) -> onnx.ModelProto:
    build = _PITFALL_BUILDERS[name]
    seed = zlib.crc32(name.encode())
    # pass 1: float graph, measure activation ranges at every Q point
    fnet = _QNet(seed, None)
    out = build(fnet)
    fnet.finish(out)
    probes = {t: v for t, v in fnet.probes.items() if t not in fnet.fixed}
    extra = sorted({v for v in probes.values() if v not in ("output", "input")})
    fm = _make_model(fnet, _PITFALL_INPUT, None, extra_outputs=extra)
    res = _run_all(fm, _calib_inputs(name))
    ranges = {t: (float(res[v].min()), float(res[v].max())) for t, v in probes.items()}
    out_shape = [1, *res["output"].shape[1:]]
    # pass 2: QDQ graph
    qnet = _QNet(seed, ranges)
    out = build(qnet)
    qnet.finish(out)
    return _make_model(qnet, _PITFALL_INPUT, out_shape, doc=f"swsc corpus {name}")
