"""Torch-exported test corpus: quantized ONNX models made the way users make them.

Small PyTorch networks (random weights, random batch-norm statistics; agreement tests
need no training) exported with ``torch.onnx.export`` and quantized three ways:

* ``legacy``/``dynamo``: the float model exported (TorchScript exporter ``dynamo=False``,
  opset 13; or the dynamo exporter, opset 18), then onnxruntime ``quantize_static``
  (MinMax on 32 samples) in QDQ or QOperator form, per-tensor or per-channel, u8/s8
  activations, or 16-bit activations (A16W8: ``QUInt16``/``QInt16`` activations, int8
  weights, QDQ);
* ``qat-<backend>-prepared``: PyTorch eager QAT (``prepare_qat`` with the backend's
  default QAT qconfig, unfused-FakeQuantize variant as in samples/qat.py), observers run
  on the calibration data, exported in fake-quant form (QuantizeLinear/DequantizeLinear);
* ``qat-<backend>-converted``: the same after ``torch.ao.quantization.convert``, exported
  from the quantized modules.

Architectures: ``mlp`` (flattens its float input: a float head), ``lenet``, ``resnet``
(two residual blocks with ReLU after the add, global pooling), ``inception`` (branches,
max-pool branch, Concat). Variants of the LeNet add float heads before the first
quantizer (``lenet_norm``: per-channel ``(x - mean) / std``; ``lenet_nhwc``: NHWC input
permuted to NCHW, then ``(x - mean) / std``) and a batch-1 graph whose output drops the batch axis
(``lenet_squeeze``: output ``[10]``).

API (as tests/corpus.py): ``model_names()``, ``input_shape(name)``,
``make_inputs(name, n, seed)``, ``get_model(name, cache_dir)`` (cached as
``cache_dir/torch-<name>.onnx``, reused while ``swsc_corpus_version`` matches
``CORPUS_VERSION``). ``available()`` says whether torch is installed; ``dynamo_available()``
whether the dynamo exporter (onnxscript) is.
"""
from __future__ import annotations

import contextlib
import io
import logging
import pathlib
import tempfile
import warnings
import zlib

import numpy as np
import onnx

from corpus import _atomic_save, _cached_ok, _stamp

CORPUS_VERSION = "3"
N_CALIB = 32
CALIB_SEED = 4242

_INPUT = {"mlp": (1, 1, 8, 8), "lenet": (1, 1, 16, 16), "resnet": (1, 3, 16, 16),
          "inception": (1, 3, 12, 12), "lenet_norm": (1, 3, 16, 16), "lenet_nhwc": (1, 16, 16, 3),
          "lenet_squeeze": (1, 1, 16, 16), "lenet_act": (1, 1, 16, 16)}

#: onnxruntime quantize_static settings: tag -> (format, per_channel, activation, weight)
ORT_QUANT = {
    "qdq-pc-u8": ("qdq", True, "u8", "s8"),
    "qdq-pt-s8": ("qdq", False, "s8", "s8"),
    "qop-pc-u8": ("qop", True, "u8", "s8"),
    "qop-pt-s8": ("qop", False, "s8", "s8"),
    "qdq-a16w8": ("qdq", True, "u16", "s8"),
    "qdq-s16w8": ("qdq", False, "s16", "s8"),
}
QAT_BACKENDS = ("x86", "fbgemm", "qnnpack")
#: LeNets with LeakyRelu and Sigmoid (refused until the table layer, swsc/ops/lut.py); kept apart from
#: model_names(), whose count the docs state
ACTIVATIONS = ("lenet_act-legacy-qdq-pc-u8", "lenet_act-legacy-qop-pt-s8")


def _names() -> list[str]:
    names = []
    for arch in ("mlp", "lenet", "resnet", "inception"):
        names += [f"{arch}-legacy-{t}" for t in ("qdq-pc-u8", "qdq-pt-s8", "qop-pc-u8", "qop-pt-s8")]
        names += [f"{arch}-dynamo-{t}" for t in ("qdq-pc-u8", "qop-pt-s8")]
        names += [f"{arch}-qat-x86-prepared", f"{arch}-qat-x86-converted"]
    for b in QAT_BACKENDS[1:]:        # x86 for every arch above; the other backends on the ResNet
        names += [f"resnet-qat-{b}-prepared", f"resnet-qat-{b}-converted"]
    names += ["lenet-legacy-qdq-a16w8", "resnet-legacy-qdq-a16w8", "lenet-legacy-qdq-s16w8"]
    for arch in ("lenet_norm", "lenet_nhwc", "lenet_squeeze"):
        names += [f"{arch}-legacy-qdq-pc-u8", f"{arch}-legacy-qop-pt-s8", f"{arch}-qat-x86-prepared"]
    return names


def model_names() -> list[str]:
    return _names()


