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

#: float32 represents every integer up to 2^24 exactly
FLOAT32_EXACT = 2.0 ** 24
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
                            hint="set SWSC_MEMORY_BUDGET or pass budget=") from None
    if n < 1 << 20:
        raise SwscError(f"memory budget {value!r} is below 1M", hint="set SWSC_MEMORY_BUDGET to e.g. 1G")
    return n


def _size(g: Graph, name: str) -> int:
    return int(np.prod(g.tensors[name].shape[1:], dtype=np.int64))


def value_bytes(g: Graph, name: str) -> int:
    """Bytes one sample of a runtime value takes (int8 frames, float32, float64 codes)."""
    t = g.tensors[name]
    n = _size(g, name)
    if t.dtype == "spike":
        return n * int(t.window[1] if t.window else 8)
    return n * (4 if t.dtype == "float32" else 8)


def work_bytes(g: Graph, node: Node, row_l1: dict, residuals: bool) -> int:
    """Transient bytes per sample while ``node`` runs, beyond its inputs and output: for a TSA
    layer its GEMM operands over up to Tc frames (float32, or float64 for wide layers), the
    membranes and emitted values, the residual statistics; decoding converts frames to float64."""
    if node.op == "TsaLayer":
        tc, n = int(node.attrs["tc"]), node.attrs["n_inputs"]
        n_in = sum(_size(g, i) for i in node.inputs[:n])
        n_out = _size(g, node.outputs[0])
        width = 4 if node.name in row_l1 and row_l1[node.name] * 2 ** tc < FLOAT32_EXACT else 8
        cols = 1
        if node.attrs["kind"] == "conv" and width == 8:   # numpy's im2col columns
            cols = int(np.prod(node.attrs["kernel"]))
        # onnxruntime's conv output may be copied once: the GEMM result is there twice for a moment
        return width * tc * (n_in * cols + 2 * n_out) + 16 * n_out + (40 * n_out if residuals else 0)
    if node.op == "SwsEncode":
        return 40 * _size(g, node.outputs[0])
    if node.op == "SwsDecode":
        return 8 * value_bytes(g, node.inputs[0])
    if node.op == "Affine":   # float64 numpy: a channels-last copy, im2col columns, the GEMM result
        n_in = sum(_size(g, i) for i in node.inputs[:node.attrs["n_inputs"]])
        taps = int(np.prod(node.attrs.get("kernel", [1]))) if node.attrs["kind"] == "conv" else 1
        return 8 * (n_in * (1 + taps) + 3 * _size(g, node.outputs[0]))
    return value_bytes(g, node.outputs[0])


def sample_bytes(g: Graph, order: list[Node], dead_after: list[list[str]], row_l1: dict, residuals: bool,
                 intermediate: bool = False) -> int:
    """Peak bytes per sample of one batch: the live values (each freed after its last reader,
    ``dead_after[i]`` after node i) plus the working set of the node being run; with
    ``intermediate`` also every decoded tensor, which is kept."""
    live = sum(value_bytes(g, i) for i in g.inputs)
    kept = peak = 0
    for i, node in enumerate(order):
        out = value_bytes(g, node.outputs[0])
        peak = max(peak, live + kept + out + work_bytes(g, node, row_l1, residuals))
        live += out - sum(value_bytes(g, t) for t in dead_after[i] if t in g.tensors)
        if intermediate and g.tensors[node.outputs[0]].quant is not None:
            kept += 8 * _size(g, node.outputs[0])
    return max(peak, 1)
