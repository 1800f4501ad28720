"""Convolution: ``QConv`` (the quantized ONNX Conv) and the conv synapse of fused layers."""
from __future__ import annotations

import numpy as np

from swsc.errors import IRVerifyError
from swsc import kernels

from .base import GEOM, SYNAPSES, Op, Synapse, register, spatial_shape
from .base import fold_linear, inputs_of, model_int_weights


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
    def fold(self, graph, node):
        return fold_linear(graph, node, SYNAPSES["conv"])

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
    def fold_bias(self, graph, node, w_tilde, const, shift):
        """b~ = const + shift * (sum of W~ over the taps inside the input): a per-position map
        where padding cuts taps off, else one value per channel."""
        x = graph.tensors[inputs_of(node).x]
        tap_sum = kernels.conv2d(np.ones((1,) + x.shape[1:]), w_tilde, node.attrs)[0]
        b = const.reshape(-1, 1, 1) + shift * tap_sum
        if np.all(b == b[:, :1, :1]):
            b = b[:, :1, :1].copy()
        return b

    def int_weights(self, graph, node, W, b):
        return model_int_weights(graph, node, b)

    # -- numpy runtime

    # -- C backend
