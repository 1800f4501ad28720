"""insert-encoder: the input quantizer becomes the SWS input encoder.

``Quantize(x)`` -> ``SwsEncode(x) {encoder, ts}`` (semantics note section 4). The
encoder quantizes ``x`` exactly as the model's first QuantizeLinear does, then emits
the code ``P - lo`` as Tc ternary frames:

* ``exact`` (default): the greedy MSB-first digits of the code, no silent period;
* ``tsa``: a TSA neuron driven by the constant current ``code / S`` with its own
  silent period ``ts`` (paper eq. 9); lossy at ``ts = 0``.

Requires: rescale (the input tensor has theta; the graph has its coding). Options: encoder,
encoder_ts. The rewrite is ``Quantize.insert_encoder`` (swsc/ops/quantize.py).
Guarantees: no Quantize remains; encoder outputs are spike tensors.
"""
from __future__ import annotations

from swsc.ir import Graph
from swsc.ops import op_of
from swsc.options import CompileOptions
from swsc.passmanager import Pass


class InsertEncoder(Pass):
    name = "insert-encoder"
    __doc__ = __doc__

    def __init__(self, options: CompileOptions):
        self.options = options

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in graph.nodes:
            changed = op_of(node).insert_encoder(graph, node, self.options) or changed
        # shape ops the front-end moved past the input quantizer (a float head's Flatten/Transpose)
        # now act on the encoder's frames
        for node in graph.topo_order():
            ins = [graph.tensors[i] for i in node.inputs]
            out = graph.tensors[node.outputs[0]]
            if op_of(node).structural and out.dtype != "spike" and ins and all(t.dtype == "spike" for t in ins):
                out.dtype, out.t0 = "spike", ins[0].t0
                changed = True
        return changed
