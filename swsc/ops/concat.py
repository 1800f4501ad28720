"""``Concat`` of equally quantized inputs, of integer tensors and spike frames alike."""
from __future__ import annotations

import numpy as np

from swsc.errors import IRVerifyError

from .base import Op, register
from .base import inputs_of


@register
class Concat(Op):
    name = "Concat"
    inputs = ("*x",)
    attrs = {"axis": True}
    doc = "concat of equally quantized inputs"
    structural = True

    def shape(self, graph, node):
        shapes = [graph.tensors[i].shape for i in node.inputs]
        axis = node.attrs["axis"]
        first = list(shapes[0])
        for s in shapes[1:]:
            if len(s) != len(first) or any(a != b for j, (a, b) in enumerate(zip(s, first)) if j != axis):
                raise IRVerifyError(f"concat shapes {shapes} differ off axis {axis}", node=node.name, op=node.op)
        first[axis] = sum(s[axis] for s in shapes)
        return [tuple(first)]

    # -- reference (ANN)
    def reference(self, graph, node, env):
        return np.concatenate([env[i] for i in inputs_of(node).x], axis=node.attrs["axis"])

    # -- passes

    # -- numpy runtime
    def run(self, rt, node, env, stats):
        xs = inputs_of(node).x
        return np.concatenate([env[i] for i in xs], axis=node.attrs["axis"] + rt.lead(xs[0]))

    # -- C backend
