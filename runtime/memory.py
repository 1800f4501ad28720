"""The numpy runtime's memory: the batch budget, the per-sample estimate batches are sized
from, and the allocator setting that lets freed layer arrays go back to the system.

A batch's peak is the live values (each freed after its last reader) plus the working set
of the node being run; ``sample_bytes`` walks the graph in execution order to find it, so
``budget // sample_bytes`` samples fit. Measured on MobileNetV2 (``benchmarks/bench_memory.py``,
budget 1G) the peak RSS stays near the budget whatever the number of frames (772 MiB at 4
frames, 1173 MiB at 27, with 326 MiB held before the run).
"""
from __future__ import annotations

import ctypes
import os

import numpy as np

from swsc.errors import SwscError
from swsc.ir import Graph, Node
from swsc.ops import op_of

M_MMAP_THRESHOLD = -3   # glibc's mallopt parameter number
_HEAP_SET = False


def return_freed_memory() -> None:
    """Serve large blocks from mmap, so freed arrays go back to the system. glibc otherwise
    raises its mmap threshold after each large free (up to 32 MB) and serves later layer-sized
    arrays from a heap that fragments and never shrinks: measured on MobileNetV2, peak RSS
    2.5 GB instead of 1.3 GB at the same batch. Once per process; a no-op off glibc."""
    global _HEAP_SET
    if _HEAP_SET:
        return
    _HEAP_SET = True
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 1 << 20)
    except (OSError, AttributeError):
        pass


def memory_budget(budget: int | str | None, default: int) -> int:
    """The batch memory budget in bytes: ``budget`` if given, else $SWSC_MEMORY_BUDGET, else
    ``default``. Accepts an integer or a string like '512M', '2G'."""
    value = budget if budget is not None else os.environ.get("SWSC_MEMORY_BUDGET")
    if value is None or value == "":
        return default
    if isinstance(value, (int, np.integer)):
        n = int(value)
    else:
        text = str(value).strip().upper().removesuffix("B")
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        try:
            n = int(float(text[:-1] if scale > 1 else text) * scale)
        except ValueError:
            raise SwscError(f"memory budget must be bytes or a size like 512M or 2G, got {value!r}",
                            hint="--memory-budget 2G, or SWSC_MEMORY_BUDGET=2G") from None
    if n < 1 << 20:
        raise SwscError(f"memory budget {value!r} is below 1M", hint="--memory-budget 1G, or SWSC_MEMORY_BUDGET=1G")
    return n


class Footprint:
    """What an op's ``sim_bytes(mem, node)`` hook reads: the graph, per-sample sizes and
    value bytes, the integer weights' row norms of the interpreter, whether residual
    statistics are kept. An op without the hook needs only its output's bytes."""

    def __init__(self, rt):
        self.g = rt.g
        self.residuals = rt.residuals
        self._rt = rt

    def size(self, name: str) -> int:
        """Elements of one sample of the tensor."""
        return int(np.prod(self.g.tensors[name].shape[1:], dtype=np.int64))

    def value_bytes(self, name: str) -> int:
        return value_bytes(self.g, name)

    def row_l1(self, node: Node) -> float | None:
        """The largest L1 norm of a row of the layer's integer weights (None without them)."""
        return self._rt.row_l1(node)


def _size(g: Graph, name: str) -> int:
    return int(np.prod(g.tensors[name].shape[1:], dtype=np.int64))


def value_bytes(g: Graph, name: str) -> int:
    """Bytes one sample of a runtime value takes (int8 frames, float32, float64 codes)."""
    t = g.tensors[name]
    n = _size(g, name)
    if t.dtype == "spike":
        return n * g.coding.tc
    return n * (4 if t.dtype == "float32" else 8)


def work_bytes(mem: Footprint, node: Node) -> int:
    """Transient bytes per sample while ``node`` runs, beyond its inputs and output: the op's
    ``sim_bytes`` hook, by default the output once more."""
    hook = getattr(op_of(node), "sim_bytes", None)
    return hook(mem, node) if hook is not None else value_bytes(mem.g, node.outputs[0])


def sample_bytes(rt, intermediate: bool = False) -> int:
    """Peak bytes per sample of one batch of the Interpreter ``rt``: the live values (each
    freed after its last reader, ``rt._dead_after[i]`` after node i) plus the working set of
    the node being run; with ``intermediate`` also every decoded tensor, which is kept."""
    g, mem = rt.g, Footprint(rt)
    live = sum(value_bytes(g, i) for i in g.inputs)
    kept = peak = 0
    for i, node in enumerate(rt.order):
        out = value_bytes(g, node.outputs[0])
        peak = max(peak, live + kept + out + work_bytes(mem, node))
        live += out - sum(value_bytes(g, t) for t in rt._dead_after[i] if t in g.tensors)
        if intermediate and g.tensors[node.outputs[0]].quant is not None:
            kept += 8 * _size(g, node.outputs[0])
    return max(peak, 1)
