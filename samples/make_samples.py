"""Train and export the bundled sample models (and the QAT front-end test models).

Usage::

    python samples/make_samples.py                  # all sample models
    python samples/make_samples.py --only lenet5_mnist    # one group (or a file stem)
    python samples/make_samples.py --test-models    # tests/models/qat_{lenet,resnet}.onnx only

Data (see samples/data.py):

* MNIST: only the 10,000-image MNIST *test* set is available locally
  (<repo>/../shared/data/mnist, or --mnist-dir).  Images 0-7999 are used for
  training (and calibration), images 8000-9999 for evaluation.  The shipped
  ``*_test.npz`` files hold the first 500 of the evaluation images
  (8000-8499).  MNIST: Y. LeCun, C. Cortes, C. J. C. Burges, CC BY-SA 3.0.
* scikit-learn 8x8 digits: images 0-1399 train, 1400-1796 (397) test; the
  ``*_test.npz`` files hold all 397 held-out images.

Outputs (samples/):

* lenet5_mnist_qat.onnx  -- LeNet-5, paper's eager-mode QAT workflow, fake-quant export
* lenet5_mnist_qdq.onnx  -- the same float LeNet-5 (the QAT run's float pre-training),
                            onnxruntime static quantization, QDQ format
* lenet5_mnist_qop.onnx  -- same, QOperator format
* vgg_digits_qdq.onnx    -- small VGG-like net on digits, onnxruntime QDQ
* resnet_digits_qat.onnx -- small ResNet-like net (2 residual blocks) on digits, QAT workflow
* <model>_test.npz       -- x (float32, [n, 1, H, W]) and y (int64) held-out test data

All models take float32 NCHW input named 'input' with a dynamic batch axis
'N' and return float32 logits [N, 10] named 'logits'.  Seeds are fixed, so a
re-run reproduces the same models (up to floating-point non-determinism of
the CPU kernels, which we have not observed).

Everything is CPU-only and sized for a 2-core machine (each group trains in
well under a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.ao.quantization as tq
from torch.ao.nn.quantized import FloatFunctional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import data  # noqa: E402
import qat  # noqa: E402

TEST_MODELS_DIR = os.path.join(REPO, "tests", "models")
MNIST_NPZ_N = 500


# ----------------------------------------------------------------------------
# Architectures (QuantStub/DeQuantStub are identities until prepare_qat)
# ----------------------------------------------------------------------------

class LeNet5(nn.Module):
    """LeNet-5: conv6 k5 pad2 -> relu -> maxpool2 -> conv16 k5 -> relu -> maxpool2
    -> fc120 -> relu -> fc84 -> relu -> fc10.

    ``k``/``pad1``/``pad2``/``in_hw`` let the tiny test variant run on 8x8 digits.
    """

    def __init__(self, in_hw: int = 28, k: int = 5, pad1: int = 2, pad2: int = 0,
                 c1: int = 6, c2: int = 16, f1: int = 120, f2: int = 84):
        super().__init__()
        self.quant = tq.QuantStub()
        self.conv1 = nn.Conv2d(1, c1, k, padding=pad1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(c1, c2, k, padding=pad2)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        hw = (in_hw + 2 * pad1 - k + 1) // 2
        hw = (hw + 2 * pad2 - k + 1) // 2
        self.fc1 = nn.Linear(c2 * hw * hw, f1)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(f1, f2)
        self.relu4 = nn.ReLU()
        self.fc3 = nn.Linear(f2, 10)
        self.dequant = tq.DeQuantStub()

    FUSE = [["conv1", "relu1"], ["conv2", "relu2"], ["fc1", "relu3"], ["fc2", "relu4"]]

    def forward(self, x):
        x = self.quant(x)
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = self.relu3(self.fc1(x))
        x = self.relu4(self.fc2(x))
        x = self.fc3(x)
        return self.dequant(x)


class VGGDigits(nn.Module):
    """conv16-bn-relu -> conv16-bn-relu -> avgpool2 -> conv32-bn-relu -> avgpool2 -> dropout -> fc10
    (8x8 input).  BatchNorm/Dropout vanish in the eval-mode ONNX export (BN is folded into the Conv
    by the exporter)."""

    def __init__(self, c1: int = 16, c2: int = 32, dropout: float = 0.3):
        super().__init__()
        self.quant = tq.QuantStub()
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c1, c1, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c1)
        self.relu2 = nn.ReLU()
        self.pool1 = nn.AvgPool2d(2)
        self.conv3 = nn.Conv2d(c1, c2, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(c2)
        self.relu3 = nn.ReLU()
        self.pool2 = nn.AvgPool2d(2)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(c2 * 2 * 2, 10)
        self.dequant = tq.DeQuantStub()

    FUSE = [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"], ["conv3", "bn3", "relu3"]]

    def forward(self, x):
        x = self.quant(x)
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.pool1(x)
        x = self.pool2(self.relu3(self.bn3(self.conv3(x))))
        x = self.fc(self.drop(torch.flatten(x, 1)))
        return self.dequant(x)


class BasicBlock(nn.Module):
    """ResNet basic block; the residual add+ReLU goes through FloatFunctional.add_relu
    so eager-mode QAT observes (fake-quantizes) its output."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(cout))
        self.skip_add_relu = FloatFunctional()

    def fuse_spec(self, prefix: str):
        spec = [[f"{prefix}.conv1", f"{prefix}.bn1", f"{prefix}.relu1"], [f"{prefix}.conv2", f"{prefix}.bn2"]]
        if self.downsample is not None:
            spec.append([f"{prefix}.downsample.0", f"{prefix}.downsample.1"])
        return spec

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.skip_add_relu.add_relu(out, identity)


