"""rescale: choose each coded tensor's spike amplitude theta and normalize the layers.

With ``Tc`` steps and amplification ``beta`` a train of +1 spikes encodes at most
``S = sum_{k=1..Tc} beta^(Tc-k)``. A tensor whose codes reach ``hi'`` gets
``theta = max(1, hi' / S)`` (semantics note section 2): with 8-bit codes, ``beta = 2``
and ``Tc = 8`` that is 1, and the SNN speaks the ANN's integers. Each Affine layer is
rewritten to the normalized weights and per-step bias of eq. 18-19::

    W = W~ theta_in / theta_out          b = b~ / (theta_out S)

and records ``S`` (attribute ``code_sum``). Affine's meaning is unchanged by this pass:
``c_o = clamp(round(theta_o (W . c_i / theta_i + S b)), 0, hi')`` is the same number
before (all theta = 1, S = 1) and after.

Requires: fold-zero-points (only Affine layers compute). Options: tc, beta.
Guarantees: every integer activation tensor has ``quant.theta``; Affine weights are
normalized; MaxPool and structural ops see equal thetas on inputs and outputs.
"""
from __future__ import annotations

from swsc.errors import OptionError
from swsc.ir import Coding, Graph
from swsc.options import CompileOptions
from swsc.passmanager import Pass


class Rescale(Pass):
    name = "rescale"
    __doc__ = __doc__

    def __init__(self, options: CompileOptions):
        self.options = options

    def run(self, graph: Graph) -> bool:
        graph.coding = Coding(self.options.tc, float(self.options.beta))
        S = graph.coding.code_sum
        for t in graph.tensors.values():
            if t.quant is not None and not t.is_const and t.dtype != "float32":
                hi = t.quant.hi - t.quant.lo
                t.quant.theta = max(1.0, hi / S)
        for node in graph.nodes:
            if node.op in ("MaxPool", "Reshape", "Transpose", "Concat"):
                thetas = {graph.tensors[i].quant.theta for i in node.inputs + node.outputs}
                if len(thetas) != 1:
                    raise OptionError(f"inputs and outputs of {node.op} '{node.name}' need one spike "
                                      f"amplitude but have {sorted(thetas)}")
            if node.op != "Affine":
                continue
            n = node.attrs["n_inputs"]
            th_out = graph.tensors[node.outputs[0]].quant.theta
            wt, bt = graph.tensors[node.inputs[n]], graph.tensors[node.inputs[n + 1]]
            w = wt.data.copy()
            if node.attrs["kind"] == "add":
                for k in range(n):
                    w[k] *= graph.tensors[node.inputs[k]].quant.theta / th_out
            else:
                w *= graph.tensors[node.inputs[0]].quant.theta / th_out
            wt.data = w
            bt.data = bt.data / (th_out * S)
            node.attrs["code_sum"] = S
        return True
