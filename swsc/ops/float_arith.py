"""``FloatArith``: float pre-processing before the input quantizer (normalization)."""
from __future__ import annotations

from swsc import kernels

from .base import Op, broadcast, inputs_of, register


@register
class FloatArith(Op):
    name = "FloatArith"
    inputs = ("x", "c")
    attrs = {"op": True, "reverse": False}
    doc = "float32 x op c (op Add/Sub/Mul/Div; reverse: c op x) of the float input, e.g. normalization"

    def shape(self, graph, node):
        return [broadcast([graph.tensors[i].shape for i in node.inputs], node)]

    # -- reference (ANN)
    def reference(self, graph, node, env):
        ins = inputs_of(node)
        return kernels.float_arith(env[ins.x], env[ins.c], node.attrs["op"], node.attrs.get("reverse", False))

    # -- passes
    def lower_sws(self, graph, node, options):
        return False     # a float op: it stays as it is around the spiking part

    # -- numpy runtime
    def run(self, rt, node, env, stats):
        ins = inputs_of(node)
        return kernels.float_arith(env[ins.x], rt.g.const(ins.c), node.attrs["op"], node.attrs.get("reverse", False))

    # -- C backend
    def c_plan(self, pl, node, idx):
        """No step of the integer core: the float head runs in ``<prefix>_quantize_input``, on the
        float input before its quantization (runtime/templates/float.c.j2)."""
        ins = inputs_of(node)
        pl.add_head(node, node.attrs["op"], pl.g.const(ins.c), bool(node.attrs.get("reverse", False)))
