"""The output dequantizer: ``Dequantize`` (canonical graph) and ``SwsDecode`` (its spiking form)."""
from __future__ import annotations

from .base import Op, register
from .base import inputs_of


@register
class Dequantize(Op):
    name = "Dequantize"
    inputs = ("x",)
    attrs = {}
    doc = "integer tensor -> float32 scale*(q - zp)"

    # -- reference (ANN)

    # -- passes
    def lower_sws(self, graph, node, options):
        """-> ``SwsDecode``: the spike trains' values, dequantized."""
        node.op = SwsDecode.name
        return True

    # -- numpy runtime

    # -- C backend

@register
class SwsDecode(Op):
    name = "SwsDecode"
    inputs = ("x",)
    attrs = {"int_theta_q16": False}
    doc = "decode spikes to the dequantized float output"
    spike_inputs = True

    # -- reference (ANN)

    # -- passes
    def lower_int(self, graph, node, lowering):
        """The decoder's theta in Q16, where it is not 1."""
        theta = graph.tensors[inputs_of(node).x].quant.theta or 1.0
        if theta == 1.0:
            return False
        node.attrs["int_theta_q16"] = int(round(theta * 65536))
        return True

    # -- numpy runtime

    # -- C backend
