"""``Reshape``: a static reshape, of integer tensors and spike frames alike."""
from __future__ import annotations

from swsc.errors import IRVerifyError

from .base import Op, prod, register


@register
class Reshape(Op):
    name = "Reshape"
    inputs = ("x",)
    attrs = {"shape": True}
    doc = "static reshape"
    structural = True

    def shape(self, graph, node):
        x = graph.tensors[node.inputs[0]].shape
        target = tuple(node.attrs["shape"])
        if prod(x) != prod(target):
            raise IRVerifyError(f"cannot reshape {x} to {target}", node=node.name, op=node.op)
        return [target]

    # -- reference (ANN)
    def reference(self, graph, node, env):
        x = env[node.inputs[0]]
        return x.reshape((x.shape[0],) + tuple(node.attrs["shape"][1:]))

    # -- numpy runtime
    def run(self, rt, node, env, stats):
        """Frames keep their leading Tc axis (``rt.lead``); the batch axis stays free."""
        x = env[node.inputs[0]]
        lead = rt.lead(node.inputs[0])
        return x.reshape(x.shape[:lead + 1] + tuple(node.attrs["shape"][1:]))

    # -- C backend
    def c_plan(self, pl, node, idx):
        """No step: C-order elements, so a reshaped spike tensor is the same bytes."""
        pl.require_spikes(node)
        pl.alias(node.outputs[0], node.inputs[0], idx)
        return None
