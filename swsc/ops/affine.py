"""``Affine``: the integer-domain layer of fold-zero-points (paper eq. 15-17)."""
from __future__ import annotations

import numpy as np

from swsc import loops

from .base import GEOM, Op, inputs_of, register, synapse_of


@register
class Affine(Op):
    name = "Affine"
    inputs = ("*x", "w", "b", "wq?")
    attrs = {"kind": True, "n_inputs": True, **{k: False for k in GEOM}, "group": False, "count_include_pad": False}
    doc = ("code_o = clamp(round(W~ . code_i + b~), 0, hi') on codes q - lo (eq. 15-17)")

    def shape(self, graph, node):
        return synapse_of(node).shape(graph, node)

    # -- passes
    def rescale(self, graph, node, coding):
        """eq. 18-19: ``W = W~ theta_in / theta_out`` (per synapse kind), ``b = b~ / (theta_out S)``."""
        ins = inputs_of(node)
        th_out = graph.tensors[node.outputs[0]].quant.theta
        wt, bt = graph.tensors[ins.w], graph.tensors[ins.b]
        wt.data = synapse_of(node).rescale_weights(graph, node, wt.data.copy(), th_out)
        bt.data = bt.data / (th_out * coding.code_sum)
        return True

    def lower_sws(self, graph, node, options):
        """-> ``TsaLayer`` with the threshold factor ``vth`` and ``hi_norm = hi' / theta_out``
        (the upper-clamp rule of semantics section 3); ``ts`` is set by schedule-latencies."""
        out = graph.tensors[node.outputs[0]]
        node.op = "TsaLayer"
        hi_norm = (out.quant.hi - out.quant.lo) / out.quant.theta
        if abs(hi_norm - round(hi_norm)) < 1e-9 * max(1.0, hi_norm):
            hi_norm = float(round(hi_norm))   # theta = hi'/S must give exactly S
        node.attrs.update(ts=0, vth=float(options.vth_factor), hi_norm=hi_norm)
        return True

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
