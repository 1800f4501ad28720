"""Average pooling: ``QAvgPool`` and the sum-pool synapse (``kind = "avgpool"``) of fused layers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from swsc import kernels
from swsc.errors import UnsupportedOpError
from swsc.ir import scalar
from swsc.requant import dq32, f32, finish, float_node, meta_list, mlas_global_mean, requant_float, s8_as_u8

from .base import GEOM, Op, Synapse, affine_node, inputs_of, pool_shape, register, window_out
from .cgeometry import c_window


@register
class QAvgPool(Op):
    name = "QAvgPool"
    inputs = ("x",)
    attrs = {**GEOM, "count_include_pad": False}
    doc = "quantized average pool (global pooling is a kernel over the whole plane)"

    shape = staticmethod(pool_shape)

    # -- front-end
    def build(self, fe, lin, y, rq, dt, q):
        """AveragePool, GlobalAveragePool or a ReduceMean over H and W (``lin.kind`` pool/mean):
        global forms are a window over the whole plane that counts every tap."""
        xv = lin.x[0]
        x = fe.check_view(xv)
        H, W = xv.shape[2:]
        if lin.kind == "mean" and set(lin.reduced) != {2, 3}:
            raise fe.Unsupported("mean over a single spatial axis is not supported")
        if lin.kind == "mean" or lin.attrs.get("global"):
            attrs = {"kernel": [H, W], "strides": [1, 1], "pads": [0, 0, 0, 0], "count_include_pad": 1}
        else:
            attrs = dict(lin.attrs)
        sh = fe.g.tensors[x].shape
        kk, ss, pp = attrs["kernel"], attrs["strides"], attrs["pads"]
        nat = (sh[0], sh[1]) + tuple(window_out(sh[2 + i], kk[i], ss[i], pp[i], pp[i + 2]) for i in range(2))
        return fe.emit_natural(self.name, lin, [x], y, nat, dt, q, attrs, "pool")

    # -- reference (ANN)
    def reference(self, graph, node, env):
        """QLinearGlobalAveragePool / QLinearAveragePool, or their float32 mirror where
        onnxruntime does not fuse the cluster (runtime/reference.py lists the formulas)."""
        x = graph.tensors[node.inputs[0]]
        y = graph.tensors[node.outputs[0]]
        attrs = dict(node.attrs)
        k = list(attrs["kernel"])
        pads = list(attrs.get("pads") or [0, 0, 0, 0])
        xv = env[x.name]
        zx = float(np.asarray(x.quant.zero_point))
        if float_node(graph, node) and node.name in meta_list(graph, "ort_mlas_global_pool"):
            # DequantizeLinear -> float GlobalAveragePool (MlasPoolGlobalKernel) -> QuantizeLinear
            return requant_float(mlas_global_mean(dq32(x, xv)), y.quant, y.dtype)
        if float_node(graph, node):
            # DequantizeLinear -> float ReduceMean -> QuantizeLinear
            deq = (f32(x.quant.scale) * (xv.astype(np.float64) - zx).astype(f32)).astype(np.float64)
            avg = (kernels.sum_pool(deq, attrs).astype(f32) / f32(k[0] * k[1])).astype(f32)
            return requant_float(avg, y.quant, y.dtype)
        if list(x.shape[2:]) == k and not any(pads):
            # QLinearGlobalAveragePool (MLAS): integer sum, one float32 multiplier
            acc = xv.astype(np.float64).sum(axis=(2, 3), keepdims=True) - zx * (k[0] * k[1])
            m = f32(f32(x.quant.scale) / f32(f32(y.quant.scale) * f32(k[0] * k[1])))
            return finish(acc.astype(f32) * m, y.quant, y.dtype)
        # QLinearAveragePool: dequantize to float32, sum the window in raster order in
        # float32, divide by the count, then rint(avg / s_y + z_y)
        deq = (f32(x.quant.scale) * (xv.astype(np.float64) - zx).astype(f32)).astype(f32)
        zy = float(np.asarray(y.quant.zero_point))
        shift = 128.0 if (y.dtype == "int8" and s8_as_u8(graph)) else 0.0
        win = kernels.windows(deq, attrs)                      # N, C, H', W', kh, kw
        acc = np.zeros(win.shape[:4], f32)
        for i in range(k[0]):
            for j in range(k[1]):
                acc = (acc + win[..., i, j]).astype(f32)
        if attrs.get("count_include_pad", 0):
            cnt = np.full(acc.shape[2:], f32(k[0] * k[1]), f32)
        else:
            cnt = kernels.pool_counts(x.shape[2:], attrs).astype(f32)
        avg = (acc / cnt).astype(f32)
        v = (avg / f32(y.quant.scale)).astype(f32) + f32(zy + shift)
        r = np.rint(v.astype(f32)).astype(np.float64) - shift
        return np.clip(r, y.quant.lo, y.quant.hi).astype(y.dtype)

    # -- passes
    def fold(self, graph, node):
        """W~ = s_i / (s_o n) per output position (n taps averaged; fewer at padded borders with
        count_include_pad=0) and b~ the matching map; one value each where they do not vary."""
        x, out = graph.tensors[inputs_of(node).x], graph.tensors[node.outputs[0]]
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
        return affine_node(graph, node, AvgPoolSynapse.name, [inputs_of(node).x], factor, b)


@register
class AvgPoolSynapse(Synapse):
    """The avgpool synapse of Affine/TsaLayer (``kind = "avgpool"``)."""
    name = "avgpool"

    shape = staticmethod(pool_shape)

    # -- passes
    def int_weights(self, graph, node, W, b):
        """A plain window sum; its factor may vary by position (count_include_pad=0 at padded
        borders), and then so do bq and rq, as per-position constants."""
        return None, np.asarray(W, np.float64), int(np.prod(node.attrs["kernel"]))

    # -- numpy runtime
    def linear(self, node, xs, w, out=None):
        """The window sum times the layer's one weight (``out`` unused: no GEMM)."""
        return kernels.sum_pool(xs[0], node.attrs) * w

    def split_weights(self, graph, node):
        """No integer weight matrix: the sum-pool is exact by itself."""
        return None, None

    def real_current(self, node, xs, w, R):
        """The window sum; the weight, in units of R, applied in the scan."""
        return kernels.sum_pool(xs[0], node.attrs), w / R

    def float32_exact(self, node, beta, largest):
        """A window sum of integer frames is exact in float32 below 2^24."""
        return beta == int(beta) and float(np.prod(node.attrs["kernel"])) * largest < kernels.FLOAT32_EXACT

    def fanout(self, node, in_shapes, w):
        """Each input position reaches the windows that cover it."""
        return [np.broadcast_to(kernels.window_hits(in_shapes[0][1:], node.attrs), in_shapes[0])]

    def dense_macs(self, graph, node, w):
        return int(np.prod(graph.tensors[node.outputs[0]].shape[1:])) * int(np.prod(node.attrs["kernel"]))

    def im2col_taps(self, node):
        return 1

    # -- C backend
    def c_plan(self, pl, node, ident, xs):
        """A sum-pool layer's loops (avgpool.c.j2): each window's spikes summed frame by frame."""
        geo = c_window(node)
        if geo is None:
            raise UnsupportedOpError([(node.name, node.op, "only 2-D pooling")])
        C, H, W = pl.frame(node.inputs[0])
        _, OH, OW = pl.frame(node.outputs[0])
        return AvgPoolPlan(inp=xs[0], M=C, H=H, W=W, OH=OH, OW=OW, geo=geo, npos=OH * OW,
                           chan_stride=H * W * 2, fan=geo.KH * geo.KW, flash=0)


# ---- C backend helpers
@dataclass
class AvgPoolPlan:
    """The sum-pool synapse's part of a TSA layer's C step (avgpool.c.j2): ``M`` planes H x W
    (``chan_stride`` mask words apart) to OH x OW (``npos`` positions) through window ``geo``."""
    template: ClassVar[str] = "ops/avgpool.c.j2"
    spatial: ClassVar[bool] = True     # count_include_pad=0: the constants vary at the borders
    inp: object
    M: int
    H: int
    W: int
    OH: int
    OW: int
    geo: object
    npos: int
    chan_stride: int
    fan: int
    flash: int

    def scratch(self, msize: int, per_channel: bool, mask_bytes: int, tc: int) -> int:
        """One neuron at a time: its membrane and state."""
        return 2 * msize + 4
