"""The paper's setting on the bundled, trained samples: Tc = 8, Ts = 2, real test data.

The issue asks to report top-1 agreement and accuracy there (README records them) and to
explain any loss above one point; the assertions hold the line at that point.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from swsc.check import check
from swsc.options import CompileOptions

from conftest import SHARED

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted(p.stem for p in (ROOT / "samples").glob("*.onnx"))


@pytest.mark.parametrize("model", SAMPLES)
def test_paper_setting(model):
    report = check(ROOT / "samples" / f"{model}.onnx", ROOT / "samples" / f"{model}_test.npz",
                   CompileOptions(tc=8, ts=2), limit=300)
    print(f"{model}: accuracy ANN {report['accuracy_ref']:.4f} SNN {report['accuracy_snn']:.4f} "
          f"top-1 agreement {report['top1_agreement']:.4f} T_inf {report['t_inf']} "
          f"OPF/MACs {report['opf'] / report['ann_macs']:.2f}")
    assert report["top1_agreement"] >= 0.99
    assert report["accuracy_snn"] >= report["accuracy_ref"] - 0.01


@pytest.mark.parametrize("path", [SHARED / "models" / "ic_quantized_int8.onnx",
                                  SHARED / "models" / "ks_quantized_int8.onnx",
                                  ROOT / "tests" / "models" / "qat_lenet.onnx",
                                  ROOT / "tests" / "models" / "qat_resnet.onnx"], ids=lambda p: p.stem)
# uniform(-1, 1) inputs are half clamped by a 0..1 input quantizer, on purpose (the clamp must agree
# too): the data-file warning about it is expected here, not news for whoever runs the tests
@pytest.mark.filterwarnings("ignore:.*are clamped:swsc.errors.SwscWarning")
def test_real_models_exact_with_full_silent_period(path, tmp_path):
    """Real third-party int8 models (MLPerf Tiny) and torch QAT exports, synthetic inputs:
    with Ts = Tc - 1 the SNN agrees with onnxruntime."""
    if not path.exists():
        pytest.skip(f"{path} not present (../shared is optional)")
    from swsc.compiler import import_onnx
    g = import_onnx(path)
    x = np.random.default_rng(0).uniform(-1, 1, (32,) + g.tensors[g.inputs[0]].shape[1:]).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x)
    report = check(path, tmp_path / "d.npz", CompileOptions(tc=8, ts=7))
    assert report["max_abs_lsb"] <= 1 and report["top1_agreement"] == 1.0
    assert report["exact_fraction"] >= 0.999
