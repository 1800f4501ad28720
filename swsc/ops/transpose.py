"""``Transpose``, of integer tensors and spike frames alike."""
from __future__ import annotations

import numpy as np

from swsc.errors import IRVerifyError

from .base import Op, register


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

    # -- passes

    # -- numpy runtime
    def run(self, rt, node, env, stats):
        lead = rt.lead(node.inputs[0])
        perm = list(range(lead)) + [p + lead for p in node.attrs["perm"]]
        return np.ascontiguousarray(env[node.inputs[0]].transpose(perm))

    # -- C backend
