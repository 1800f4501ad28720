"""Addition: ``QAdd`` (residual Add, requantization) and the weighted-add synapse of fused layers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from swsc.errors import SwscError
from swsc.errors import UnsupportedOpError

from .base import Op, Synapse, broadcast, register
from .base import inputs_of, prod


@register
class QAdd(Op):
    name = "QAdd"
    inputs = ("*x",)
    attrs = {}
    doc = "sum of requantized inputs (a residual Add; one input = a requantization); a constant input is a quantized constant operand"

    def shape(self, graph, node):
        return [broadcast([graph.tensors[i].shape for i in node.inputs], node)]

    # -- reference (ANN)

    # -- passes

    # -- numpy runtime

    # -- C backend


@register
class AddSynapse(Synapse):
    """The add synapse of Affine/TsaLayer (``kind = "add"``)."""
    name = "add"

    def shape(self, graph, node):
        n = node.attrs["n_inputs"]
        return [broadcast([graph.tensors[i].shape for i in node.inputs[:n]], node)]

    # -- reference (ANN)

    # -- passes

    # -- numpy runtime

    # -- C backend
    def c_plan(self, pl, node, ident, xs):
        """A weighted-add layer's loops (add.c.j2): per neuron, the weighted sum of its inputs'
        spikes; an input broadcast per channel or as a scalar reads with stride 0."""
        ins = inputs_of(node)
        w = pl.const(ins.wq).reshape(-1)
        if w.size != len(ins.x):
            raise SwscError(f"add layer has {w.size} weights for {len(ins.x)} inputs", node=node.name, op=node.op)
        frame = pl.frame(node.outputs[0])
        npos = prod(frame[1:])
        terms = []
        for buf, name, wk in zip(xs, ins.x, w.tolist()):
            fr = pl.frame(name)
            fr = (1,) * (len(frame) - len(fr)) + tuple(fr)
            if tuple(fr) == tuple(frame):
                m_stride, p_stride = npos, 1
            elif all(v == 1 for v in fr[1:]) and fr[0] == frame[0]:
                m_stride, p_stride = 1, 0
            elif all(v == 1 for v in fr):
                m_stride, p_stride = 0, 0
            else:
                raise UnsupportedOpError([(node.name, node.op, f"broadcast of an input {fr} to {frame}")])
            terms.append(AddTerm(buf=buf, w=pl.c_int(wk), m_stride=m_stride, p_stride=p_stride))
        return AddPlan(terms=terms, M=frame[0], npos=npos, fan=int(np.abs(w).sum()), flash=4 * len(terms))


# ---- C backend helpers
@dataclass
class AddTerm:
    """One input of a weighted add: weight ``w`` (a C literal); neuron (m, p) reads its train
    ``m * m_stride + p * p_stride`` (strides 0 broadcast it)."""
    buf: object
    w: str
    m_stride: int
    p_stride: int


@dataclass
class AddPlan:
    """The add synapse's part of a TSA layer's C step (add.c.j2): ``M`` channels of ``npos``
    positions, each the weighted sum of the ``terms``; ``fan`` bounds |acc|."""
    template: ClassVar[str] = "ops/add.c.j2"
    spatial: ClassVar[bool] = False
    terms: list
    M: int
    npos: int
    fan: int
    flash: int

    def scratch(self, msize: int, per_channel: bool, mask_bytes: int, tc: int) -> int:
        """One neuron at a time: its membrane and state."""
        return 2 * msize + 4
