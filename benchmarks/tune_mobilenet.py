"""MobileNetV2-12-int8 (ONNX zoo, ../shared/models) tuned with `swsc tune` on natural photos.

Tuning photos are samples/photos.py's TUNE_SOURCES, the held-out ones its TEST_SOURCES (no
photo in both; three views each). Prints the held-out table of the uniform schedules
Ts = 0..Tc-1 and of the tuned front (T_inf, agreement with the exact quantized ANN and with
onnxruntime, exact outputs, OPF / ANN MACs), and writes the tune document for `swsc report`.

    python benchmarks/tune_mobilenet.py [-o out/mobilenetv2_tune.json] [--max-evals 24]

Takes about half an hour on one core (each end-to-end evaluation runs the SNN on 27 frames).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT.parent / "shared" / "models" / "mobilenetv2-12-int8.onnx"
sys.path.insert(0, str(ROOT))

from samples.photos import TEST_SOURCES, TUNE_SOURCES, VIEWS, imagenet_photos  # noqa: E402
from swsc.options import CompileOptions  # noqa: E402
from swsc.pareto import table, tune_model  # noqa: E402
from swsc.tune import Target  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", type=Path, default=ROOT / "out" / "mobilenetv2_tune.json")
    p.add_argument("--max-evals", type=int, default=24)
    p.add_argument("--agreement", type=float, default=1.0,
                   help="top-1 agreement with the exact ANN required on the tuning photos (default 1: "
                        "99%% on 24 held-out photos means all 24)")
    a = p.parse_args(argv)
    if not MODEL.exists():
        sys.exit(f"{MODEL} not found (needs ../shared/models)")
    with tempfile.TemporaryDirectory() as d:
        files = {}
        for name, sources in (("tune", TUNE_SOURCES), ("test", TEST_SOURCES)):
            x, _ = imagenet_photos(sources, views=VIEWS)
            files[name] = Path(d) / f"{name}.npz"
            np.savez(files[name], x=x)
        doc = tune_model(MODEL, files["tune"], CompileOptions(), Target(agreement=a.agreement),
                         test=files["test"], input_shape=(1, 3, 224, 224), max_evals=a.max_evals)
    doc["holdout"]["source"] = f"samples/photos.py TEST_SOURCES x {len(VIEWS)} views"
    a.output.parent.mkdir(parents=True, exist_ok=True)
    a.output.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"tuned: T_inf {doc['t_inf']} ({doc['evaluations']} evaluations, {doc['seconds']:.0f} s)")
    print(table(doc["uniform"], "held-out, uniform Ts"))
    print(table(doc["front"], "held-out, tuned front"))
    print(f"wrote {a.output}")


if __name__ == "__main__":
    main()
