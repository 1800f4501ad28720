"""``Affine``: the integer-domain layer of fold-zero-points (paper eq. 15-17)."""
from __future__ import annotations

import numpy as np

from swsc import loops

from .base import GEOM, Op, register, synapse_of
from .base import inputs_of


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
    def run(self, rt, node, env, stats):
        """Eq. 15-17 on codes: the synapse's map of the codes in units of theta, the bias times
        the code sum S (1 before rescale), rounded half to even and clamped to [0, hi']."""
        ins = inputs_of(node)
        out = rt.g.tensors[node.outputs[0]].quant
        w, b = rt.g.const(ins.w), rt.g.const(ins.b)
        xs = [env[i] / (rt.g.tensors[i].quant.theta or 1.0) for i in ins.x]
        code_sum = rt.g.coding.code_sum if rt.g.coding is not None else 1.0
        acc = synapse_of(node).linear(node, xs, w) + code_sum * b
        theta = out.theta or 1.0
        return np.clip(loops.round_half_even(theta * acc), 0, out.hi - out.lo)

    def sim_bytes(self, mem, node):
        """float64 numpy: a channels-last copy, im2col columns, the GEMM result."""
        n_in = sum(mem.size(i) for i in inputs_of(node).x)
        return 8 * (n_in * (1 + synapse_of(node).im2col_taps(node)) + 3 * mem.size(node.outputs[0]))

    # -- C backend