class ResNetDigits(nn.Module):
    """stem conv3x3+bn+relu -> block(c1, stride 1) -> block(c2, stride 2) -> GAP -> fc10."""

    def __init__(self, c1: int = 16, c2: int = 32):
        super().__init__()
        self.quant = tq.QuantStub()
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.relu1 = nn.ReLU()
        self.layer1 = BasicBlock(c1, c1, 1)
        self.layer2 = BasicBlock(c1, c2, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c2, 10)
        self.dequant = tq.DeQuantStub()

    @property
    def FUSE(self):
        return [["conv1", "bn1", "relu1"]] + self.layer1.fuse_spec("layer1") + self.layer2.fuse_spec("layer2")

    def forward(self, x):
        x = self.quant(x)
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        x = torch.flatten(self.avgpool(x), 1)
        x = self.fc(x)
        return self.dequant(x)


# ----------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------

RESULTS: list = []


def _kb(path: str) -> float:
    return os.path.getsize(path) / 1024.0


def _save_npz(path: str, x: np.ndarray, y: np.ndarray) -> None:
    np.savez_compressed(path, x=x.astype(np.float32), y=y.astype(np.int64))


def _report(name: str, path: str, x_eval: np.ndarray, y_eval: np.ndarray, float_onnx: str,
            train_s: float, extra: dict | None = None, x_full=None, y_full=None) -> dict:
    acc_q = qat.ort_accuracy(path, x_eval, y_eval)
    acc_f = qat.ort_accuracy(float_onnx, x_eval, y_eval)
    rec = {"file": os.path.relpath(path, REPO), "size_kb": round(_kb(path), 1), "train_s": round(train_s, 1),
           "float_acc_npz": acc_f, "quant_acc_npz": acc_q, "n_npz": len(y_eval),
           "ops": qat.op_inventory(path)}
    if x_full is not None:
        rec["float_acc_full"] = qat.ort_accuracy(float_onnx, x_full, y_full)
        rec["quant_acc_full"] = qat.ort_accuracy(path, x_full, y_full)
        rec["n_full"] = len(y_full)
    if extra:
        rec.update(extra)
    # a batch-5 run checks the dynamic batch axis
    out = qat.ort_predict(path, x_eval[:5], batch_size=5)
    assert out.shape == (5, 10), out.shape
    print(f"[{name}] {rec['file']}: {rec['size_kb']} KB, float acc {acc_f:.4f}, quantized acc {acc_q:.4f} "
          f"(onnxruntime, {len(y_eval)} test images)", flush=True)
    if x_full is not None:
        print(f"[{name}]   on all {rec['n_full']} held-out images: float {rec['float_acc_full']:.4f}, "
              f"quantized {rec['quant_acc_full']:.4f}", flush=True)
    print(f"[{name}]   ops: " + ", ".join(f"{k} x{v}" for k, v in rec["ops"].items()), flush=True)
    RESULTS.append(rec)
    return rec


