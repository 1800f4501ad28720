"""Benchmark: the numpy SWS runtime's time per frame against onnxruntime's on the quantized model.

Both run in this process on the same inputs, timed in alternation; onnxruntime gets one
thread and its best batching (the model's fixed batch, or 64 samples at a time), the SNN
simulation its default batches (up to 128 samples, fewer where the memory budget says so),
with its spike and OPF counts but without the residual histograms (a diagnostic `swsc check`
adds; column "+resid" includes them). Prints one row per model and the ratio SNN /
onnxruntime. With ../shared/models present, MobileNetV2-12-int8 runs too, on 8 natural
photos (samples/photos.py).

    python benchmarks/bench_numpy.py [MODEL.onnx ...] [--tc 8 --ts 2] [--samples 256] [--repeats 7]
"""
from __future__ import annotations

import sys
from pathlib import Path

from swsc.compiler import compile_graph, import_onnx
from swsc.options import CompileOptions
from swsc.oracle import Oracle
from swsc.runtime.interpreter import run

from common import best_of, inputs, parser  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from samples.photos import SOURCES, imagenet_photos  # noqa: E402  (the repository root, for samples/)

#: MobileNetV2-12-int8 from the ONNX zoo, benchmarked on natural photos when ../shared has it
MOBILENET = ROOT.parent / "shared" / "models" / "mobilenetv2-12-int8.onnx"
MOBILENET_FRAMES = 8


def _model_inputs(model: Path, samples: int):
    """(graph, frames): the sample's own test images, or photos for MobileNetV2."""
    if model.name == MOBILENET.name:
        x, _ = imagenet_photos(SOURCES[:min(samples, MOBILENET_FRAMES)])
        return import_onnx(model, (1, 3, 224, 224)), x
    graph = import_onnx(model)
    return graph, inputs(model, graph, samples)


def bench(model: Path, opts: CompileOptions, samples: int, repeats: int = 7):
    graph, x = _model_inputs(model, samples)
    oracle = Oracle(model, threads=1)
    sg = compile_graph(graph, opts)
    run(sg, x[:8])      # first call: numba's compiled loops load from their cache
    t_ort, t_snn, t_full = best_of(lambda: oracle.run(x, chunk=64), lambda: run(sg, x, residuals=False),
                                   lambda: run(sg, x), repeats=repeats)
    return t_ort / len(x), t_snn / len(x), t_full / len(x), sg.t_inf


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--repeats", type=int, default=7, help="timed rounds, best of (default 7)")
    a = p.parse_args(argv)
    models = a.models or sorted((ROOT / "samples").glob("*.onnx")) + ([MOBILENET] if MOBILENET.exists() else [])
    opts = CompileOptions(tc=a.tc, ts=a.ts)
    print(f"{'model':26s} {'ort us/frame':>12s} {'snn us/frame':>12s} {'ratio':>6s} {'per step':>8s} "
          f"{'+resid':>7s}  T_inf")
    for m in models:
        t_ort, t_snn, t_full, t_inf = bench(m, opts, a.samples, a.repeats)
        print(f"{m.stem:26s} {t_ort * 1e6:12.1f} {t_snn * 1e6:12.1f} {t_snn / t_ort:6.1f} "
              f"{t_snn / t_ort / a.tc:8.2f} {t_full / t_ort:7.1f}  {t_inf}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
