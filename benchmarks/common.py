"""What the benchmark scripts share."""
from __future__ import annotations

import time


def best_of(fn, repeats: int = 5) -> float:
    """The fastest of ``repeats`` timed calls, in seconds: the least disturbed by other work."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)
