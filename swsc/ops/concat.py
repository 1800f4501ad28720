"""``Concat`` of equally quantized inputs, of integer tensors and spike frames alike."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from swsc.errors import IRVerifyError

from .base import Op, inputs_of, prod, register


@register
class Concat(Op):
    name = "Concat"
    inputs = ("*x",)
    attrs = {"axis": True}
    doc = "concat of equally quantized inputs"
    structural = True

    def shape(self, graph, node):
        shapes = [graph.tensors[i].shape for i in node.inputs]
        axis = node.attrs["axis"]
        first = list(shapes[0])
        for s in shapes[1:]:
            if len(s) != len(first) or any(a != b for j, (a, b) in enumerate(zip(s, first)) if j != axis):
                raise IRVerifyError(f"concat shapes {shapes} differ off axis {axis}", node=node.name, op=node.op)
        first[axis] = sum(s[axis] for s in shapes)
        return [tuple(first)]

    # -- front-end
    def build(self, fe, lin, y, rq, dt, q):
        """A Concat of differently quantized inputs: each input not already on the output's grid
        ``rq`` is requantized by a one-input QAdd first; the output range spans the inputs'."""
        ins = []
        for i, v in enumerate(lin.x):
            x = fe.check_view(v)
            xq = fe.qof(x)
            if (not lin.clamped and fe.g.tensors[x].dtype == dt and np.float32(xq.scale) == np.float32(rq.scale)
                    and int(xq.zero_point) == int(rq.zero_point)):
                ins.append(x)
            else:
                ins.append(fe.emit("QAdd", f"{lin.node}_requant{i}", [x], f"{y}__in{i}", dt,
                                   fe.g.tensors[x].shape, copy.deepcopy(rq)))
        q.lo = min(fe.qof(i).lo for i in ins)
        q.hi = max(fe.qof(i).hi for i in ins)
        return fe.emit(self.name, lin.node, ins, y, dt, lin.shape, q, {"axis": lin.attrs["axis"]})

    # -- reference (ANN)
    def reference(self, graph, node, env):
        return np.concatenate([env[i] for i in inputs_of(node).x], axis=node.attrs["axis"])

    # -- numpy runtime
    def run(self, rt, node, env, stats):
        xs = inputs_of(node).x
        return np.concatenate([env[i] for i in xs], axis=node.attrs["axis"] + rt.lead(xs[0]))

    # -- C backend
    def c_plan(self, pl, node, idx):
        """Block copies: each outer index of the output holds one block of every input in turn."""
        pl.require_spikes(node)
        outf = pl.frame(node.outputs[0])
        fa = pl.frame_axis(node, len(outf) + 1, "a concat along the batch axis")
        outer = prod(outf[:fa])
        inner = prod(outf[fa + 1:]) * 2
        parts, off = [], 0
        for name in node.inputs:
            mid = pl.frame(name)[fa]
            parts.append(ConcatPart(buf=pl.spike_in(name, idx), block=mid * inner, dst=off * inner))
            off += mid
        out = pl.new_buffer(node.outputs[0], idx)
        ident = pl.ident(node)
        pl.report(node, 0, pl.spike_bytes(node.outputs[0]))
        return ConcatPlan(fn=pl.fn(idx, ident), comment=pl.comment(node.name), parts=parts, out=out, outer=outer,
                          row=outf[fa] * inner)


# ---- C backend helpers
@dataclass
class ConcatPart:
    """One input of a concat: ``block`` mask words per outer index, at word ``dst`` of the output row."""
    buf: object
    block: int
    dst: int


@dataclass
class ConcatPlan:
    """The concat's C step (concat.c.j2): for each of ``outer`` rows of ``row`` mask words,
    every part's block copied to its place."""
    template: ClassVar[str] = "ops/concat.c.j2"
    fn: str
    comment: str
    parts: list
    out: object
    outer: int
    row: int
