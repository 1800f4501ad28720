"""The output dequantizer: ``Dequantize`` (canonical graph) and ``SwsDecode`` (its spiking form)."""
from __future__ import annotations

from .base import Op, register


@register
class Dequantize(Op):
    name = "Dequantize"
    inputs = ("x",)
    attrs = {}
    doc = "integer tensor -> float32 scale*(q - zp)"

    # -- reference (ANN)

    # -- passes

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

    # -- numpy runtime

    # -- C backend
