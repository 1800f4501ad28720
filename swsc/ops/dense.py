"""Dense (MatMul/Gemm): ``QDense`` and the dense synapse of fused layers."""
from __future__ import annotations

from swsc.errors import IRVerifyError

from .base import SYNAPSES, Op, Synapse, register


@register
class QDense(Op):
    name = "QDense"
    inputs = ("x", "w", "bias?")
    attrs = {}
    doc = "quantized x[N,K] . w[M,K]^T; bias as in QConv"

    def shape(self, graph, node):
        return SYNAPSES["dense"].shape(graph, node)

    # -- reference (ANN)

    # -- passes

    # -- numpy runtime

    # -- C backend


@register
class DenseSynapse(Synapse):
    """The dense synapse of Affine/TsaLayer (``kind = "dense"``)."""
    name = "dense"

    def shape(self, graph, node):
        x, w = graph.tensors[node.inputs[0]].shape, graph.tensors[node.inputs[1]].shape
        if len(x) != 2 or len(w) != 2 or x[1] != w[1]:
            raise IRVerifyError(f"dense input {x} does not match weight [out, in] {w}", node=node.name, op=node.op)
        return [(x[0], w[0])]

    # -- reference (ANN)

    # -- passes

    # -- numpy runtime

    # -- C backend