def _qat_vs_torch(qm: nn.Module, path: str, x: np.ndarray) -> dict:
    """Agreement between the PyTorch fake-quant model and its ONNX export under onnxruntime."""
    with torch.no_grad():
        t = qm(torch.from_numpy(x)).numpy()
    o = qat.ort_predict(path, x)
    return {"torch_vs_ort_argmax_agree": float((t.argmax(1) == o.argmax(1)).mean()),
            "torch_vs_ort_max_abs_diff": float(np.abs(t - o).max())}


# ----------------------------------------------------------------------------
# Groups
# ----------------------------------------------------------------------------

def make_lenet5_mnist(args, tmp: str) -> None:
    t_all = time.time()
    xtr, ytr, xte, yte = data.load_mnist_split(args.mnist_dir)
    xs, ys = xte[:MNIST_NPZ_N], yte[:MNIST_NPZ_N]
    for stem in ("lenet5_mnist_qat", "lenet5_mnist_qdq", "lenet5_mnist_qop"):
        _save_npz(os.path.join(HERE, f"{stem}_test.npz"), xs, ys)
    float_onnx = os.path.join(tmp, "lenet5_mnist_float.onnx")
    qat_path = os.path.join(HERE, "lenet5_mnist_qat.onnx")
    print("== lenet5_mnist: float pre-training + QAT (MNIST images 0-7999) ==", flush=True)
    qat.seed_everything(1)  # torch seeds itself randomly at start-up: seed before building the model
    res = qat.run_qat_workflow(LeNet5(), LeNet5.FUSE, xtr, ytr, qat_path, float_epochs=8, float_lr=1e-3,
                               float_batch=64, qat_batch=64, seed=1, float_onnx_path=float_onnx)
    chk = _qat_vs_torch(res["qat_model"], qat_path, xs)
    _report("lenet5_mnist_qat", qat_path, xs, ys, float_onnx, res["t_float"] + res["t_qat"],
            dict(chk, t_float_s=round(res["t_float"], 1), t_qat_s=round(res["t_qat"], 1)), xte, yte)
    calib = xtr[:200]
    for fmt, stem in (("QDQ", "lenet5_mnist_qdq"), ("QOperator", "lenet5_mnist_qop")):
        t0 = time.time()
        path = os.path.join(HERE, f"{stem}.onnx")
        qat.quantize_with_ort(float_onnx, path, calib, quant_format=fmt)
        _report(stem, path, xs, ys, float_onnx, res["t_float"],
                {"t_quantize_s": round(time.time() - t0, 1), "note": "float model shared with lenet5_mnist_qat"},
                xte, yte)
    print(f"== lenet5_mnist done in {time.time() - t_all:.1f} s ==", flush=True)


def make_vgg_digits(args, tmp: str) -> None:
    t_all = time.time()
    xtr, ytr, xte, yte = data.load_digits_split()
    _save_npz(os.path.join(HERE, "vgg_digits_qdq_test.npz"), xte, yte)
    print("== vgg_digits: float training (digits 0-1399) + onnxruntime QDQ ==", flush=True)
    qat.seed_everything(2)
    model = VGGDigits()
    t0 = time.time()
    qat.train_float(model, xtr, ytr, epochs=30, lr=2e-3, batch_size=32, seed=2)
    t_float = time.time() - t0
    float_onnx = os.path.join(tmp, "vgg_digits_float.onnx")
    qat.export_onnx(model, float_onnx, xtr.shape[1:])
    path = os.path.join(HERE, "vgg_digits_qdq.onnx")
    qat.quantize_with_ort(float_onnx, path, xtr[:200], quant_format="QDQ")
    _report("vgg_digits_qdq", path, xte, yte, float_onnx, t_float, {"t_float_s": round(t_float, 1)})
    print(f"== vgg_digits done in {time.time() - t_all:.1f} s ==", flush=True)


