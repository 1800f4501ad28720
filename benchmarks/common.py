"""What the benchmark scripts share."""
from __future__ import annotations

import time


def best_of(*fns, repeats: int = 7) -> list[float]:
    """For each callable, the fastest of ``repeats`` timed calls, in seconds: the least
    disturbed by other work. The calls are interleaved round by round, so a slow spell of
    a shared machine hits every contender alike and ratios stay fair."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def parser(doc: str):
    """The options every benchmark takes: models (default: the bundled samples), Tc, Ts, samples."""
    import argparse
    from pathlib import Path

    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("models", nargs="*", type=Path, help="quantized .onnx models (default: samples/*.onnx)")
    p.add_argument("--tc", type=int, default=8)
    p.add_argument("--ts", type=int, default=2)
    p.add_argument("--samples", type=int, default=512)
    return p


def inputs(model, graph, samples: int):
    """The sample's own test images (samples/<stem>_test.npz) where they exist, else uniform noise."""
    import numpy as np

    data = model.with_name(model.stem + "_test.npz")
    if data.exists():
        return np.load(data)["x"][:samples].astype(np.float32)
    frame = graph.tensors[graph.inputs[0]].shape[1:]
    return np.random.default_rng(0).uniform(0, 1, (samples,) + frame).astype(np.float32)
