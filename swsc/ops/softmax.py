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

    # -- numpy runtime

    # -- C backend
