"""``Softmax``: the float tail on decoded outputs."""
from __future__ import annotations

from .base import Op, register


@register
class Softmax(Op):
    name = "Softmax"
    inputs = ("x",)
    attrs = {"axis": True}
    doc = "float softmax on decoded outputs"

    # -- reference (ANN)

    # -- passes
    def lower_sws(self, graph, node, options):
        return False     # a float op: it stays as it is around the spiking part

    # -- numpy runtime

    # -- C backend
