"""lower-to-sws: integer-domain layers and ops become spiking ops.

* ``Affine`` -> ``TsaLayer`` with the normalized weights of ``rescale``, the neuron
  constants ``tc``, ``beta``, ``vth`` (threshold factor: 1/2 lowered, 1 not lowered)
  and ``hi_norm = hi' / theta_out`` (the upper-clamp rule of semantics section 3);
  its silent period ``ts`` is set by schedule-latencies.
* ``MaxPool`` -> ``SpikeMaxPool`` (exact running max, section 5).
* ``Dequantize`` -> ``SwsDecode``; float tail ops (Softmax) and float head ops (FloatArith) stay.
* ``Reshape``/``Transpose``/``Concat`` stay and act frame by frame.

Every integer activation tensor becomes a spike tensor (its quantization stays: it
says how to decode). Windows are provisional (t0 = 0) until schedule-latencies.

Requires: insert-encoder, rescale. Options: tc, beta, vth_factor.
Guarantees: no Affine/MaxPool/Dequantize/Quantize remain; all integer activations are spikes.
"""
from __future__ import annotations

from swsc.errors import UnsupportedOpError
from swsc.ir import ACTIVATION_DTYPES, Graph
from swsc.options import CompileOptions
from swsc.passmanager import Pass

_RENAME = {"MaxPool": "SpikeMaxPool", "Dequantize": "SwsDecode"}
_KEEP = {"SwsEncode", "Reshape", "Transpose", "Concat", "Softmax", "FloatArith"}


class LowerToSws(Pass):
    name = "lower-to-sws"
    __doc__ = __doc__

    def __init__(self, options: CompileOptions):
        self.options = options

    def run(self, graph: Graph) -> bool:
        o = self.options
        bad = []
        for node in graph.nodes:
            if node.op == "Affine":
                out = graph.tensors[node.outputs[0]]
                node.op = "TsaLayer"
                node.attrs.pop("code_sum", None)
                hi_norm = (out.quant.hi - out.quant.lo) / out.quant.theta
                if abs(hi_norm - round(hi_norm)) < 1e-9 * max(1.0, hi_norm):
                    hi_norm = float(round(hi_norm))   # theta = hi'/S must give exactly S
                node.attrs.update(ts=0, tc=o.tc, beta=float(o.beta), vth=float(o.vth_factor), hi_norm=hi_norm)
            elif node.op in _RENAME:
                node.op = _RENAME[node.op]
            elif node.op not in _KEEP:
                bad.append((node.name, node.op, "no spiking lowering"))
        if bad:
            raise UnsupportedOpError(bad)
        for t in graph.tensors.values():
            if not t.is_const and t.quant is not None and t.dtype in ACTIVATION_DTYPES:
                t.dtype, t.window = "spike", (0, o.tc)
        return True
