"""``Softmax``: the float tail on decoded outputs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from swsc.errors import UnsupportedOpError

from .base import Op, prod, register


@register
class Softmax(Op):
    name = "Softmax"
    inputs = ("x",)
    attrs = {"axis": True}
    doc = "float softmax on decoded outputs"

    # -- reference (ANN)
    def reference(self, graph, node, env):
        x = env[node.inputs[0]].astype(np.float32)
        ax = node.attrs["axis"]
        e = np.exp(x - x.max(axis=ax, keepdims=True))
        return (e / e.sum(axis=ax, keepdims=True)).astype(np.float32)

    # -- passes
    def lower_sws(self, graph, node, options):
        return False     # a float op: it stays as it is around the spiking part

    # -- numpy runtime
    def run(self, rt, node, env, stats):
        x = env[node.inputs[0]].astype(np.float32)
        e = np.exp(x - x.max(axis=node.attrs["axis"], keepdims=True))
        return e / e.sum(axis=node.attrs["axis"], keepdims=True)

    # -- C backend
    def c_plan(self, pl, node, idx):
        """Softmax on a decoded output: part of the float tail (``<prefix>_apply_tail``), no core step."""
        src = node.inputs[0]
        out = pl.output_of(src)
        if out is None or out.softmax is not None:
            raise UnsupportedOpError([(node.name, node.op, "a Softmax that does not follow a decoder")])
        if len(pl.g.consumers(src)) > 1 or src in pl.g.outputs:
            raise UnsupportedOpError([(node.name, node.op, "a decoded output used by more than the Softmax")])
        dims = out.dims
        fa = pl.frame_axis(node, len(dims) + 1, "softmax over the batch axis")
        inner = prod(dims[fa + 1:])
        out.softmax = SoftmaxPlan(outer=prod(dims[:fa]), length=dims[fa], inner=inner, stride=dims[fa] * inner)
        out.tensor = node.outputs[0]
        return None


# ---- C backend helpers
@dataclass
class SoftmaxPlan:
    """The float tail of one output (softmax.c.j2, rendered into ``<prefix>_float.c`` with
    its output ``o``): ``outer`` x ``inner`` softmaxes over ``length`` values ``inner`` apart,
    ``stride`` values between one outer index and the next."""
    template: ClassVar[str] = "ops/softmax.c.j2"
    outer: int
    length: int
    inner: int
    stride: int
