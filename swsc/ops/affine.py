"""``Affine``: the integer-domain layer of fold-zero-points (paper eq. 15-17)."""
from __future__ import annotations

from .base import GEOM, Op, register, synapse_of


@register
class Affine(Op):
    name = "Affine"
    inputs = ("*x", "w", "b", "wq?")
    attrs = {"kind": True, "n_inputs": True, **{k: False for k in GEOM}, "group": False, "count_include_pad": False,
             "code_sum": False}
    doc = ("code_o = clamp(round(W~ . code_i + b~), 0, hi') on codes q - lo (eq. 15-17)")

    def shape(self, graph, node):
        return synapse_of(node).shape(graph, node)

    # -- reference (ANN)

    # -- passes

    # -- numpy runtime

    # -- C backend