def make_resnet_digits(args, tmp: str) -> None:
    t_all = time.time()
    xtr, ytr, xte, yte = data.load_digits_split()
    _save_npz(os.path.join(HERE, "resnet_digits_qat_test.npz"), xte, yte)
    print("== resnet_digits: float pre-training + QAT (digits 0-1399) ==", flush=True)
    qat.seed_everything(3)
    model = ResNetDigits()
    float_onnx = os.path.join(tmp, "resnet_digits_float.onnx")
    path = os.path.join(HERE, "resnet_digits_qat.onnx")
    res = qat.run_qat_workflow(model, model.FUSE, xtr, ytr, path, float_epochs=15, float_lr=2e-3,
                               float_batch=32, qat_batch=32, seed=3, float_onnx_path=float_onnx)
    chk = _qat_vs_torch(res["qat_model"], path, xte)
    _report("resnet_digits_qat", path, xte, yte, float_onnx, res["t_float"] + res["t_qat"],
            dict(chk, t_float_s=round(res["t_float"], 1), t_qat_s=round(res["t_qat"], 1)))
    print(f"== resnet_digits done in {time.time() - t_all:.1f} s ==", flush=True)


def make_test_models(args, tmp: str) -> None:
    """Tiny QAT exports on digits for the front-end tests (tests/models/)."""
    os.makedirs(TEST_MODELS_DIR, exist_ok=True)
    xtr, ytr, xte, yte = data.load_digits_split()
    specs = [
        ("qat_lenet", lambda: LeNet5(in_hw=8, k=3, pad1=1, pad2=1, c1=6, c2=16, f1=32, f2=24), 25, 10),
        ("qat_resnet", lambda: ResNetDigits(c1=8, c2=16), 12, 11),
    ]
    for name, build, epochs, seed in specs:
        t0 = time.time()
        qat.seed_everything(seed)
        model = build()
        print(f"== tests/models/{name}.onnx: tiny QAT on digits ==", flush=True)
        path = os.path.join(TEST_MODELS_DIR, f"{name}.onnx")
        float_onnx = os.path.join(tmp, f"{name}_float.onnx")
        fuse = model.FUSE
        res = qat.run_qat_workflow(model, fuse, xtr, ytr, path, float_epochs=epochs, float_lr=3e-3,
                                   float_batch=32, qat_batch=32, seed=seed, float_onnx_path=float_onnx)
        chk = _qat_vs_torch(res["qat_model"], path, xte)
        _report(name, path, xte, yte, float_onnx, time.time() - t0, chk)
        assert _kb(path) < 200, f"{path} is {_kb(path):.0f} KB"


GROUPS = {
    "lenet5_mnist": make_lenet5_mnist,
    "vgg_digits": make_vgg_digits,
    "resnet_digits": make_resnet_digits,
}
ALIASES = {
    "lenet5_mnist_qat": "lenet5_mnist", "lenet5_mnist_qdq": "lenet5_mnist", "lenet5_mnist_qop": "lenet5_mnist",
    "vgg_digits_qdq": "vgg_digits", "resnet_digits_qat": "resnet_digits",
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="one group (lenet5_mnist, vgg_digits, resnet_digits) or a model file stem; "
                                   "lenet5_mnist_{qat,qdq,qop} share one float model and are built together")
    ap.add_argument("--test-models", action="store_true",
                    help="build only tests/models/qat_lenet.onnx and tests/models/qat_resnet.onnx")
    ap.add_argument("--mnist-dir", default=None, help=f"MNIST IDX directory (default {data.DEFAULT_MNIST_DIR})")
    ap.add_argument("--json", default=None, help="also write the measured results to this JSON file")
    args = ap.parse_args(argv)

    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True, warn_only=True)

    with tempfile.TemporaryDirectory() as tmp:
        if args.test_models:
            make_test_models(args, tmp)
        else:
            names = list(GROUPS)
            if args.only:
                key = ALIASES.get(args.only, args.only)
                if key not in GROUPS:
                    ap.error(f"unknown --only {args.only!r}; choose from {sorted(set(GROUPS) | set(ALIASES))}")
                names = [key]
            for n in names:
                GROUPS[n](args, tmp)

    print("\n| file | size KB | train s | float acc | quantized acc | n |")
    print("|---|---|---|---|---|---|")
    for r in RESULTS:
        print(f"| {r['file']} | {r['size_kb']} | {r['train_s']} | {r['float_acc_npz']:.4f} | "
              f"{r['quant_acc_npz']:.4f} | {r['n_npz']} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(RESULTS, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
