"""Max pooling: ``MaxPool`` on integer tensors and ``SpikeMaxPool`` on spike trains."""
from __future__ import annotations

from .base import GEOM, Op, register, spatial_shape
from .base import one_theta


@register
class MaxPool(Op):
    name = "MaxPool"
    inputs = ("x",)
    attrs = {**GEOM}
    doc = "max pool on an integer tensor"

    def shape(self, graph, node):
        x = graph.tensors[node.inputs[0]].shape
        return spatial_shape(node, x, x[1])

    # -- reference (ANN)

    # -- passes
    def rescale(self, graph, node, coding):
        one_theta(graph, node)     # the running max passes its input frames on as they are
        return False

    def lower_sws(self, graph, node, options):
        """-> ``SpikeMaxPool``: the exact running max of spike trains (semantics section 5)."""
        node.op = SpikeMaxPool.name
        return True

    # -- numpy runtime

    # -- C backend

@register
class SpikeMaxPool(Op):
    name = "SpikeMaxPool"
    inputs = ("x",)
    attrs = {**GEOM}
    doc = "exact running-max pooling of spike trains"
    spike_inputs = True
    spike_output = True

    def shape(self, graph, node):
        x = graph.tensors[node.inputs[0]].shape
        return spatial_shape(node, x, x[1])

    # -- reference (ANN)

    # -- passes

    # -- numpy runtime

    # -- C backend
