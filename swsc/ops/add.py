"""Addition: ``QAdd`` (residual Add, requantization) and the weighted-add synapse of fused layers."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from swsc.errors import SwscError, UnsupportedOpError
from swsc.ir import INT_RANGES, scalar
from swsc.requant import dq32, f32, finish, float_node, qlinear_add, s8_as_u8

from .base import Op, Synapse, affine_node, broadcast, inputs_of, prod, register


@register
class QAdd(Op):
    name = "QAdd"
    inputs = ("*x",)
    attrs = {}
    doc = "sum of requantized inputs (a residual Add; one input = a requantization); a constant input is a quantized constant operand"

    def shape(self, graph, node):
        return [broadcast([graph.tensors[i].shape for i in node.inputs], node)]

    # -- front-end
    def build(self, fe, lin, y, rq, dt, q):
        """A matched Add (or requantization): spike inputs, constant operands as quantized constants."""
        ins = [fe.check_view(v) if fe.is_view(v) else fe.const_operand(v) for v in lin.x]
        return fe.emit(self.name, lin.node, ins, y, dt, lin.shape, q)

    # -- reference (ANN)
    def reference(self, graph, node, env):
        """QLinearAdd (MLAS, AVX2 form), a requantization (one input), or their float32 mirror
        (runtime/reference.py lists the formulas)."""
        y = graph.tensors[node.outputs[0]]
        ins = [graph.tensors[i] for i in inputs_of(node).x]
        vals = [t.data if t.is_const else env[t.name] for t in ins]
        sy = f32(y.quant.scale)
        if len(ins) == 1:
            t = ins[0]
            real = f32(t.quant.scale) * (vals[0].astype(np.float64) - float(np.asarray(t.quant.zero_point))).astype(f32)
            v = real.astype(f32) / sy
            return finish(v, y.quant, y.dtype)
        if float_node(graph, node):
            # DequantizeLinear -> float Add -> QuantizeLinear, all in float32 (no QLinearAdd fusion)
            total = None
            for t, v in zip(ins, vals):
                d = dq32(t, v)
                total = d if total is None else (total + d).astype(f32)
            return finish((total / sy).astype(f32), y.quant, y.dtype)
        if len(ins) == 2:
            shift = 128.0 if (y.dtype == "int8" and s8_as_u8(graph)) else 0.0
            (ta, tb), (a, b) = ins, vals
            return qlinear_add(a, ta.quant.scale, ta.quant.zero_point, b, tb.quant.scale, tb.quant.zero_point,
                               y.quant, y.dtype, shift)
        acc = sum(f32(t.quant.scale / y.quant.scale) * (v.astype(np.float64) - float(np.asarray(t.quant.zero_point)))
                  for t, v in zip(ins, vals))
        return finish(np.asarray(acc, np.float64).astype(f32), y.quant, y.dtype)

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


@register
class AddSynapse(Synapse):
    """The add synapse of Affine/TsaLayer (``kind = "add"``)."""
    name = "add"

    def shape(self, graph, node):
        n = node.attrs["n_inputs"]
        return [broadcast([graph.tensors[i].shape for i in node.inputs[:n]], node)]

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
    def linear(self, node, xs, w, out=None):
        """The weighted sum of the inputs (``out`` unused: no GEMM)."""
        return sum(wk * x for wk, x in zip(w, xs))

    def split_weights(self, graph, node):
        """One weight per input: no GEMM to make exact."""
        return None, None

    def real_current(self, node, xs, w, R):
        """The real weighted sum in float64, in units of the reset R."""
        return self.linear(node, xs, w / R), None

    def float32_exact(self, node, beta, largest):
        return False

    def fanout(self, node, in_shapes, w):
        """Each input position reaches its one output."""
        return [np.ones(s, dtype=np.int64) for s in in_shapes]

    def dense_macs(self, graph, node, w):
        return int(np.prod(graph.tensors[node.outputs[0]].shape[1:])) * node.attrs["n_inputs"]

    def im2col_taps(self, node):
        return 1

    # -- C backend
    def c_plan(self, pl, node, ident, xs):
        """A weighted-add layer's loops (add.c.j2): per neuron, the weighted sum of its inputs'
        spikes; an input broadcast per channel or as a scalar reads with stride 0."""
        ins = inputs_of(node)
        w = pl.const(ins.wq).reshape(-1)
        if w.size != len(ins.x):
            raise SwscError(f"add layer has {w.size} weights for {len(ins.x)} inputs", node=node.name, op=node.op)
        frame = pl.frame(node.outputs[0])
        npos = prod(frame[1:])
        terms = []
        for buf, name, wk in zip(xs, ins.x, w.tolist()):
            fr = pl.frame(name)
            fr = (1,) * (len(frame) - len(fr)) + tuple(fr)
            if tuple(fr) == tuple(frame):
                m_stride, p_stride = npos, 1
            elif all(v == 1 for v in fr[1:]) and fr[0] == frame[0]:
                m_stride, p_stride = 1, 0
            elif all(v == 1 for v in fr):
                m_stride, p_stride = 0, 0
            else:
                raise UnsupportedOpError([(node.name, node.op, f"broadcast of an input {fr} to {frame}")])
            terms.append(AddTerm(buf=buf, w=pl.c_int(wk), m_stride=m_stride, p_stride=p_stride))
        return AddPlan(terms=terms, M=frame[0], npos=npos, fan=int(np.abs(w).sum()), flash=4 * len(terms))


# ---- C backend helpers
@dataclass
class AddTerm:
    """One input of a weighted add: weight ``w`` (a C literal); neuron (m, p) reads its train
    ``m * m_stride + p * p_stride`` (strides 0 broadcast it)."""
    buf: object
    w: str
    m_stride: int
    p_stride: int


@dataclass
class AddPlan:
    """The add synapse's part of a TSA layer's C step (add.c.j2): ``M`` channels of ``npos``
    positions, each the weighted sum of the ``terms``; ``fan`` bounds |acc|."""
    template: ClassVar[str] = "ops/add.c.j2"
    spatial: ClassVar[bool] = False
    terms: list
    M: int
    npos: int
    fan: int
    flash: int

    def scratch(self, msize: int, per_channel: bool, mask_bytes: int, tc: int) -> int:
        """One neuron at a time: its membrane and state."""
        return 2 * msize + 4


# ---- passes helpers
ADD_WEIGHT_BITS = 30     # |round(W_k 2^G)| < 2^30: the finest add weights tried
INT32_MAX = INT_RANGES["int32"][1]
