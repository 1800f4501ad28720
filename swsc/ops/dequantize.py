"""The output dequantizer: ``Dequantize`` (canonical graph) and ``SwsDecode`` (its spiking form)."""
from __future__ import annotations

import numpy as np

from swsc.ir import scalar
from swsc.requant import f32

from .base import Op, register
from .base import inputs_of


@register
class Dequantize(Op):
    name = "Dequantize"
    inputs = ("x",)
    attrs = {}
    doc = "integer tensor -> float32 scale*(q - zp)"

    # -- reference (ANN)
    def reference(self, graph, node, env):
        """DequantizeLinear in float32: fp32(q - z) * fp32(s)."""
        q = graph.tensors[node.inputs[0]].quant
        z = np.asarray(q.zero_point, np.float64)
        return ((env[node.inputs[0]].astype(np.float64) - z).astype(f32) * f32(q.scale)).astype(f32)

    # -- passes
    def lower_sws(self, graph, node, options):
        """-> ``SwsDecode``: the spike trains' values, dequantized."""
        node.op = SwsDecode.name
        return True

    # -- numpy runtime
    def run(self, rt, node, env, stats):
        return dequantized(rt.g.tensors[node.inputs[0]].quant, env[node.inputs[0]])

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
    def run(self, rt, node, env, stats):
        q = rt.g.tensors[node.inputs[0]].quant
        return dequantized(q, rt.spike_code(env[node.inputs[0]], q.theta or 1.0))

    def sim_bytes(self, mem, node):
        """Decoding converts the frames to float64."""
        return 8 * mem.value_bytes(node.inputs[0])

    # -- C backend


# ---- numpy runtime helpers
def dequantized(q, code: np.ndarray) -> np.ndarray:
    """scale (q - zp) in float32 of the codes ``q - lo``."""
    return (scalar(q.scale) * (code + q.lo - scalar(q.zero_point))).astype(np.float32)
