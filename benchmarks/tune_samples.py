"""`swsc tune` on the bundled samples: tuned T_inf against the best uniform Ts.

Every figure printed is measured on data the tuner did not see. MNIST models are tuned on
MNIST test images 8500-9999 (no sample was trained or evaluated on them; needs
../shared/data/mnist) and measured on their bundled test file (images 8000-8499); the
digits models are tuned on the first half of their test file and measured on the rest. The
target is top-1 agreement 1 with the exact quantized ANN on the tuning data. Per model:
the tuned schedule's T_inf, held-out agreement and accuracy; the quantized ANN's accuracy;
and the smallest T_inf whose held-out accuracy reaches the ANN's, on the tuned front and
among the uniform Ts.

    python benchmarks/tune_samples.py [MODEL.onnx ...] [--max-evals 40] [-o DIR]

About a minute per model on one core; with -o, writes DIR/<model>_tune.json for `swsc report`.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from samples.data import DEFAULT_MNIST_DIR, load_mnist_split  # noqa: E402  (the repository root)
from swsc.options import CompileOptions  # noqa: E402
from swsc.pareto import tune_model  # noqa: E402
from swsc.tune import Target  # noqa: E402

MNIST_TUNE = slice(500, 2000)   # of the MNIST evaluation images 8000-9999: 8500-9999


def smallest(rows, ann):
    """The shortest row whose held-out accuracy reaches the ANN's: 'T_inf (accuracy)'."""
    r = next((r for r in sorted(rows, key=lambda r: r["t_inf"]) if r["accuracy_snn"] >= ann), None)
    return "-" if r is None else f"{r['t_inf']} ({r['accuracy_snn']:.4f})"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", type=Path)
    p.add_argument("--max-evals", type=int, default=40)
    p.add_argument("-o", "--output", type=Path)
    a = p.parse_args(argv)
    models = a.models or sorted((ROOT / "samples").glob("*.onnx"))
    have_mnist = Path(DEFAULT_MNIST_DIR).is_dir()
    print(f"{'model':18s} {'tuned on':>9s} {'T_inf':>5s} {'agree':>6s} {'acc':>6s} {'OPF/MAC':>7s} {'ANN acc':>7s} "
          f"{'front: T_inf reaching ANN acc':>30s} {'uniform: T_inf reaching ANN acc':>32s}")
    with tempfile.TemporaryDirectory() as d:
        tune_file = Path(d) / "mnist_tune.npz"
        if have_mnist:
            _, _, x, y = load_mnist_split()
            np.savez(tune_file, x=x[MNIST_TUNE], y=y[MNIST_TUNE])
        for m in models:
            test = m.with_name(m.stem + "_test.npz")
            mnist = "mnist" in m.stem and have_mnist
            data, held = (tune_file, test) if mnist else (test, None)
            doc = tune_model(m, data, CompileOptions(), Target(agreement=1.0), test=held, max_evals=a.max_evals,
                             progress=False, log=lambda _: None)
            if a.output:
                a.output.mkdir(parents=True, exist_ok=True)
                (a.output / f"{m.stem}_tune.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
            best = next((r for r in doc["front"] if r["schedule"] == doc["schedule"]), None)
            ann = doc["uniform"][0]["accuracy_ann"]
            tuned = "  -" if best is None else (f"{best['t_inf']:5d} {best['agreement_ann']:6.4f} "
                                               f"{best['accuracy_snn']:6.4f} {best['opf_per_mac']:7.3f}")
            print(f"{m.stem:18s} {doc['tuning']['samples']:9d} {tuned} {ann:7.4f} {smallest(doc['front'], ann):>30s} "
                  f"{smallest(doc['uniform'], ann):>32s}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
