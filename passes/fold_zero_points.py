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

import numpy as np

from swsc.errors import UnsupportedOpError
from swsc.ir import Graph, Node, scalar
from swsc.passmanager import Pass
from swsc import kernels

_GEOM_KEYS = ("kernel", "strides", "pads", "dilations", "group", "count_include_pad")


def _weights_real(graph: Graph, node: Node):
    """W~ (float64, same layout as the weight) and the per-output multiplier s_i s_w / s_o."""
    x, w, out = (graph.tensors[node.inputs[0]], graph.tensors[node.inputs[1]],
                 graph.tensors[node.outputs[0]])
    m = w.shape[0]
    s_w = np.broadcast_to(w.quant.scale, (m,)).astype(np.float64)
    z_w = np.broadcast_to(w.quant.zero_point, (m,)).astype(np.float64)
    mult = scalar(x.quant.scale) * s_w / scalar(out.quant.scale)
    bshape = (m,) + (1,) * (w.data.ndim - 1)
    w_tilde = (w.data.astype(np.float64) - z_w.reshape(bshape)) * mult.reshape(bshape)
    return w_tilde, mult


def _linear(graph: Graph, node: Node):
    x, out = graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]]
    w_tilde, mult = _weights_real(graph, node)
    bias = graph.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    const = (np.zeros_like(mult) if bias is None else bias.astype(np.float64) * mult) \
        + scalar(out.quant.zero_point) - out.quant.lo
    shift = x.quant.lo - scalar(x.quant.zero_point)
    geom = {k: node.attrs[k] for k in _GEOM_KEYS if k in node.attrs}
    if node.op == "QDense":
        b = const + shift * w_tilde.sum(axis=1)
        return "dense", w_tilde, b, geom
    # tap sums of W~ over the real input at every output position: a map when padded
    tap_sum = kernels.conv2d(np.ones((1,) + x.shape[1:]), w_tilde, node.attrs)[0]
    b = const.reshape(-1, 1, 1) + shift * tap_sum
    if np.all(b == b[:, :1, :1]):
        b = b[:, :1, :1].copy()
    return "conv", w_tilde, b, geom


def _avgpool(graph: Graph, node: Node):
    x, out = graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]]
    valid = kernels.pool_counts(x.shape[2:], node.attrs)
    n = valid if not node.attrs.get("count_include_pad", 0) else \
        np.full_like(valid, float(np.prod(node.attrs["kernel"])))
    factor = scalar(x.quant.scale) / (scalar(out.quant.scale) * n)
    shift = x.quant.lo - scalar(x.quant.zero_point)
    b = (factor * valid * shift + scalar(out.quant.zero_point) - out.quant.lo)[None]
    if np.all(factor == factor.flat[0]):
        factor = np.array([factor.flat[0]])
    if np.all(b == b.flat[0]):
        b = np.array([b.flat[0]]).reshape(1, 1, 1)
    geom = {k: node.attrs[k] for k in _GEOM_KEYS if k in node.attrs}
    return "avgpool", factor, b, geom


def _add(graph: Graph, node: Node):
    out = graph.tensors[node.outputs[0]]
    s_o = scalar(out.quant.scale)
    frame = out.shape[1:]
    b = np.full((1,) * len(frame), scalar(out.quant.zero_point) - out.quant.lo, dtype=np.float64)
    factors, spikes = [], []
    for name in node.inputs:
        t = graph.tensors[name]
        r = scalar(t.quant.scale) / s_o
        if t.is_const:
            c = r * (t.data.astype(np.float64) - scalar(t.quant.zero_point))
            c = c.reshape(c.shape[1:]) if c.ndim == len(frame) + 1 else c
            b = b + c
        else:
            if t.shape != out.shape:
                raise UnsupportedOpError([(node.name, node.op,
                                           f"broadcasting spike inputs {t.shape} -> {out.shape}")])
            factors.append(r)
            spikes.append(name)
            b = b + r * (t.quant.lo - scalar(t.quant.zero_point))
    return "add", np.array(factors), b, {}, spikes


class FoldZeroPoints(Pass):
    name = "fold-zero-points"
    __doc__ = __doc__

    def run(self, graph: Graph) -> bool:
        changed = False
        for i, node in enumerate(list(graph.nodes)):
            if node.op not in ("QConv", "QDense", "QAvgPool", "QAdd"):
                continue
            inputs = [node.inputs[0]]
            if node.op == "QAdd":
                kind, w, b, geom, inputs = _add(graph, node)
            elif node.op == "QAvgPool":
                kind, w, b, geom = _avgpool(graph, node)
            else:
                kind, w, b, geom = _linear(graph, node)
            wt = graph.add_const(f"{node.name}.weight", w)
            bt = graph.add_const(f"{node.name}.bias", b)
            # the integer weights stay attached: lower-to-integer builds on them
            wq = [node.inputs[1]] if kind in ("conv", "dense") else []
            idx = graph.nodes.index(node)
            graph.nodes[idx] = Node("Affine", node.name, inputs + [wt.name, bt.name] + wq, node.outputs,
                                    {"kind": kind, "n_inputs": len(inputs), **geom})
            changed = True
        graph.remove_unused_tensors()
        return changed
