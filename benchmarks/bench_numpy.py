"""Benchmark: the numpy SWS runtime's time per frame against onnxruntime's on the quantized model.

Both run in this process on the same inputs, timed in alternation; onnxruntime gets one
thread and its best batching (the model's fixed batch, or 64 samples at a time), the SNN
simulation its default batches (128 samples for these models), with its spike and OPF
counts but without the residual histograms (a diagnostic `swsc check` adds; column
"+resid" includes them). Prints one row per model and the ratio SNN / onnxruntime.

    python benchmarks/bench_numpy.py [MODEL.onnx ...] [--tc 8 --ts 2] [--samples 256]
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



def bench(model: Path, opts: CompileOptions, samples: int):
    graph = import_onnx(model)
    x = inputs(model, graph, samples)
    oracle = Oracle(model, threads=1)
    sg = compile_graph(graph, opts)
    run(sg, x[:8])      # first call: numba's compiled loops load from their cache
    t_ort, t_snn, t_full = best_of(lambda: oracle.run(x, chunk=64), lambda: run(sg, x, residuals=False),
                                   lambda: run(sg, x))
    return t_ort / len(x), t_snn / len(x), t_full / len(x), int(sg.meta["t_inf"])


def main(argv=None):
    p = parser(__doc__)
    a = p.parse_args(argv)
    models = a.models or sorted((ROOT / "samples").glob("*.onnx"))
    opts = CompileOptions(tc=a.tc, ts=a.ts)
    print(f"{'model':26s} {'ort us/frame':>12s} {'snn us/frame':>12s} {'ratio':>6s} {'per step':>8s} "
          f"{'+resid':>7s}  T_inf")
    for m in models:
        t_ort, t_snn, t_full, t_inf = bench(m, opts, a.samples)
        print(f"{m.stem:26s} {t_ort * 1e6:12.1f} {t_snn * 1e6:12.1f} {t_snn / t_ort:6.1f} "
              f"{t_snn / t_ort / a.tc:8.2f} {t_full / t_ort:7.1f}  {t_inf}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
