"""Benchmark: peak RSS of the numpy SWS runtime against the number of frames, beside
onnxruntime's on the same frames (each measured in a fresh process, so one run's memory
cannot hide in another's).

The runtime sizes its batches so that live values plus one layer's working set fit its
budget (SWSC_MEMORY_BUDGET, default 1G); peak RSS should then stay flat in the number of
frames. With ``--check``, a column for ``swsc check`` on the same frames (the reference, the
runtime with every tensor decoded and the isolated layers, streamed in chunks the budget
holds). Default model: MobileNetV2-12-int8 (../shared/models) on natural photos.

    python benchmarks/bench_memory.py [--frames 4,16,54] [--budget 1G] [--ts 2] [--check]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT.parent / "shared" / "models" / "mobilenetv2-12-int8.onnx"

CHILD = """
import sys, resource
import numpy as np
sys.path.insert(0, {root!r})
from samples.photos import SOURCES, VIEWS, imagenet_photos
x, _ = imagenet_photos(SOURCES, views=VIEWS)
x = np.concatenate([x] * (1 + {frames} // len(x)))[:{frames}]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if {who!r} == "ort":
    from swsc.oracle import Oracle
    Oracle({model!r}, threads=1).run(x, chunk=16)
elif {who!r} == "check":
    import os, tempfile
    from swsc.check import check
    from swsc.options import CompileOptions
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "frames.npz")
        np.savez(path, x=x)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        check({model!r}, path, CompileOptions(ts={ts}), input_shape=(1, 3, 224, 224), progress=False)
else:
    from swsc.compiler import compile_graph, import_onnx
    from swsc.options import CompileOptions
    from swsc.runtime.interpreter import run
    run(compile_graph(import_onnx({model!r}, (1, 3, 224, 224)), CompileOptions(ts={ts})), x)
print(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak(who: str, frames: int, ts: int, budget: str) -> tuple[float, float]:
    """(RSS before the run, peak RSS) in MiB of a fresh process running ``frames`` frames."""
    env = dict(os.environ, SWSC_MEMORY_BUDGET=budget)
    code = CHILD.format(root=str(ROOT), frames=frames, who=who, model=str(MODEL), ts=ts)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    base, top = map(int, out.stdout.split()[-2:])
    return base / 1024, top / 1024


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", default="4,16,54")
    p.add_argument("--budget", default="1G")
    p.add_argument("--ts", type=int, default=2)
    p.add_argument("--check", action="store_true", help="also measure swsc check on the frames")
    a = p.parse_args(argv)
    if not MODEL.exists():
        sys.exit(f"{MODEL} not found (needs ../shared/models)")
    print(f"{'frames':>6s} {'ort peak MiB':>12s} {'snn peak MiB':>12s} {'snn before run':>14s} {'ratio':>6s}"
          + (f" {'check peak MiB':>14s}" if a.check else "") + f"   (budget {a.budget})")
    for n in (int(v) for v in a.frames.split(",")):
        _, ort = peak("ort", n, a.ts, a.budget)
        base, snn = peak("snn", n, a.ts, a.budget)
        extra = f" {peak('check', n, a.ts, a.budget)[1]:14.0f}" if a.check else ""
        print(f"{n:6d} {ort:12.0f} {snn:12.0f} {base:14.0f} {snn / ort:6.1f}{extra}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
