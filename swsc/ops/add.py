"""Addition: ``QAdd`` (residual Add, requantization) and the weighted-add synapse of fused layers."""
from __future__ import annotations

import math

import numpy as np

from swsc.errors import UnsupportedOpError
from swsc.ir import INT_RANGES, scalar

from .base import Op, Synapse, broadcast, register
from .base import affine_node, inputs_of


@register
class QAdd(Op):
    name = "QAdd"
    inputs = ("*x",)
    attrs = {}
    doc = "sum of requantized inputs (a residual Add; one input = a requantization); a constant input is a quantized constant operand"

    def shape(self, graph, node):
        return [broadcast([graph.tensors[i].shape for i in node.inputs], node)]

    # -- reference (ANN)

    # -- passes
    def fold(self, graph, node):
        """W~_k = s_k / s_o per spike input; constant operands and the inputs' shifts
        ``(lo_k - z_k) W~_k`` fold into b~."""
        out = graph.tensors[node.outputs[0]]
        s_o = scalar(out.quant.scale)
        frame = out.shape[1:]
        b = np.full((1,) * len(frame), scalar(out.quant.zero_point) - out.quant.lo, dtype=np.float64)
        factors, spikes = [], []
        for name in inputs_of(node).x:
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
        return affine_node(graph, node, AddSynapse.name, spikes, np.array(factors), b)

    # -- numpy runtime

    # -- C backend


@register
class AddSynapse(Synapse):
    """The add synapse of Affine/TsaLayer (``kind = "add"``)."""
    name = "add"

    def shape(self, graph, node):
        n = node.attrs["n_inputs"]
        return [broadcast([graph.tensors[i].shape for i in node.inputs[:n]], node)]

    # -- reference (ANN)

    # -- passes
    def rescale_weights(self, graph, node, w, theta_out):
        """One weight per input: ``W_k = W~_k theta_k / theta_out``."""
        for k, name in enumerate(inputs_of(node).x):
            w[k] *= graph.tensors[name].quant.theta / theta_out
        return w

    def int_weights(self, graph, node, W, b):
        """Fixed-point weights round(W 2^G): G is chosen with the constants (int_candidates)."""
        return None, np.array([1.0]), 0

    def int_candidates(self, W, wq, M, fan, *, S, beta, ts, unit_err):
        """Fixed-point weights round(W_k 2^G). Where some G makes them exact (equal scales:
        W = 1), they are treated like integer weights; otherwise their rounding error, up to
        0.5 2^-G per input LSB over S n input LSB, dominates, and the bias/reset unit acc_mul
        buys range only: acc_mul = 1 and the widest G that fits."""
        out = []
        e = max(0, math.ceil(math.log2(max(float(np.abs(W).max()), 1e-30))))
        n = max(1, W.size)
        exact = next((G for G in range(ADD_WEIGHT_BITS - e + 1) if np.all(np.rint(W * 2.0 ** G) == W * 2.0 ** G)),
                     None)
        w = np.asarray(W, np.float64).reshape(-1)
        for G in range(ADD_WEIGHT_BITS - e, -1, -1):
            q = np.rint(W * 2.0 ** G).astype(np.int64)
            out.append((q, np.array([2.0 ** -G]), int(np.abs(q).sum()), 1, 2.0 ** -G * (0.5 * S * n + unit_err)))
        if exact is None:
            # near the widest scale that can fit (about 3 (sum|W| + beta^Ts) L per membrane), a
            # scale L that is not a power of two can bring every W_k L close to an integer at
            # once: search the 2^20 scales below each 2^G for the smallest weight error
            g_fit = int(math.floor(math.log2(INT32_MAX / (3 * (np.abs(w).sum() + beta ** ts + 1)))))
            for G in range(max(1, g_fit - 2), min(ADD_WEIGHT_BITS - e, g_fit + 2) + 1):
                L = np.arange(max(1, 2 ** G - 2 ** 20), 2 ** G, dtype=np.float64)
                miss = np.abs(np.rint(np.outer(L, w)) - np.outer(L, w)).sum(axis=1)
                best = int(np.argmin(miss))
                Lb = float(L[best])
                q = np.rint(W * Lb).astype(np.int64)
                out.append((q, np.array([1.0 / Lb]), int(np.abs(q).sum()), 1,
                            (float(miss[best]) * S + unit_err) / Lb))
            return out, None
        wq = np.rint(W * 2.0 ** exact).astype(np.int64)
        return out, (wq, np.array([2.0 ** -exact]), int(np.abs(wq).sum()))

    # -- numpy runtime

    # -- C backend


# ---- passes helpers
ADD_WEIGHT_BITS = 30     # |round(W_k 2^G)| < 2^30: the finest add weights tried
INT32_MAX = INT_RANGES["int32"][1]
