"""The input quantizer: ``Quantize`` (canonical graph) and ``SwsEncode`` (its spiking form)."""
from __future__ import annotations

import numpy as np

from swsc.loops import tsa_scan

from .base import Op, register
from .base import inputs_of


@register
class Quantize(Op):
    name = "Quantize"
    inputs = ("x",)
    attrs = {}
    doc = "float input -> integer tensor: clamp(rint(x/scale)+zp, lo, hi)"

    # -- reference (ANN)

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

    # -- C backend

@register
class SwsEncode(Op):
    name = "SwsEncode"
    inputs = ("x", "lut?")
    attrs = {"encoder": True, "ts": True}
    doc = "quantize the float input and emit its SWS code (exact or tsa encoder)"
    spike_output = True

    # -- reference (ANN)

    # -- passes
    def lower_int(self, graph, node, lowering):
        """The lookup table of the spike trains of every input code (what the C encoder emits)."""
        q = graph.tensors[node.outputs[0]].quant
        codes = np.arange(q.hi - q.lo + 1, dtype=np.float64)
        frames = self.frames(node, codes, graph.coding, q)
        lut = graph.add_const(f"{node.name}.lut", np.ascontiguousarray(frames.T.astype(np.int8)))
        node.inputs = [inputs_of(node).x, lut.name]
        return True

    def frames(self, node, codes, coding, quant):
        """The encoder's Tc frames of ``codes`` (quantized input codes ``P - lo``, any shape):
        the exact digits, or a TSA neuron driven by the constant current ``code / (theta S)``
        with threshold factor 1/2 and its own silent period."""
        theta = quant.theta or 1.0
        if node.attrs["encoder"] == "exact":
            return encode_exact(codes, coding.tc, coding.beta, theta)
        z = np.zeros((coding.tc,) + codes.shape)
        frames, _, _ = tsa_scan(z, codes / theta / coding.code_sum, ts=node.attrs["ts"], tc=coding.tc,
                                beta=coding.beta, vth=0.5, hi_norm=(quant.hi - quant.lo) / theta)
        return frames

    # -- numpy runtime

    # -- C backend


# ---- passes helpers
def encode_exact(code: np.ndarray, tc: int, beta: float, theta: float) -> np.ndarray:
    """Greedy MSB-first SWS code of code/theta: binary digits for beta = 2, balanced
    digits otherwise. Exact for every integer level the window can code."""
    r = np.rint(code / theta)
    frames = np.zeros((tc,) + code.shape, dtype=np.int8)
    for k in range(tc):
        wk = beta ** (tc - 1 - k)
        if beta == 2:
            d = (r >= wk).astype(np.int8)
        else:
            d = np.clip(np.floor(r / wk + 0.5), -1, 1).astype(np.int8)
        frames[k] = d
        r = r - d.astype(np.float64) * wk
    return frames
