"""Convolution: ``QConv`` (the quantized ONNX Conv) and the conv synapse of fused layers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from swsc import kernels, loops
from swsc.errors import IRVerifyError, UnsupportedOpError
from swsc.requant import centered, f32, float_node, ort_float_mirror, requant_linear, wcentered

from .base import (
    GEOM,
    SYNAPSES,
    Op,
    Synapse,
    fold_linear,
    inputs_of,
    model_int_weights,
    register,
    spatial_shape,
    window_out,
)
from .cgeometry import c_window


@register
class QConv(Op):
    name = "QConv"
    inputs = ("x", "w", "bias?")
    attrs = {**GEOM, "group": False}
    doc = "quantized Conv; bias is float64 in accumulator units (x_scale*w_scale)"

    def shape(self, graph, node):
        return SYNAPSES["conv"].shape(graph, node)

    # -- front-end
    def build(self, fe, lin, y, rq, dt, q):
        """A matched conv cluster (``fe`` the front-end's emitter): the integer weight and bias
        as quantized constants, the output in the conv's natural shape."""
        ins = fe.linear_inputs(lin, "Conv")
        xs = fe.g.tensors[ins[0]].shape
        k, s, p, d = (lin.attrs[a] for a in ("kernel", "strides", "pads", "dilations"))
        nat = (xs[0], lin.w.shape[0]) + tuple(window_out(xs[2 + i], k[i], s[i], p[i], p[i + 2], d[i])
                                              for i in range(2))
        return fe.emit_natural(self.name, lin, ins, y, nat, dt, q, dict(lin.attrs), "conv")

    # -- reference (ANN)
    def reference(self, graph, node, env):
        """Exact accumulation, then QLinearConv's float32 requantization (swsc/requant.py)."""
        ins = inputs_of(node)
        mirrored = ort_float_mirror(graph, node, ins, "Conv", env)
        if mirrored is not None:
            return mirrored
        x, w = graph.tensors[ins.x], graph.tensors[ins.w]
        y = graph.tensors[node.outputs[0]]
        wc = wcentered(w)
        z = float(np.asarray(x.quant.zero_point))
        bound = max(abs(x.quant.lo - z), abs(x.quant.hi - z)) * np.abs(wc).reshape(len(wc), -1).sum(axis=1).max()
        if bound < kernels.FLOAT32_EXACT:  # every partial sum is an integer float32 holds exactly: its faster kernels
            acc = kernels.conv2d(env[x.name].astype(f32) - f32(z), wc.astype(f32), node.attrs)
        else:
            acc = kernels.conv2d(centered(x, env[x.name]), wc, node.attrs)
        if ins.bias:
            acc = acc + graph.tensors[ins.bias].data.reshape(1, -1, 1, 1)
        return requant_linear(acc, x.quant, w.quant, y.quant, y.dtype, float_node(graph, node))

    # -- passes
    def fold(self, graph, node):
        return fold_linear(graph, node, SYNAPSES["conv"])


@register
class ConvSynapse(Synapse):
    """The conv synapse of Affine/TsaLayer (``kind = "conv"``)."""
    name = "conv"

    def shape(self, graph, node):
        x, w = graph.tensors[node.inputs[0]].shape, graph.tensors[node.inputs[1]].shape
        group = node.attrs.get("group", 1)
        if len(x) != len(w) or x[1] != w[1] * group:
            raise IRVerifyError(f"conv input {x} does not match weight {w} with group {group}",
                                node=node.name, op=node.op)
        if list(w[2:]) != list(node.attrs["kernel"]):
            raise IRVerifyError(f"kernel attr {node.attrs['kernel']} != weight {w}", node=node.name, op=node.op)
        return spatial_shape(node, x, w[0])

    # -- passes
    def fold_bias(self, graph, node, w_tilde, const, shift):
        """b~ = const + shift * (sum of W~ over the taps inside the input): a per-position map
        where padding cuts taps off, else one value per channel."""
        x = graph.tensors[inputs_of(node).x]
        tap_sum = kernels.conv2d(np.ones((1,) + x.shape[1:]), w_tilde, node.attrs)[0]
        b = const.reshape(-1, 1, 1) + shift * tap_sum
        if np.all(b == b[:, :1, :1]):
            b = b[:, :1, :1].copy()
        return b

    def int_weights(self, graph, node, W, b):
        return model_int_weights(graph, node, b)

    # -- numpy runtime
    def linear(self, node, xs, w, out=None):
        """The synaptic map on a batch, no bias (float32 operands write into ``out`` if given).
        Exact float32 depthwise convs run as shifted multiply-adds (``loops.depthwise_conv``),
        much faster than onnxruntime's grouped conv; the others through ``kernels.conv2d``."""
        x = xs[0]
        if x.dtype == np.float32 and _depthwise(node, x.shape[1], w):
            return loops.depthwise_conv(x, w, node.attrs, out)
        return kernels.conv2d(x, w, node.attrs, out)

    def linear_frames(self, node, frames, fold, w, out):
        """``linear`` of int8 spike frames ``[Tc, N, ...]`` folded by ``fold`` (runtime/neurons.py),
        for exact float32 depthwise convs (``loops.depthwise_conv_frames``); None for the others."""
        if _depthwise(node, frames.shape[2], w):
            return loops.depthwise_conv_frames(frames, fold, w, node.attrs, out)
        return None

    def split_weights(self, graph, node):
        return gemm_weights(graph, node, (1, 1))

    def real_current(self, node, xs, w, R):
        """Without integer weights: the real map in float64, in units of the reset R."""
        return self.linear(node, xs, w / R), None

    def float32_exact(self, node, beta, largest):
        """Without integer weights no float32 GEMM is exact."""
        return False

    def fanout(self, node, in_shapes, w):
        """Each input position reaches its window's output positions times the group's channels."""
        per = w.shape[0] // int(node.attrs.get("group", 1))
        return [np.broadcast_to(kernels.window_hits(in_shapes[0][1:], node.attrs) * per, in_shapes[0])]

    def dense_macs(self, graph, node, w):
        return int(np.prod(graph.tensors[node.outputs[0]].shape[1:])) * int(np.prod(w.shape[1:]))

    def im2col_taps(self, node):
        """Copies of the input numpy's im2col makes (the float64 path)."""
        return int(np.prod(node.attrs["kernel"]))

    # -- C backend
    def c_plan(self, pl, node, ident, xs):
        """A conv layer's loops (conv.c.j2): output channels in blocks (``pl.blocking``), each
        active input adding its weight row to the block; weights as [G][CG][KH][KW][MGP]."""
        wn = inputs_of(node).wq
        wq = pl.const(wn) if wn is not None else None
        if wq is None or wq.ndim != 4:
            raise UnsupportedOpError([(node.name, node.op, "only 2-D convolutions")])
        geo = c_window(node)
        G = int(node.attrs.get("group", 1))
        _, H, W = pl.frame(node.inputs[0])
        M, CG, KH, KW = wq.shape
        _, OH, OW = pl.frame(node.outputs[0])
        MG = M // G
        fan = int(np.abs(wq).reshape(M, -1).sum(axis=1).max())
        blk = pl.blocking(MG, fan)
        wt = wq.reshape(G, MG, CG, KH, KW).transpose(0, 2, 3, 4, 1)
        wt = np.pad(wt, [(0, 0)] * 4 + [(0, blk.MGP - MG)])
        wsym, wb, wct = pl.array(f"w_{ident}", wt, f"weights w - z_w as [{G}][{CG}][{KH}][{KW}][{blk.MGP}] "
                                 f"(group, in channel, ky, kx, out channel padded with 0), {node.name}")
        return ConvPlan(inp=xs[0], M=M, G=G, MG=MG, CG=CG, H=H, W=W, OH=OH, OW=OW, geo=geo, w=wsym, wct=wct,
                        npos=OH * OW, group_stride=CG * H * W * 2, blk=blk, fan=fan, flash=wb)


# ---- numpy runtime helpers
def _depthwise(node, channels: int, w) -> bool:
    """A depthwise conv (one input channel per output channel) with float32 weights."""
    return w.dtype == np.float32 and w.ndim == 4 and w.shape[1] == 1 and \
        int(node.attrs.get("group", 1)) == channels == w.shape[0]



def gemm_weights(graph, node, tail: tuple):
    """A conv/dense layer's weights as integers ``wq`` (float32, exact) and a real multiplier
    per output channel (shaped ``(M,) + tail``) with ``W = wq * mult``, so a frame of spikes
    goes through an exact float32 GEMM (semantics note section 7). (None, None) where the
    layer has no integer weights."""
    ins = inputs_of(node)
    if ins.wq is None:
        return None, None
    W = graph.const(ins.w)
    t = graph.tensors[ins.wq]
    wq = t.data.astype(np.float64)
    if t.quant is not None:
        zp = np.broadcast_to(t.quant.zero_point, (wq.shape[0],))
        wq = wq - zp.reshape((-1,) + (1,) * (wq.ndim - 1))
    m = wq.shape[0]
    num = (W.reshape(m, -1) * wq.reshape(m, -1)).sum(axis=1)
    den = (wq.reshape(m, -1) ** 2).sum(axis=1)
    mult = np.divide(num, den, out=np.zeros(m), where=den > 0)
    return wq.astype(np.float32), mult.reshape((m,) + tail)


# ---- C backend helpers
@dataclass
class ConvPlan:
    """The conv synapse's part of a TSA layer's C step (conv.c.j2): ``G`` groups of ``MG``
    output channels (``M`` in all) over ``CG`` input channels each; input planes H x W
    (``group_stride`` mask words per group), output OH x OW (``npos`` positions), window
    ``geo``; weights ``w`` of C type ``wct``; channel blocks ``blk``; ``fan`` bounds |acc|."""
    template: ClassVar[str] = "ops/conv.c.j2"
    spatial: ClassVar[bool] = True     # its neuron constants may vary by position (padding)
    inp: object
    M: int
    G: int
    MG: int
    CG: int
    H: int
    W: int
    OH: int
    OW: int
    geo: object
    w: str
    wct: str
    npos: int
    group_stride: int
    blk: object
    fan: int
    flash: int

    def scratch(self, msize: int, per_channel: bool, mask_bytes: int, tc: int) -> int:
        """Stack bytes of a block: accumulators, the widened weight row, the neurons' state, and a silent position's output where the constants are per channel."""
        return (self.blk.acc_size * (tc + 1) + 5 * msize + 24 + 2 * mask_bytes * per_channel) * self.blk.MB
