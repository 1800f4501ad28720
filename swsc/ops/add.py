"""Addition: ``QAdd`` (residual Add, requantization) and the weighted-add synapse of fused layers."""
from __future__ import annotations

import numpy as np

from swsc.requant import dq32, f32, finish, float_node, fma32, s8_as_u8

from .base import Op, Synapse, broadcast, register
from .base import inputs_of


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
