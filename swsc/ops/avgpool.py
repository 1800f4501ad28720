"""Average pooling: ``QAvgPool`` and the sum-pool synapse (``kind = "avgpool"``) of fused layers."""
from __future__ import annotations

from .base import GEOM, Op, Synapse, register, spatial_shape


@register
class QAvgPool(Op):
    name = "QAvgPool"
    inputs = ("x",)
    attrs = {**GEOM, "count_include_pad": False}
    doc = "quantized average pool (global pooling is a kernel over the whole plane)"

    def shape(self, graph, node):
        x = graph.tensors[node.inputs[0]].shape
        return spatial_shape(node, x, x[1])

    # -- reference (ANN)

    # -- passes

    # -- numpy runtime

    # -- C backend


@register
class AvgPoolSynapse(Synapse):
    """The avgpool synapse of Affine/TsaLayer (``kind = "avgpool"``)."""
    name = "avgpool"

    def shape(self, graph, node):
        x = graph.tensors[node.inputs[0]].shape
        return spatial_shape(node, x, x[1])

    # -- reference (ANN)

    # -- passes

    # -- numpy runtime

    # -- C backend