def parse(name: str) -> tuple[str, str, str]:
    """(arch, export, quant): export is legacy|dynamo|qat-<backend>, quant an ORT_QUANT tag
    or prepared|converted."""
    arch, export, rest = name.split("-", 2)
    if export == "qat":
        backend, quant = rest.split("-")
        return arch, f"qat-{backend}", quant
    return arch, export, rest


def input_shape(name: str) -> tuple:
    return _INPUT[parse(name)[0] if "-" in name else name]


def make_inputs(name: str, n: int, seed: int = 0) -> np.ndarray:
    """Deterministic float32 inputs in [-1, 1] with per-sample offsets (so pooled features vary)."""
    shape = input_shape(name)
    rng = np.random.default_rng([seed, zlib.crc32(name.split("-")[0].encode())])
    full = (n, *shape[1:])
    offset = rng.uniform(-0.4, 0.4, size=(n,) + (1,) * (len(shape) - 1))
    amp = rng.uniform(0.6, 1.0, size=(n,) + (1,) * (len(shape) - 1))
    return np.clip(offset + amp * rng.uniform(-1, 1, full), -1, 1).astype(np.float32)


def available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def dynamo_available() -> bool:
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return available()


# --------------------------------------------------------------------------
# the networks (QuantStub/DeQuantStub and FloatFunctional make them QAT-ready)
# --------------------------------------------------------------------------

def _modules():
    import torch
    import torch.nn as nn
    import torch.ao.nn.quantized as nnq
    import torch.ao.quantization as tq

    def cbr(cin, cout, k, pad=0, relu=True):
        layers = [nn.Conv2d(cin, cout, k, padding=pad, bias=False), nn.BatchNorm2d(cout)]
        return nn.Sequential(*layers, *([nn.ReLU()] if relu else []))

    class Base(nn.Module):
        fuse: list = []

        def __init__(self):
            super().__init__()
            self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()

    class MLP(Base):
        fuse = [["fc1", "relu1"], ["fc2", "relu2"]]

        def __init__(self):
            super().__init__()
            self.fc1, self.relu1 = nn.Linear(64, 32), nn.ReLU()
            self.fc2, self.relu2 = nn.Linear(32, 16), nn.ReLU()
            self.fc3 = nn.Linear(16, 10)

        def forward(self, x):
            x = self.quant(torch.flatten(x, 1))       # a float Flatten before the quantizer
            return self.dequant(self.fc3(self.relu2(self.fc2(self.relu1(self.fc1(x))))))

    class LeNet(Base):
        fuse = [["c1.0", "c1.1", "c1.2"], ["c2.0", "c2.1", "c2.2"], ["fc1", "relu"]]

        def __init__(self, cin=1, head="", squeeze=False, act=False):
            super().__init__()
            self.head, self.squeeze = head, squeeze
            self.c1, self.p1 = cbr(cin, 6, 5, pad=2, relu=not act), nn.MaxPool2d(2)
            if act:      # operators swsc does not support yet: LeakyRelu, Sigmoid
                self.c1.append(nn.LeakyReLU(0.1))
                self.relu = nn.Sigmoid()
            self.c2, self.p2 = cbr(6, 12, 3), nn.MaxPool2d(2)
            self.fc1, self.fc2 = nn.Linear(12 * 3 * 3, 32), nn.Linear(32, 10)
            self.relu = getattr(self, "relu", nn.ReLU())
            self.register_buffer("mean", torch.tensor([0.1, -0.2, 0.05]).reshape(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor([0.9, 1.2, 0.7]).reshape(1, 3, 1, 1))

        def forward(self, x):
            if self.head == "norm":
                x = (x - self.mean) / self.std
            elif self.head == "nhwc":          # permute, then normalize per channel of the result
                x = (x.permute(0, 3, 1, 2) - self.mean) / self.std
            x = self.p2(self.c2(self.p1(self.c1(self.quant(x)))))
            x = torch.flatten(x, 0) if self.squeeze else torch.flatten(x, 1)
            return self.dequant(self.fc2(self.relu(self.fc1(x))))

    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.a, self.b = cbr(c, c, 3, pad=1), cbr(c, c, 3, pad=1, relu=False)
            self.add, self.relu = nnq.FloatFunctional(), nn.ReLU()

        def forward(self, x):
            return self.relu(self.add.add(self.b(self.a(x)), x))   # ReLU after the residual add

    class ResNet(Base):
        fuse = [["stem.0", "stem.1", "stem.2"]] + [[f"{k}.a.0", f"{k}.a.1", f"{k}.a.2"] for k in ("r1", "r2")] \
            + [[f"{k}.b.0", f"{k}.b.1"] for k in ("r1", "r2")]

        def __init__(self):
            super().__init__()
            self.stem, self.r1, self.r2 = cbr(3, 8, 3, pad=1), Block(8), Block(8)
            self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 10)

        def forward(self, x):
            x = self.pool(self.r2(self.r1(self.stem(self.quant(x)))))
            return self.dequant(self.fc(torch.flatten(x, 1)))

    class Inception(Base):
        fuse = [[f"{k}.0", f"{k}.1", f"{k}.2"] for k in ("stem", "b1", "b3", "bp")]

        def __init__(self):
            super().__init__()
            self.stem = cbr(3, 8, 3, pad=1)
            self.b1, self.b3 = cbr(8, 4, 1), cbr(8, 6, 3, pad=1)
            self.mp, self.bp = nn.MaxPool2d(3, 1, 1), cbr(8, 4, 1)
            self.cat, self.pool, self.fc = nnq.FloatFunctional(), nn.AdaptiveAvgPool2d(1), nn.Linear(14, 10)

        def forward(self, x):
            x = self.stem(self.quant(x))
            x = self.cat.cat([self.b1(x), self.b3(x), self.bp(self.mp(x))], 1)
            return self.dequant(self.fc(torch.flatten(self.pool(x), 1)))

    return {"mlp": MLP, "lenet": LeNet, "resnet": ResNet, "inception": Inception,
            "lenet_norm": lambda: LeNet(3, "norm"), "lenet_nhwc": lambda: LeNet(3, "nhwc"),
            "lenet_squeeze": lambda: LeNet(squeeze=True), "lenet_act": lambda: LeNet(act=True)}


