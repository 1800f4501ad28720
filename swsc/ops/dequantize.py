"""The output dequantizer: ``Dequantize`` (canonical graph) and ``SwsDecode`` (its spiking form)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from swsc.errors import SwscError
from swsc.ir import scalar
from swsc.requant import f32

from .base import Op, inputs_of, register


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


@register
class SwsDecode(Op):
    name = "SwsDecode"
    inputs = ("x",)
    attrs = {"int_theta_q16": False}
    doc = "decode spikes to the dequantized float output"
    spike_inputs = True

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
    def c_plan(self, pl, node, idx):
        """The decoder: q = lo + A (or lo + round(A theta)), A the value of the spike train."""
        src = node.inputs[0]
        q = pl.t(src).quant
        inp = pl.spike_in(src, idx)
        t16 = node.attrs.get("int_theta_q16")
        S, beta = pl.code_sum, pl.beta
        at, _ = pl.wide(beta * S + 1, "a decoded value")
        top = S * (int(t16) if t16 is not None else 1) + 2**15
        if t16 is not None:
            at, _ = pl.wide(top, "a decoded value")
        qmax = abs(q.lo) + (S if t16 is None else (top >> 16) + 1)
        if qmax > pl.INT32_MAX:
            raise SwscError("decoded outputs do not fit int32", node=node.name, op=node.op)
        out = pl.add_output(node.outputs[0], src)
        return DecodePlan(fn=f"{pl.prefix}_l{idx}_decode", comment=pl.comment(node.name), inp=inp,
                          n=pl.numel(src), lo=q.lo, t16=None if t16 is None else pl.c_int(int(t16)), at=at,
                          output=out)


# ---- numpy runtime helpers


def dequantized(q, code: np.ndarray) -> np.ndarray:
    """scale (q - zp) in float32 of the codes ``q - lo``."""
    return (scalar(q.scale) * (code + q.lo - scalar(q.zero_point))).astype(np.float32)


# ---- C backend helpers
@dataclass
class DecodePlan:
    """The decoder's C step (dequantize.c.j2): ``n`` trains of ``inp`` to integer codes
    ``lo + A`` (``t16``: ``lo + ((A * t16 + 2^15) >> 16)``, a C literal) in type ``at``, written
    at ``output.base`` of the output vector; the step goes when its ``output`` is unused."""
    template: ClassVar[str] = "ops/dequantize.c.j2"
    fn: str
    comment: str
    inp: object
    n: int
    lo: int
    t16: str | None
    at: str
    output: object
