"""Dense (MatMul/Gemm): ``QDense`` and the dense synapse of fused layers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from swsc.errors import IRVerifyError
from swsc.requant import centered, float_node, ort_float_mirror, requant_linear, wcentered

from .base import SYNAPSES, Op, Synapse, fold_linear, inputs_of, model_int_weights, register
from .conv import gemm_weights


@register
class QDense(Op):
    name = "QDense"
    inputs = ("x", "w", "bias?")
    attrs = {}
    doc = "quantized x[N,K] . w[M,K]^T; bias as in QConv"

    def shape(self, graph, node):
        return SYNAPSES["dense"].shape(graph, node)

    # -- front-end
    def build(self, fe, lin, y, rq, dt, q):
        """A matched Gemm/MatMul cluster: as QConv.build, output ``[1, M]``."""
        ins = fe.linear_inputs(lin, "Gemm/MatMul")
        return fe.emit_natural(self.name, lin, ins, y, (1, lin.w.shape[0]), dt, q, None, "dense")

    # -- reference (ANN)
    def reference(self, graph, node, env):
        """Exact accumulation, then QGemm's float32 requantization (swsc/requant.py)."""
        ins = inputs_of(node)
        mirrored = ort_float_mirror(graph, node, ins, "Gemm", env)
        if mirrored is not None:
            return mirrored
        x, w = graph.tensors[ins.x], graph.tensors[ins.w]
        y = graph.tensors[node.outputs[0]]
        acc = centered(x, env[x.name]) @ wcentered(w).T
        if ins.bias:
            acc = acc + graph.tensors[ins.bias].data.reshape(1, -1)
        return requant_linear(acc, x.quant, w.quant, y.quant, y.dtype, float_node(graph, node))

    # -- passes
    def fold(self, graph, node):
        return fold_linear(graph, node, SYNAPSES["dense"])


@register
class DenseSynapse(Synapse):
    """The dense synapse of Affine/TsaLayer (``kind = "dense"``)."""
    name = "dense"

    def shape(self, graph, node):
        x, w = graph.tensors[node.inputs[0]].shape, graph.tensors[node.inputs[1]].shape
        if len(x) != 2 or len(w) != 2 or x[1] != w[1]:
            raise IRVerifyError(f"dense input {x} does not match weight [out, in] {w}", node=node.name, op=node.op)
        return [(x[0], w[0])]

    # -- passes
    def fold_bias(self, graph, node, w_tilde, const, shift):
        """b~ = const + shift * (sum of W~ over the inputs): every input is real."""
        return const + shift * w_tilde.sum(axis=1)

    def int_weights(self, graph, node, W, b):
        return model_int_weights(graph, node, b)

    # -- numpy runtime
    def linear(self, node, xs, w, out=None):
        """The synaptic map on a batch, no bias (into ``out`` if given)."""
        return np.matmul(xs[0], w.T, out=out) if out is not None else xs[0] @ w.T

    def split_weights(self, graph, node):
        return gemm_weights(graph, node, ())

    def real_current(self, node, xs, w, R):
        """Without integer weights: the real map in float64, in units of the reset R."""
        return self.linear(node, xs, w / R), None

    def float32_exact(self, node, beta, largest):
        """Without integer weights no float32 GEMM is exact."""
        return False

    def fanout(self, node, in_shapes, w):
        """Each input reaches every output."""
        return [np.full(in_shapes[0], w.shape[0], dtype=np.int64)]

    def dense_macs(self, graph, node, w):
        return int(np.prod(graph.tensors[node.outputs[0]].shape[1:])) * w.shape[1]

    def im2col_taps(self, node):
        return 1

    # -- C backend
    def c_plan(self, pl, node, ident, xs):
        """A dense layer's loops (dense.c.j2): output channels in blocks (``pl.blocking``), each
        active input adding its weight row; weights transposed as [K][MGP]."""
        wq = pl.const(inputs_of(node).wq)
        M, K = wq.shape
        fan = int(np.abs(wq).sum(axis=1).max())
        blk = pl.blocking(M, fan)
        wsym, wb, wct = pl.array(f"w_{ident}", np.pad(wq.T, [(0, 0), (0, blk.MGP - M)]),
                                 f"weights w - z_w transposed [{K}][{blk.MGP}] (out channels padded "
                                 f"with 0), {node.name}")
        return DensePlan(inp=xs[0], M=M, K=K, w=wsym, wct=wct, blk=blk, fan=fan, flash=wb)


# ---- C backend helpers
@dataclass
class DensePlan:
    """The dense synapse's part of a TSA layer's C step (dense.c.j2): ``M`` outputs from ``K``
    inputs, weights ``w`` of C type ``wct``, channel blocks ``blk``; ``fan`` bounds |acc|."""
    template: ClassVar[str] = "ops/dense.c.j2"
    spatial: ClassVar[bool] = False
    inp: object
    M: int
    K: int
    w: str
    wct: str
    blk: object
    fan: int
    flash: int

    def scratch(self, msize: int, per_channel: bool, mask_bytes: int, tc: int) -> int:
        """Stack bytes of a block: accumulators, the widened weight row, the neurons' state."""
        return (self.blk.acc_size * (tc + 1) + 5 * msize + 24) * self.blk.MB
