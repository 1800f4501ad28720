"""``Softmax``: the float tail on decoded outputs."""
from __future__ import annotations

import numpy as np

from .base import Op, register


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
