"""Addition: ``QAdd`` (residual Add, requantization) and the weighted-add synapse of fused layers."""
from __future__ import annotations

from .base import Op, Synapse, broadcast, register


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
