"""``Transpose``, of integer tensors and spike frames alike."""
from __future__ import annotations

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

    # -- passes

    # -- numpy runtime

    # -- C backend
