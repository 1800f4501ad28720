"""The input quantizer: ``Quantize`` (canonical graph) and ``SwsEncode`` (its spiking form)."""
from __future__ import annotations

from .base import Op, register


@register
class Quantize(Op):
    name = "Quantize"
    inputs = ("x",)
    attrs = {}
    doc = "float input -> integer tensor: clamp(rint(x/scale)+zp, lo, hi)"

    # -- reference (ANN)

    # -- passes

    # -- numpy runtime

    # -- C backend

@register
class SwsEncode(Op):
    name = "SwsEncode"
    inputs = ("x", "lut?")
    attrs = {"encoder": True, "ts": True, "tc": True, "beta": True}
    doc = "quantize the float input and emit its SWS code (exact or tsa encoder)"
    spike_output = True

    # -- reference (ANN)

    # -- passes

    # -- numpy runtime

    # -- C backend
