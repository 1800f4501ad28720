"""Convolution: ``QConv`` (the quantized ONNX Conv) and the conv synapse of fused layers."""
from __future__ import annotations

from swsc.errors import IRVerifyError

from .base import GEOM, SYNAPSES, Op, Synapse, register, spatial_shape


@register
class QConv(Op):
    name = "QConv"
    inputs = ("x", "w", "bias?")
    attrs = {**GEOM, "group": False}
    doc = "quantized Conv; bias is float64 in accumulator units (x_scale*w_scale)"

    def shape(self, graph, node):
        return SYNAPSES["conv"].shape(graph, node)

    # -- reference (ANN)

    # -- passes

    # -- numpy runtime

    # -- C backend


@register
class ConvSynapse(Synapse):
    """The conv synapse of Affine/TsaLayer (``kind = "conv"``)."""
    name = "conv"

    def shape(self, graph, node):
        x, w = graph.tensors[node.inputs[0]].shape, graph.tensors[node.inputs[1]].shape
        group = node.attrs.get("group", 1)
        if len(x) != len(w) or x[1] != w[1] * group:
            raise IRVerifyError(f"conv input {x} does not match weight {w} with group {group}",
                                node=node.name, op=node.op)
        if list(w[2:]) != list(node.attrs["kernel"]):
            raise IRVerifyError(f"kernel attr {node.attrs['kernel']} != weight {w}", node=node.name, op=node.op)
        return spatial_shape(node, x, w[0])

    # -- reference (ANN)

    # -- passes

    # -- numpy runtime

    # -- C backend
