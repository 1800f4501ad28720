"""Quantization workflows used to build the bundled sample models.

1. ``run_qat_workflow``: the PyTorch eager-mode quantization-aware-training
   workflow of the SWS paper (appendix A.2, "Details for QAT"):

   * float pre-training with Adam for a few epochs;
   * ``torch.ao.quantization`` eager QAT: the model carries a ``QuantStub`` /
     ``DeQuantStub``; conv+bn+relu, conv+bn, conv+relu and linear+relu groups
     are fused with ``fuse_modules_qat``; the qconfig is PyTorch's default QAT
     qconfig for the ``x86`` backend (uint8 activations with
     ``reduce_range=True``, i.e. quant range [0, 127]; int8 per-channel
     symmetric weights); ``prepare_qat``;
   * fine-tuning with SGD (momentum 0.9, lr 1e-4) for 12 "epochs" of 20
     batches each; batch-norm statistics are frozen after 3 epochs
     (``freeze_bn_stats``) and the quantizer parameters (scale, zero point)
     after another 2 (``disable_observer``);
   * export of the QAT model *in fake-quant form* (not converted) with the
     TorchScript exporter, ``torch.onnx.export(..., dynamo=False,
     opset_version=13)``.  The exported graph is kept exactly as the exporter
     writes it (default constant folding, no further simplification).

   Deviation needed for the export (the smallest change that works):
   ``get_default_qat_qconfig('x86')`` (version=1, the default) uses
   ``FusedMovingAvgObsFakeQuantize``, which traces to
   ``aten::fused_moving_avg_obs_fake_quant`` -- the ONNX exporter has no
   symbolic for it ("Exporting the operator
   'aten::fused_moving_avg_obs_fake_quant' to ONNX opset version 13 is not
   supported").  We therefore use ``get_default_qat_qconfig('x86',
   version=0)``: the same observers, quant ranges, dtypes, reduce_range and
   per-channel scheme, but built from the unfused ``FakeQuantize`` module,
   which exports to QuantizeLinear/DequantizeLinear (plus a Clip for the
   [0, 127] reduce-range activations).  Numerically the two are the same
   fake-quant function.

2. ``quantize_with_ort``: post-training static quantization of a float ONNX
   export with ``onnxruntime.quantization.quantize_static`` (QDQ or QOperator
   format, uint8 activations, int8 per-channel weights, MinMax calibration).
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
import warnings
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.ao.quantization as tq
from torch.ao.nn.intrinsic import qat as nniqat

QAT_BACKEND = "x86"
OPSET = 13


def _log_default(msg: str) -> None:
    print(msg, flush=True)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


# ----------------------------------------------------------------------------
# Float training / evaluation
# ----------------------------------------------------------------------------

def torch_accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 500) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out = model(torch.from_numpy(x[i:i + batch_size]))
            correct += int((out.argmax(1).numpy() == y[i:i + batch_size]).sum())
    return correct / len(x)


def train_float(model: nn.Module, x: np.ndarray, y: np.ndarray, *, epochs: int, lr: float = 1e-3,
                batch_size: int = 64, seed: int = 0, weight_decay: float = 0.0,
                log: Callable[[str], None] = _log_default) -> nn.Module:
    """Plain float pre-training with Adam (full passes over the training set)."""
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for ep in range(epochs):
        model.train()
        perm = torch.from_numpy(rng.permutation(len(x)))
        tot = 0.0
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            tot += loss.item() * len(idx)
        log(f"  float epoch {ep + 1}/{epochs}: loss {tot / len(x):.4f}")
    model.eval()
    return model


# ----------------------------------------------------------------------------
# Eager-mode QAT (paper appendix A.2)
# ----------------------------------------------------------------------------

def qat_qconfig(backend: str = QAT_BACKEND):
    """PyTorch's default QAT qconfig for ``backend``, unfused-FakeQuantize variant.

    See the module docstring: version=1 (the default) is not ONNX-exportable.
    """
    return tq.get_default_qat_qconfig(backend, version=0)


def prepare_qat_model(float_model: nn.Module, fuse_spec: Sequence[Sequence[str]],
                      backend: str = QAT_BACKEND) -> nn.Module:
    """Copy ``float_model``, fuse ``fuse_spec`` groups for QAT and insert fake quant."""
    m = copy.deepcopy(float_model)
    m.train()
    if fuse_spec:
        m = tq.fuse_modules_qat(m, [list(g) for g in fuse_spec], inplace=False)
    m.qconfig = qat_qconfig(backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tq.prepare_qat(m, inplace=True)
    return m


def qat_finetune(qat_model: nn.Module, x: np.ndarray, y: np.ndarray, *, epochs: int = 12,
                 batches_per_epoch: int = 20, batch_size: int = 64, lr: float = 1e-4,
                 momentum: float = 0.9, freeze_bn_after: int = 3, freeze_observer_after: int = 5,
                 seed: int = 0, log: Callable[[str], None] = _log_default) -> nn.Module:
    """Paper schedule: SGD(momentum 0.9, lr 1e-4), 12 epochs x 20 batches.

    BN statistics are frozen once ``freeze_bn_after`` epochs are done, the
    observers (scale / zero point) once ``freeze_observer_after`` epochs are
    done (3 and 3 + 2 in the paper).  Batches are drawn from one continuing
    shuffled stream over the training set.
    """
    rng = np.random.default_rng(seed)
    opt = torch.optim.SGD(qat_model.parameters(), lr=lr, momentum=momentum)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    perm = rng.permutation(len(x))
    pos = 0
    for ep in range(epochs):
        if ep == freeze_bn_after:
            qat_model.apply(nniqat.freeze_bn_stats)
            log(f"  qat: froze BN statistics before epoch {ep + 1}")
        if ep == freeze_observer_after:
            qat_model.apply(tq.disable_observer)
            log(f"  qat: froze quantizer parameters (observers) before epoch {ep + 1}")
        qat_model.train()
        tot = 0.0
        for _ in range(batches_per_epoch):
            if pos + batch_size > len(x):
                perm = rng.permutation(len(x))
                pos = 0
            idx = torch.from_numpy(perm[pos:pos + batch_size])
            pos += batch_size
            opt.zero_grad()
            loss = loss_fn(qat_model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            tot += loss.item()
        log(f"  qat epoch {ep + 1}/{epochs}: loss {tot / batches_per_epoch:.4f}")
    qat_model.eval()
    return qat_model


# ----------------------------------------------------------------------------
# ONNX export
# ----------------------------------------------------------------------------

def export_onnx(model: nn.Module, path: str, input_shape: Sequence[int], *, dynamic_batch: bool = True,
                input_name: str = "input", output_name: str = "logits") -> None:
    """TorchScript ONNX export (``dynamo=False``, opset 13), eval mode.

    ``input_shape`` is one sample's shape (C, H, W); the exported input is
    float32 NCHW with batch dimension named 'N' when ``dynamic_batch``.
    """
    model.eval()
    dummy = torch.zeros(1, *input_shape, dtype=torch.float32)
    kwargs = {}
    if dynamic_batch:
        kwargs["dynamic_axes"] = {input_name: {0: "N"}, output_name: {0: "N"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (dummy,), path, dynamo=False, opset_version=OPSET,
                          input_names=[input_name], output_names=[output_name], **kwargs)


# ----------------------------------------------------------------------------
# onnxruntime helpers
# ----------------------------------------------------------------------------

def ort_session(path: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_predict(path: str, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    sess = ort_session(path)
    name = sess.get_inputs()[0].name
    fixed_batch = sess.get_inputs()[0].shape[0]
    if isinstance(fixed_batch, int):
        batch_size = fixed_batch
    outs = [sess.run(None, {name: x[i:i + batch_size]})[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(outs, 0)


def ort_accuracy(path: str, x: np.ndarray, y: np.ndarray) -> float:
    return float((ort_predict(path, x).argmax(1) == y).mean())


def op_inventory(path: str) -> dict:
    """Op types (with domain prefix when not the default domain) -> count, in first-seen order."""
    import onnx

    m = onnx.load(path)
    inv: dict = {}
    for n in m.graph.node:
        key = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
        inv[key] = inv.get(key, 0) + 1
    return inv


class _ArrayReader:
    """CalibrationDataReader over a float32 array, in mini-batches."""

    def __init__(self, input_name: str, x: np.ndarray, batch_size: int):
        self._batches = [{input_name: x[i:i + batch_size]} for i in range(0, len(x), batch_size)]
        self._it = iter(self._batches)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):
        self._it = iter(self._batches)


def quantize_with_ort(float_onnx: str, out_path: str, calib_x: np.ndarray, *, quant_format: str = "QDQ",
                      per_channel: bool = True, calib_batch: int = 50) -> None:
    """Static PTQ with onnxruntime: uint8 activations, int8 (per-channel) weights, MinMax.

    ``quant_format`` is 'QDQ' or 'QOperator'.  The float model is quantized
    as exported (no ``quant_pre_process``).  Calibration feeds batches of
    ``calib_batch`` images (or the model's fixed batch size, if it has one).
    """
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    import onnx

    m = onnx.load(float_onnx)
    inp = m.graph.input[0]
    dim0 = inp.type.tensor_type.shape.dim[0]
    if dim0.HasField("dim_value"):
        calib_batch = dim0.dim_value

    class Reader(_ArrayReader, CalibrationDataReader):
        pass

    reader = Reader(inp.name, calib_x.astype(np.float32), calib_batch)
    fmt = {"QDQ": QuantFormat.QDQ, "QOperator": QuantFormat.QOperator}[quant_format]
    float_onnx = os.path.abspath(float_onnx)
    out_path = os.path.abspath(out_path)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as td:
        os.chdir(td)  # keep ORT's temporary augmented calibration model out of the repo
        try:
            quantize_static(float_onnx, out_path, reader, quant_format=fmt, per_channel=per_channel,
                            reduce_range=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
        finally:
            os.chdir(cwd)


# ----------------------------------------------------------------------------
# The whole QAT workflow
# ----------------------------------------------------------------------------

def run_qat_workflow(float_model: nn.Module, fuse_spec: Sequence[Sequence[str]], x_train: np.ndarray,
                     y_train: np.ndarray, out_path: str, *, float_epochs: int, float_lr: float = 1e-3,
                     float_batch: int = 64, qat_epochs: int = 12, qat_batches_per_epoch: int = 20,
                     qat_batch: int = 64, qat_lr: float = 1e-4, seed: int = 0, dynamic_batch: bool = True,
                     float_onnx_path: str | None = None,
                     log: Callable[[str], None] = _log_default) -> dict:
    """Float pre-training -> eager QAT fine-tuning -> fake-quant ONNX export.

    Returns a dict with the trained float model, the QAT model and timings.
    ``float_onnx_path``, if given, also receives a float export of the
    pre-trained model (used to measure float accuracy with onnxruntime).
    """
    seed_everything(seed)
    t0 = time.time()
    train_float(float_model, x_train, y_train, epochs=float_epochs, lr=float_lr, batch_size=float_batch,
                seed=seed, log=log)
    t_float = time.time() - t0
    input_shape = x_train.shape[1:]
    if float_onnx_path:
        export_onnx(float_model, float_onnx_path, input_shape, dynamic_batch=dynamic_batch)
    t1 = time.time()
    qm = prepare_qat_model(float_model, fuse_spec)
    qat_finetune(qm, x_train, y_train, epochs=qat_epochs, batches_per_epoch=qat_batches_per_epoch,
                 batch_size=qat_batch, lr=qat_lr, seed=seed + 1, log=log)
    t_qat = time.time() - t1
    export_onnx(qm, out_path, input_shape, dynamic_batch=dynamic_batch)
    return {"float_model": float_model, "qat_model": qm, "t_float": t_float, "t_qat": t_qat}
