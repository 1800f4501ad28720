"""The input quantizer: ``Quantize`` (canonical graph) and ``SwsEncode`` (its spiking form)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from swsc import kernels, loops
from swsc.errors import SwscError
from swsc.ir import scalar
from swsc.requant import f32, finish

from .base import Op, inputs_of, register


@register
class Quantize(Op):
    name = "Quantize"
    inputs = ("x",)
    attrs = {}
    doc = "float input -> integer tensor: clamp(rint(x/scale)+zp, lo, hi)"

    # -- reference (ANN)
    def reference(self, graph, node, env):
        """MlasQuantizeLinear: rint(fp32(x) / fp32(s)) + z, clamped."""
        y = graph.tensors[node.outputs[0]]
        x = env[node.inputs[0]].astype(f32)
        return finish(x / f32(y.quant.scale), y.quant, y.dtype)

    # -- passes
    def insert_encoder(self, graph, node, options):
        """-> ``SwsEncode``: the same quantization, its code emitted as Tc ternary frames; the
        ``tsa`` encoder waits its own silent period, so its output starts there."""
        ts = options.encoder_ts if options.encoder == "tsa" else 0
        node.op = SwsEncode.name
        node.attrs = {"encoder": options.encoder, "ts": ts}
        out = graph.tensors[node.outputs[0]]
        out.dtype, out.t0 = "spike", ts
        return True

    # -- numpy runtime
    def run(self, rt, node, env, stats):
        return quantize_codes(rt.g, node, env)


@register
class SwsEncode(Op):
    name = "SwsEncode"
    inputs = ("x", "lut?")
    attrs = {"encoder": True, "ts": True}
    doc = "quantize the float input and emit its SWS code (exact or tsa encoder)"
    spike_output = True

    # -- passes
    def lower_int(self, graph, node, lowering):
        """The lookup table of the spike trains of every input code (what the C encoder emits):
        the encoder simulation of the runtime (``encode_frames``), tabulated."""
        q = graph.tensors[node.outputs[0]].quant
        codes = np.arange(q.hi - q.lo + 1, dtype=np.float64)
        frames = encode_frames(codes, node.attrs["encoder"], node.attrs["ts"], graph.coding, q.theta or 1.0,
                               q.hi - q.lo)
        lut = graph.add_const(f"{node.name}.lut", np.ascontiguousarray(frames.T.astype(np.int8)))
        node.inputs = [inputs_of(node).x, lut.name]
        return True

    # -- numpy runtime
    def run(self, rt, node, env, stats):
        """Quantize, then the SWS frames of the codes: in integer mode the table lower-to-integer
        stored (``lut``, what the C reads), else the encoder simulated (``encode_frames``)."""
        a = node.attrs
        q = rt.g.tensors[node.outputs[0]].quant
        code = quantize_codes(rt.g, node, env)
        s = rt.stat(stats, node, neurons=int(np.prod(code.shape[1:])), ts=a["ts"],
                    steps=rt.g.coding.tc + a["ts"] if a["encoder"] == "tsa" else 0)
        if rt.mode == "int":
            lut = rt.g.const(inputs_of(node).lut)
            frames = np.moveaxis(lut[code.astype(np.int64)], -1, 0)
        else:
            frames = encode_frames(code, a["encoder"], a["ts"], rt.g.coding, q.theta or 1.0, q.hi - q.lo)
        s.count_spikes(frames)
        return frames

    def sim_bytes(self, mem, node):
        """The codes and the encoder's membranes and frames in float64."""
        return 40 * mem.size(node.outputs[0])

    # -- C backend
    def c_plan(self, pl, node, idx):
        """The encoder: a lookup table of spike trains (+1 mask, -1 mask) per input code."""
        if inputs_of(node).lut is None:
            raise SwscError("the encoder has no lookup table (run lower-to-integer)", node=node.name, op=node.op)
        tc = pl.tc
        out = node.outputs[0]
        q = pl.t(out).quant
        lut = pl.const(inputs_of(node).lut)
        levels = q.hi - q.lo + 1
        if lut.shape != (levels, tc):
            raise SwscError(f"encoder table has shape {lut.shape}, expected {(levels, tc)}",
                            node=node.name, op=node.op)
        pl.set_input(node, out)
        buf = pl.new_buffer(out, idx)
        ident = pl.ident(node)
        weights = (1 << np.arange(tc, dtype=np.int64))
        masks = np.stack([((lut > 0) * weights).sum(axis=1), ((lut < 0) * weights).sum(axis=1)], axis=1)
        sym, flash, _ = pl.array(f"lut_{ident}", masks, f"encoder {node.name}: (+1 mask, -1 mask) per code P - lo",
                                 ctype=pl.mask_t)
        plan = EncodePlan(fn=pl.fn(idx, ident), comment=pl.comment(node.name), out=buf, n=pl.numel(out),
                          lo=q.lo, hi=q.hi, lut=sym, stat=pl.stat(node))
        pl.report(node, flash, pl.spike_bytes(out))
        return plan


# ---- numpy runtime helpers


def quantize_codes(graph, node, env) -> np.ndarray:
    """The codes q - lo (float64) of the float input of a Quantize or SwsEncode node."""
    q = graph.tensors[node.outputs[0]].quant
    x = np.asarray(env[node.inputs[0]], dtype=np.float32)
    v = np.rint(x / np.float32(scalar(q.scale))) + scalar(q.zero_point)
    return np.clip(v, q.lo, q.hi).astype(np.float64) - q.lo


#: the threshold of the TSA encoder's neurons, in units of their reset: half a step, so each
#: emits the nearest code its window can reach (semantics note, the input encoder)
ENCODER_VTH = 0.5


def encode_frames(codes: np.ndarray, encoder: str, ts: int, coding, theta: float, hi: int) -> np.ndarray:
    """The SWS frames ``[Tc, ...]`` the input encoder (``exact`` or ``tsa``, silent period
    ``ts``) emits for the codes ``q - lo`` (float64) of a tensor with amplitude ``theta`` and
    largest code ``hi``. The one simulation of the encoder: the interpreter runs it, and
    lower-to-integer tabulates it for the integer runtimes."""
    if encoder == "exact":
        return kernels.encode_exact(codes, coding.tc, coding.beta, theta)
    z = np.zeros((coding.tc,) + codes.shape)
    frames, _, _ = loops.tsa_scan(z, codes / theta / coding.code_sum, ts=ts, tc=coding.tc, beta=coding.beta,
                            vth=ENCODER_VTH, hi_norm=hi / theta)
    return frames


# ---- C backend helpers
@dataclass
class EncodePlan:
    """The encoder's C step (quantize.c.j2): clamp each input code P to [lo, hi] and copy its
    two masks from table ``lut`` (row P - lo) into ``out``; ``stat`` is its stats entry."""
    template: ClassVar[str] = "ops/quantize.c.j2"
    fn: str
    comment: str
    out: object
    n: int
    lo: int
    hi: int
    lut: str
    stat: int
