"""rescale: choose each coded tensor's spike amplitude theta and normalize the layers.

With ``Tc`` steps and amplification ``beta`` a train of +1 spikes encodes at most
``S = sum_{k=1..Tc} beta^(Tc-k)``. A tensor whose codes reach ``hi'`` gets
``theta = max(1, hi' / S)`` (semantics note section 2): with 8-bit codes, ``beta = 2``
and ``Tc = 8`` that is 1, and the SNN speaks the ANN's integers. Each Affine layer is
rewritten to the normalized weights and per-step bias of eq. 18-19::

    W = W~ theta_in / theta_out          b = b~ / (theta_out S)

and sets the graph's coding (``graph.coding``: Tc, beta and so S). Affine's meaning is
unchanged by this pass: ``c_o = clamp(round(theta_o (W . c_i / theta_i + S b)), 0, hi')``
is the same number before (all theta = 1, no coding: S = 1) and after.

Requires: fold-zero-points (only Affine layers compute). Options: tc, beta.
Guarantees: ``graph.coding`` is set; every integer activation tensor has ``quant.theta``;
Affine weights are normalized (each op's ``rescale``, per synapse kind); MaxPool and
structural ops see equal thetas on inputs and outputs.
"""
from __future__ import annotations

from swsc.ir import Coding, Graph
from swsc.ops import op_of
from swsc.options import CompileOptions
from swsc.passmanager import Pass


class Rescale(Pass):
    name = "rescale"
    __doc__ = __doc__

    def __init__(self, options: CompileOptions):
        self.options = options

    def run(self, graph: Graph) -> bool:
        coding = Coding(self.options.tc, float(self.options.beta))
        changed = graph.coding != coding
        graph.coding = coding
        S = coding.code_sum
        for t in graph.tensors.values():
            if t.quant is not None and not t.is_const and t.dtype != "float32":
                hi = t.quant.hi - t.quant.lo
                theta = max(1.0, hi / S)
                changed = changed or t.quant.theta != theta
                t.quant.theta = theta
        # each op's ``rescale``: Affine normalizes its weights per synapse kind; MaxPool and the
        # structural ops check that they see one amplitude
        for node in graph.nodes:
            changed = op_of(node).rescale(graph, node, coding) or changed
        return changed
