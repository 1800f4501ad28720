"""Dense (MatMul/Gemm): ``QDense`` and the dense synapse of fused layers."""
from __future__ import annotations

from swsc.errors import IRVerifyError

from .base import SYNAPSES, Op, Synapse, register
from .base import fold_linear, model_int_weights


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
    def fold(self, graph, node):
        return fold_linear(graph, node, SYNAPSES["dense"])

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
    def fold_bias(self, graph, node, w_tilde, const, shift):
        """b~ = const + shift * (sum of W~ over the inputs): every input is real."""
        return const + shift * w_tilde.sum(axis=1)

    def int_weights(self, graph, node, W, b):
        return model_int_weights(graph, node, b)

    # -- numpy runtime

    # -- C backend
