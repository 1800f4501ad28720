"""``Slice``: a static strided selection, of integer tensors and spike frames alike.

ONNX ``Slice`` (constant starts/ends/axes/steps, opset 10+; attributes before) picks, on each
axis, the indices ``start, start + step, ...`` (``step`` may be negative). It only selects
values, so it commutes with (de)quantization and with SWS coding: the output spike train of
an element is the input train of the element it selects, and the op adds no latency.

In the IR the selection is normalized per axis of the input, batch axis included (which must
stay whole): ``starts[a]`` (0 <= start < dim) and ``steps[a]`` (!= 0); the output tensor's
shape gives the count on each axis. The front-end's handler is ``op_Slice`` in
swsc/frontend/match_structural.py, which computes that normalization.
"""
from __future__ import annotations

import numpy as np

from swsc.errors import IRVerifyError

from .base import Op, prod, register
from .transpose import TransposeDim, TransposePlan


def selection(in_shape, starts, ends, axes, steps) -> tuple[list[int], list[int], list[int]]:
    """ONNX Slice's indices per axis of ``in_shape`` as (starts, steps, counts): negative
    starts/ends count from the end, out-of-range ones clamp (ONNX = Python slice rules)."""
    full_start, full_step, count = [0] * len(in_shape), [1] * len(in_shape), list(in_shape)
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = a + len(in_shape) if a < 0 else a
        if st == 0:
            raise ValueError("step 0")
        r = range(*slice(int(s), int(e), int(st)).indices(in_shape[a]))
        full_start[a], full_step[a], count[a] = (r.start if len(r) else 0), int(st), len(r)
    return full_start, full_step, count


@register
class Slice(Op):
    name = "Slice"
    inputs = ("x",)
    attrs = {"starts": True, "steps": True}
    doc = "static strided selection (ONNX Slice, normalized: start and step per input axis)"
    structural = True

    def shape(self, graph, node):
        x = graph.tensors[node.inputs[0]].shape
        out = graph.tensors[node.outputs[0]].shape
        starts, steps = node.attrs["starts"], node.attrs["steps"]
        if not (len(starts) == len(steps) == len(x) == len(out)):
            raise IRVerifyError(f"starts {starts} / steps {steps} do not fit rank {len(x)}", node=node.name, op=node.op)
        for a, (d, s, st, n) in enumerate(zip(x, starts, steps, out)):
            last = s + (n - 1) * st
            if st == 0 or n < 1 or not (0 <= s < d and 0 <= last < d):
                raise IRVerifyError(f"axis {a}: {n} indices from {s} by {st} leave [0, {d})",
                                    node=node.name, op=node.op)
        if starts[0] != 0 or steps[0] != 1:
            raise IRVerifyError("a slice must keep the batch axis whole", node=node.name, op=node.op)
        return [tuple(out)]

    # -- reference (ANN)
    def reference(self, graph, node, env):
        return _take(env[node.inputs[0]], node, graph.tensors[node.outputs[0]].shape, 0)

    # -- passes
    # (structural: rescale checks equal amplitudes, lower-to-sws keeps it; nothing op-specific)

    # -- numpy runtime
    def run(self, rt, node, env, stats):
        return _take(env[node.inputs[0]], node, rt.g.tensors[node.outputs[0]].shape, rt.lead(node.inputs[0]))

    # -- C backend
    def c_plan(self, pl, node, idx):
        """A strided copy of spike trains: the transpose's index remap with a start offset."""
        pl.require_spikes(node)
        inf = pl.frame(node.inputs[0])
        outf = pl.frame(node.outputs[0])
        strides = [prod(inf[i + 1:]) for i in range(len(inf))]
        starts, steps = node.attrs["starts"][1:], node.attrs["steps"][1:]
        base = sum(s * st for s, st in zip(starts, strides))
        dims = [TransposeDim(n=outf[j], stride=steps[j] * strides[j]) for j in range(len(outf))]
        inp = pl.spike_in(node.inputs[0], idx)
        out = pl.new_buffer(node.outputs[0], idx)
        pl.report(node, 0, pl.spike_bytes(node.outputs[0]))
        return TransposePlan(fn=pl.fn(idx, pl.ident(node)), comment=pl.comment(node.name), inp=inp, out=out,
                             dims=dims, base=base)


def _take(x: np.ndarray, node, out_shape, lead: int) -> np.ndarray:
    """The selection of ``node`` from a runtime value with ``lead`` leading axes; the batch
    axis is taken whole whatever the batch size."""
    idx = [slice(None)] * (lead + 1)
    for s, st, n in zip(node.attrs["starts"][1:], node.attrs["steps"][1:], out_shape[1:]):
        idx.append(slice(s, s + n * st if s + n * st >= 0 else None, st))
    return np.ascontiguousarray(x[tuple(idx)])
