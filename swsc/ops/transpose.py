"""``Transpose``, of integer tensors and spike frames alike."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from swsc.errors import IRVerifyError, UnsupportedOpError

from .base import Op, prod, register


@register
class Transpose(Op):
    name = "Transpose"
    inputs = ("x",)
    attrs = {"perm": True}
    doc = "transpose"
    structural = True

    def shape(self, graph, node):
        x = graph.tensors[node.inputs[0]].shape
        perm = node.attrs["perm"]
        if sorted(perm) != list(range(len(x))):
            raise IRVerifyError(f"perm {perm} does not fit rank {len(x)}", node=node.name, op=node.op)
        return [tuple(x[p] for p in perm)]

    # -- reference (ANN)
    def reference(self, graph, node, env):
        return np.transpose(env[node.inputs[0]], node.attrs["perm"])

    # -- numpy runtime
    def run(self, rt, node, env, stats):
        lead = rt.lead(node.inputs[0])
        perm = list(range(lead)) + [p + lead for p in node.attrs["perm"]]
        return np.ascontiguousarray(env[node.inputs[0]].transpose(perm))

    # -- C backend
    def c_plan(self, pl, node, idx):
        """An index remap of spike trains: the output in order, each from its input stride."""
        pl.require_spikes(node)
        perm = [int(v) for v in node.attrs["perm"]]
        if perm[0] != 0:
            raise UnsupportedOpError([(node.name, node.op, "a transpose that moves the batch axis")])
        fperm = [v - 1 for v in perm[1:]]
        inf = pl.frame(node.inputs[0])
        strides = [prod(inf[i + 1:]) for i in range(len(inf))]
        outf = pl.frame(node.outputs[0])
        inp = pl.spike_in(node.inputs[0], idx)
        out = pl.new_buffer(node.outputs[0], idx)
        ident = pl.ident(node)
        dims = [TransposeDim(n=outf[j], stride=strides[fperm[j]]) for j in range(len(outf))]
        pl.report(node, 0, pl.spike_bytes(node.outputs[0]))
        return TransposePlan(fn=pl.fn(idx, ident), comment=pl.comment(node.name), inp=inp, out=out, dims=dims)


# ---- C backend helpers
@dataclass
class TransposeDim:
    """One output axis of a transpose: ``n`` indices, ``stride`` trains apart in the input."""
    n: int
    stride: int


@dataclass
class TransposePlan:
    """The transpose's C step (transpose.c.j2): the output trains in C order, one loop per
    axis of ``dims`` (outermost first), each read from the input at the dims' strides, from
    train ``base`` on (0 here; a Slice's first selected train)."""
    template: ClassVar[str] = "ops/transpose.c.j2"
    fn: str
    comment: str
    inp: object
    out: object
    dims: list
    base: int = 0
