"""Benchmark: the generated C (gcc -O2) against onnxruntime on the quantized model, and its
static memory against the model's own size.

For every model (default: samples/*.onnx) this compiles the integer SWS graph, emits and
builds the C harness, and times, in this process and on the same inputs:

* the C harness on N frames, one process (its start-up measured on one frame and
  subtracted), one thread;
* onnxruntime on the quantized ONNX model, one thread, its best batching.

It prints frames per second of both and their ratio, then flash and RAM of the C network
against the model's int8 weight bytes and its largest activation tensor (one sample).

    python benchmarks/bench_c.py [MODEL.onnx ...] [--tc 8 --ts 2] [--samples 512] [--cc gcc]
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from swsc.compiler import compile_graph, import_onnx
from swsc.options import CompileOptions
from swsc.oracle import Oracle
from swsc.runtime import cbackend as cb

from common import best_of, inputs, parser  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
_BYTES = {"uint8": 1, "int8": 1, "int16": 2, "int32": 4, "float32": 4}



def model_sizes(graph) -> tuple[int, int]:
    """(bytes of the quantized weights (8-bit weight tensors), bytes of the largest 8-bit
    activation tensor of one sample) of the canonical quantized graph."""
    weights = sum(t.data.size * _BYTES.get(t.dtype, 4) for t in graph.tensors.values()
                  if t.is_const and t.dtype in ("int8", "uint8"))
    acts = [int(np.prod(t.shape[1:])) * _BYTES.get(t.dtype, 4) for t in graph.tensors.values()
            if not t.is_const and t.dtype in ("int8", "uint8")]
    return weights, max(acts, default=0)


def bench(model: Path, opts: CompileOptions, samples: int, cc: str, work: Path):
    graph = import_onnx(model)
    x = inputs(model, graph, samples)
    w_bytes, act_bytes = model_sizes(graph)
    sg = compile_graph(graph, opts, integer=True)
    out_dir = work / model.stem
    report = cb.emit_c(sg, out_dir, prefix="m", header_info={"source": model.name})
    exe = cb.build(out_dir, cc=cc, cflags="-std=c99 -O2")
    x_q = cb.quantize_input(sg, x)
    oracle = Oracle(model, threads=1)
    t_start, t_all, t_ort = best_of(lambda: cb.run_binary(exe, x_q[:1]), lambda: cb.run_binary(exe, x_q),
                                    lambda: oracle.run(x, chunk=64))
    t_c = max(t_all - t_start, 1e-9) / max(len(x) - 1, 1)
    t_ort /= len(x)
    return {"c_fps": 1 / t_c, "ort_fps": 1 / t_ort, "flash": report.flash_bytes, "ram": report.ram_bytes,
            "weights": w_bytes, "act": act_bytes, "t_inf": int(sg.meta["t_inf"]), "arena": report.arena_bytes}


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--cc", default="gcc")
    a = p.parse_args(argv)
    models = a.models or sorted((ROOT / "samples").glob("*.onnx"))
    opts = CompileOptions(tc=a.tc, ts=a.ts)
    print(f"{'model':26s} {'C fps':>9s} {'ort fps':>9s} {'C/ort':>6s}  {'flash':>8s} {'weights':>8s} {'x':>5s}"
          f"  {'ram':>8s} {'max act':>8s} {'x':>5s}  T_inf")
    with tempfile.TemporaryDirectory(prefix="swsc-bench-c-") as tmp:
        for m in models:
            r = bench(m, opts, a.samples, a.cc, Path(tmp))
            print(f"{m.stem:26s} {r['c_fps']:9.0f} {r['ort_fps']:9.0f} {r['c_fps'] / r['ort_fps']:6.2f}  "
                  f"{r['flash']:8d} {r['weights']:8d} {r['flash'] / max(r['weights'], 1):5.2f}  "
                  f"{r['ram']:8d} {r['act']:8d} {r['ram'] / max(r['act'], 1):5.1f}  {r['t_inf']}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
