"""lower-to-sws: integer-domain layers and ops become spiking ops.

* ``Affine`` -> ``TsaLayer`` with the normalized weights of ``rescale``, the neuron
  constants ``vth`` (threshold factor: 1/2 lowered, 1 not lowered) and
  ``hi_norm = hi' / theta_out`` (the upper-clamp rule of semantics section 3); its
  silent period ``ts`` is set by schedule-latencies; Tc and beta are the graph's coding.
* ``MaxPool`` -> ``SpikeMaxPool`` (exact running max, section 5).
* ``Dequantize`` -> ``SwsDecode``; float tail ops (Softmax) and float head ops (FloatArith) stay.
* ``Reshape``/``Transpose``/``Concat`` stay and act frame by frame.

Every integer activation tensor becomes a spike tensor (its quantization stays: it
says how to decode). Start steps are provisional (t0 = 0) until schedule-latencies.
Each op's ``lower_sws`` (swsc/ops) does its rewrite; ops that already act on spike trains,
structural ops and float ops stay; any other op is reported unsupported.

Requires: insert-encoder, rescale. Options: vth_factor.
Guarantees: no Affine/MaxPool/Dequantize/Quantize remain; all integer activations are spikes.
"""
from __future__ import annotations

from swsc.errors import UnsupportedOpError
from swsc.ir import ACTIVATION_DTYPES, Graph
from swsc.ops import op_of
from swsc.options import CompileOptions
from swsc.passmanager import Pass


class LowerToSws(Pass):
    name = "lower-to-sws"
    __doc__ = __doc__

    def __init__(self, options: CompileOptions):
        self.options = options

    def run(self, graph: Graph) -> bool:
        o = self.options
        bad, changed = [], False
        for node in graph.nodes:
            try:
                changed = op_of(node).lower_sws(graph, node, o) or changed
            except UnsupportedOpError as e:     # every op without a spiking form, in one error
                bad += e.nodes
        if bad:
            raise UnsupportedOpError(bad)
        for t in graph.tensors.values():
            if not t.is_const and t.quant is not None and t.dtype in ACTIVATION_DTYPES:
                t.dtype, t.t0 = "spike", 0
                changed = True
        return changed
