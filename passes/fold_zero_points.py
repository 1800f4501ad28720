"""fold-zero-points: canonical quantized layers -> integer-domain ``Affine`` layers.

Paper eq. 15-17, written on *codes* ``c = q - lo`` (semantics note section 1): every
integer tensor is shifted so its lower clamp bound is 0 (int8 tensors by 128, Relu'd
tensors by their zero point). For a linear layer with real weights
``W^ = s_w (w - z_w)`` and ``W~ = W^ s_i / s_o``::

    q_o = rint(W~ . (q_i - z_i) + bias s_i s_w / s_o) + z_o        (the quantized ANN)
    c_o = clamp(round(W~ . c_i + b~), 0, hi')                        hi' = hi_o - lo_o
    b~  = bias s_i s_w / s_o + z_o - lo_o + (lo_i - z_i) * (sum of W~ over taps inside the input)

The last term is where padding matters: the ANN pads with ``q = z_i`` (real 0) and the
SNN with code 0 (no spikes), so at image borders only the taps that fall inside the
input carry the zero-point term and ``b~`` becomes a per-position map ``[M, H', W']``.
Without padding (or with ``lo_i == z_i``) it is one value per channel.

AvgPool: ``W~`` is the per-position factor ``s_i / (s_o n)`` and ``b~`` the matching
map. Add: one factor ``s_k / s_o`` per spike input; constant operands fold into ``b~``.

Requires: a canonical quantized graph (front-end output).
Conv and dense layers keep their quantized weight tensor as a third constant input
(``wq``), which ``lower-to-integer`` turns into the integer weights ``w - z_w``.

Guarantees: no QConv/QDense/QAvgPool/QAdd remain; every Affine computes on codes exactly
what the quantized ANN computes (up to float32 requantization rounding).
"""
from __future__ import annotations

from swsc.ir import Graph
from swsc.ops import op_of
from swsc.passmanager import Pass


class FoldZeroPoints(Pass):
    name = "fold-zero-points"
    __doc__ = __doc__

    def run(self, graph: Graph) -> bool:
        """Each op's ``fold`` gives the Affine replacing it (swsc/ops: QConv, QDense, QAvgPool,
        QAdd); the quantized weights nothing reads any more go."""
        changed = False
        for i, node in enumerate(list(graph.nodes)):
            affine = op_of(node).fold(graph, node)
            if affine is not None:
                graph.nodes[i] = affine
                changed = True
        n = len(graph.tensors)
        graph.remove_unused_tensors()
        return changed or len(graph.tensors) != n