def _float_net(arch: str):
    import torch

    torch.manual_seed(zlib.crc32(arch.encode()))
    net = _modules()[arch]()
    g = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):   # random statistics, so the folded BN is not trivial
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return net.eval()


def _export(net, arch: str, path: pathlib.Path, dynamo: bool = False) -> None:
    import torch

    x = torch.from_numpy(make_inputs(arch, 1, seed=99))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(net, (x,), str(path), dynamo=True, input_names=["input"],
                              output_names=["output"], optimize=True)
        else:
            torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=13,
                              input_names=["input"], output_names=["output"])


class _Reader:
    def __init__(self, xs):
        self._it = iter([{"input": x[None]} for x in xs])

    def get_next(self):
        return next(self._it, None)


def _ort_quantize(fpath: pathlib.Path, out: pathlib.Path, arch: str, tag: str) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    fmt, pc, act, wt = ORT_QUANT[tag]
    qt = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8, "u16": QuantType.QUInt16, "s16": QuantType.QInt16}
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_static(str(fpath), str(out), _Reader(make_inputs(arch, N_CALIB, seed=CALIB_SEED)),
                        quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                        per_channel=pc, activation_type=qt[act], weight_type=qt[wt],
                        reduce_range=act in ("u8", "s8"), calibrate_method=CalibrationMethod.MinMax)
    finally:
        root.setLevel(old)


def _qat(arch: str, backend: str, convert: bool):
    import torch
    import torch.ao.quantization as tq

    net = _float_net(arch)
    torch.backends.quantized.engine = backend
    m = tq.fuse_modules_qat(net.train(), net.fuse, inplace=False) if net.fuse else net.train()
    m.qconfig = tq.get_default_qat_qconfig(backend, version=0)   # version 1 does not export (samples/qat.py)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tq.prepare_qat(m, inplace=True)
        m.apply(torch.ao.nn.intrinsic.qat.freeze_bn_stats)
        with torch.no_grad():                    # observers see the calibration data; weights stay
            for x in make_inputs(arch, N_CALIB, seed=CALIB_SEED):   # one at a time: lenet_squeeze is batch-1
                m(torch.from_numpy(x[None]))
        m.apply(tq.disable_observer)
        m.eval()
        if convert:
            m = tq.convert(m, inplace=False)
    return m


def get_model(name: str, cache_dir) -> pathlib.Path:
    """Path of the cached model, built on first use (needs torch)."""
    if name not in _names() and name not in ACTIVATIONS:
        raise KeyError(f"unknown torch corpus model {name!r}")
    path = pathlib.Path(cache_dir) / f"torch-{name}.onnx"
    if _cached_ok(path, CORPUS_VERSION):
        return path
    arch, export, quant = parse(name)
    with tempfile.TemporaryDirectory(prefix="swsc-torch-") as td:
        tmp = pathlib.Path(td) / "m.onnx"
        if export.startswith("qat"):
            _export(_qat(arch, export.split("-")[1], quant == "converted"), arch, tmp)
        else:
            fpath = pathlib.Path(td) / "float.onnx"
            _export(_float_net(arch), arch, fpath, dynamo=export == "dynamo")
            _ort_quantize(fpath, tmp, arch, quant)
        m = onnx.load(str(tmp))
    _stamp(m, name, CORPUS_VERSION)
    _atomic_save(m, path)
    return path
