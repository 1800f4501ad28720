"""Agreement with onnxruntime on every test-corpus model at Ts = Tc - 1 (issue #4's exactness item).

For each model of tests/corpus.py (built on first use), 64 random inputs: the SNN's outputs
against onnxruntime's (fraction of equal output elements, largest difference in LSB, top-1
agreement), whether the SNN equals the exact quantized ANN (the fold-zero-points graph) on
every output element, and the worst spiking layer run alone on onnxruntime-exact input.
Prints one row per model as it goes, then how many meet ">= 99.9% equal, <= 1 LSB, top-1 100%".

    python benchmarks/corpus_agreement.py [--corpus DIR] [--samples 64] [--tc 8]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import corpus  # noqa: E402  (the test corpus generator lives with the tests)

from swsc.check import check, output_quant_tensors  # noqa: E402
from swsc.compiler import compile_graph, import_onnx  # noqa: E402
from swsc.options import CompileOptions  # noqa: E402
from swsc.passes import FoldZeroPoints  # noqa: E402
from swsc.passmanager import PassManager  # noqa: E402
from swsc.runtime.interpreter import run  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=Path(os.environ.get("SWSC_CORPUS_DIR", ROOT / "tests/.corpus")),
                   help="where the corpus models are (built there if missing)")
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--tc", type=int, default=8)
    a = p.parse_args(argv)
    opts = CompileOptions(tc=a.tc, ts=a.tc - 1)
    a.corpus.mkdir(parents=True, exist_ok=True)
    print(f"{'model':28s} {'equal':>8s} {'max LSB':>7s} {'top-1':>6s}  {'= exact ANN':11s} worst layer alone")
    met = 0
    names = corpus.model_names()
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            model = corpus.get_model(name, a.corpus)
            x = corpus.make_inputs(name, a.samples, seed=11)
            data = Path(tmp) / "data.npz"
            np.savez(data, x=x)
            r = check(model, data, opts)
            g = import_onnx(model)
            out = output_quant_tensors(g)[0]
            ann = run(PassManager([FoldZeroPoints()]).run(g), x, intermediate=True).intermediates[out]
            snn = run(compile_graph(g, opts), x, intermediate=True).intermediates[out]
            exact_ann = bool(np.array_equal(np.rint(snn), np.rint(ann)))
            layers = [lay for lay in r["layers"] if "isolated_exact_fraction" in lay]
            worst = min(layers, key=lambda lay: lay["isolated_exact_fraction"]) if layers else None
            ok = r["exact_fraction"] >= 0.999 and r["max_abs_lsb"] <= 1 and r["top1_agreement"] == 1.0
            met += ok
            w = f"{worst['name']} {worst['isolated_exact_fraction']:.4f}" if worst else "-"
            print(f"{name:28s} {r['exact_fraction']:8.4f} {r['max_abs_lsb']:7.0f} {r['top1_agreement']:6.3f}  "
                  f"{str(exact_ann):11s} {w}{'' if ok else '   <- not met'}")
            sys.stdout.flush()
    print(f"{met} of {len(names)} models: >= 99.9% of outputs equal onnxruntime's, all within 1 LSB, top-1 100%")


if __name__ == "__main__":
    main()
