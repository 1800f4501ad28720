"""Addition: ``QAdd`` (residual Add, requantization) and the weighted-add synapse of fused layers."""
from __future__ import annotations

import numpy as np

from swsc.requant import dq32, f32, finish, float_node, fma32, s8_as_u8

from .base import Op, Synapse, broadcast, register
from .base import inputs_of
from dataclasses import dataclass
from typing import ClassVar


from swsc.errors import SwscError
from swsc.errors import UnsupportedOpError

from .base import inputs_of, prod


@register
class QAdd(Op):
    name = "QAdd"
    inputs = ("*x",)
    attrs = {}
    doc = "sum of requantized inputs (a residual Add; one input = a requantization); a constant input is a quantized constant operand"

    def shape(self, graph, node):
        return [broadcast([graph.tensors[i].shape for i in node.inputs], node)]

    # -- reference (ANN)
    def reference(self, graph, node, env):
        """QLinearAdd (MLAS, AVX2 form), a requantization (one input), or their float32 mirror
        (runtime/reference.py lists the formulas)."""
        y = graph.tensors[node.outputs[0]]
        ins = [graph.tensors[i] for i in inputs_of(node).x]
        vals = [t.data if t.is_const else env[t.name] for t in ins]
        sy, zy = f32(y.quant.scale), f32(float(np.asarray(y.quant.zero_point)))
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
            a, b = (v.astype(np.float64) + shift for v in vals)
            a, b = a.astype(f32), b.astype(f32)
            zy = f32(float(np.asarray(y.quant.zero_point)) + shift)
            (ta, tb) = ins
            ra, rb = f32(f32(ta.quant.scale) / sy), f32(f32(tb.quant.scale) / sy)
            za = f32(float(np.asarray(ta.quant.zero_point)) + shift)
            zb = f32(float(np.asarray(tb.quant.zero_point)) + shift)
            fixed = f32(zy - fma32(ra, za, f32(rb * zb)))
            if b.size == 1:
                fixed = f32(fixed + f32(b.reshape(-1)[0] * rb))
                v = fma32(a, ra, fixed)
            elif a.size == 1:
                fixed = f32(fixed + f32(a.reshape(-1)[0] * ra))
                v = fma32(b, rb, fixed)
            else:
                a, b = np.broadcast_arrays(a, b)
                v = fma32(a, ra, fma32(b, rb, fixed))
            # the kernel's float already includes z_y: round, then clamp to [lo, hi]
            r = np.rint(v).astype(np.float64) - shift
            return np.clip(r, y.quant.lo, y.quant.hi).astype(y.dtype)
        acc = sum(f32(t.quant.scale / y.quant.scale) * (v.astype(np.float64) - float(np.asarray(t.quant.zero_point)))
                  for t, v in zip(ins, vals))
        return finish(np.asarray(acc, np.float64).astype(f32), y.quant, y.dtype)

    # -- passes

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
