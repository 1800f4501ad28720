"""Max pooling: ``MaxPool`` on integer tensors and ``SpikeMaxPool`` on spike trains."""
from __future__ import annotations

from swsc import kernels, loops

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
    def reference(self, graph, node, env):
        return kernels.max_pool(env[node.inputs[0]], node.attrs)

    # -- passes
    def rescale(self, graph, node, coding):
        one_theta(graph, node)     # the running max passes its input frames on as they are
        return False

    def lower_sws(self, graph, node, options):
        """-> ``SpikeMaxPool``: the exact running max of spike trains (semantics section 5)."""
        node.op = SpikeMaxPool.name
        return True

    # -- numpy runtime
    def run(self, rt, node, env, stats):
        return kernels.max_pool(env[node.inputs[0]], node.attrs)

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
    def run(self, rt, node, env, stats):
        return loops.max_pool_spikes(env[node.inputs[0]], node.attrs, rt.g.coding.beta)

    # -- C backend
