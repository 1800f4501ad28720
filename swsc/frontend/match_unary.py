"""Elementwise nonlinearities of a dequantized tensor (Sigmoid, Tanh, LeakyRelu, PRelu, HardSwish,
Gelu, Mish, ...) handlers of the matcher: each becomes a ``Lut`` (swsc/ops/lut.py), the table of the function
between the input's grid and the grid of the QuantizeLinear that follows.

``DQ -> f -> Q`` is what onnxruntime's quantize_static writes (QDQ, and QOperator for the ops it
has no QLinear kernel for); its QLinearSigmoid / QLinearLeakyRelu are lifted to the same form
(lift.py). The table is computed as onnxruntime computes the values: dequantize every input level
in float32 (``fp32(s) * fp32(q - z)``, QlinearBuildLookupTable and DequantizeLinear alike), apply
``f`` in float32 (the numpy float32 mirrors below of the ONNX definitions and onnxruntime's
kernels), quantize with round-half-even and clamp. onnxruntime's MLAS Sigmoid and Tanh are
polynomial approximations that may differ from numpy's in the last ulp; where that moves a value
across a rounding boundary the table differs from onnxruntime's by 1 LSB (tests/test_op_lut.py
measures it).

16-bit activations (A16W8) work the same way with tables of 65536 entries; there the ulp
differences of MLAS's Sigmoid/Tanh/Exp reach about 0.1% of the elements (1 LSB), measured on the
model of tests/test_op_lut.py (not a tested claim).

A chain of such functions between one DQ and one Q (DQ -> Sigmoid -> Tanh -> Q) becomes one table
(each function in float32 in turn, as onnxruntime runs them). The output of a function must be
quantized: one that feeds a graph output or another float op is refused by name.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ir import INT_RANGES, Quant
from .onnxgraph import ONode
from .values import Unsupported, View

f32 = np.float32


@dataclass
class Pending:
    """A chain of float functions of a dequantized tensor, waiting for its QuantizeLinear."""
    view: View
    fns: list          # float32 [rows, levels] -> [rows, levels], applied in order
    node: str          # the first function's node (names the Lut)


def _where(c, a, b):
    return np.where(c, a, b).astype(f32)


def _hard_sigmoid(x, alpha, beta):
    return np.maximum(np.minimum(x * f32(alpha) + f32(beta), f32(1)), f32(0))


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return (f32(1) / (f32(1) + np.exp(-x))).astype(f32)


def _softplus(x):
    # onnxruntime's form: x + log(exp(-x) + 1) for x > 0 (no overflow), log(exp(x) + 1) otherwise
    with np.errstate(over="ignore"):
        return _where(x > 0, x + np.log(np.exp(-x) + f32(1)), np.log(np.exp(x) + f32(1)))


def _exp(x):
    with np.errstate(over="ignore"):
        return np.exp(x).astype(f32)


#: erf in float32: the correctly rounded float64 value rounded to float32 (numpy has no erf;
#: onnxruntime's MLAS erf is a polynomial within an ulp or so of it)
_erf64 = np.vectorize(math.erf, otypes=[np.float64])


def _erf(x):
    return _erf64(x).astype(f32)


def _gelu(x, approximate):
    # ONNX Gelu-20: 0.5 x (1 + erf(x / sqrt 2)), or with approximate="tanh"
    # 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
    if approximate == "tanh":
        inner = np.tanh(f32(math.sqrt(2 / math.pi)) * (x + f32(0.044715) * x * x * x))
    else:
        inner = _erf(x * f32(1 / math.sqrt(2)))
    return (f32(0.5) * x * (f32(1) + inner)).astype(f32)


class UnaryOps:
    """Mixin of Matcher: needs val/cval/og/g/vals/consumers/emit/check_view/activation_grid/const."""

    # -- the ONNX ops: each names its float32 function
    def op_Sigmoid(self, n: ONode) -> None:
        self._unary(n, _sigmoid)

    def op_Tanh(self, n: ONode) -> None:
        self._unary(n, np.tanh)

    def op_Exp(self, n: ONode) -> None:
        self._unary(n, _exp)

    def op_Softplus(self, n: ONode) -> None:
        self._unary(n, _softplus)

    def op_Erf(self, n: ONode) -> None:
        self._unary(n, _erf)

    def op_Gelu(self, n: ONode) -> None:
        approximate = n.attrs.get("approximate", "none")
        if approximate not in ("none", "tanh"):
            raise Unsupported(f"Gelu approximate={approximate!r} (none or tanh expected)")
        self._unary(n, lambda x: _gelu(x, approximate))

    def op_Mish(self, n: ONode) -> None:
        # ONNX Mish-18: x * tanh(softplus(x))
        self._unary(n, lambda x: (x * np.tanh(_softplus(x))).astype(f32))

    def op_Neg(self, n: ONode) -> None:
        self._unary(n, np.negative)

    def op_Abs(self, n: ONode) -> None:
        self._unary(n, np.abs)

    def op_LeakyRelu(self, n: ONode) -> None:
        a = f32(n.attrs.get("alpha", 0.01))
        self._unary(n, lambda x: _where(x >= 0, x, a * x))

    def op_Elu(self, n: ONode) -> None:
        a = f32(n.attrs.get("alpha", 1.0))
        self._unary(n, lambda x: _where(x >= 0, x, a * (np.exp(x) - f32(1))))

    def op_HardSigmoid(self, n: ONode) -> None:
        a, b = n.attrs.get("alpha", 0.2), n.attrs.get("beta", 0.5)
        self._unary(n, lambda x: _hard_sigmoid(x, a, b))

    def op_HardSwish(self, n: ONode) -> None:
        # ONNX HardSwish-14: x * HardSigmoid(x, alpha = 1/6, beta = 0.5)
        self._unary(n, lambda x: x * _hard_sigmoid(x, 1.0 / 6.0, 0.5))

    def op_PRelu(self, n: ONode) -> None:
        slope = self.cval(n.inp(1))
        if slope is None:
            raise Unsupported("PRelu needs a constant slope")
        self._unary(n, None, slope=np.asarray(slope, f32))

    # -- the shared rule
    def _prelu(self, n: ONode, shape, slope):
        """PRelu's slope as rows of the table: one for all channels, or one per channel (axis 1)."""
        if slope.size == 1:
            s = f32(slope.reshape(-1)[0])
            return lambda x: _where(x < 0, x * s, x)
        try:    # ONNX broadcasting of the slope to the input (right-aligned)
            full = np.broadcast_to(slope, tuple(shape))[0]
        except ValueError:
            raise Unsupported(f"PRelu slope of shape {list(slope.shape)} does not broadcast to {list(shape)}") \
                from None
        per = full.reshape(full.shape[0], -1) if full.ndim else full.reshape(1, 1)
        if len(shape) < 2 or not np.all(per == per[:, :1]):
            raise Unsupported("PRelu slope must be one value or one per channel (axis 1)")
        s = per[:, :1].astype(f32)                       # [C, 1]: row c of the table is channel c
        return lambda x: _where(x < 0, x * s, x)

    def _unary(self, n: ONode, fn, slope=None) -> None:
        v = self.val(n.inputs[0])
        if isinstance(v, Pending):
            chain = Pending(v.view, list(v.fns), v.node)
        elif isinstance(v, View):
            chain = Pending(v, [], n.name)
        else:
            raise Unsupported(f"{n.op} needs a dequantized tensor as input (DequantizeLinear -> {n.op} -> "
                              "QuantizeLinear)")
        chain.fns.append(fn if slope is None else self._prelu(n, chain.view.shape, slope))
        self._continue(n, chain)

    def _continue(self, n: ONode, chain: Pending) -> None:
        """A table function's output: emitted as a Lut onto the grid of its QuantizeLinear(s), or
        composed into the next function's table."""
        y = n.outputs[0]
        users = self.consumers.get(y, [])
        if y in self.og.outputs or not users:
            raise Unsupported(f"the float output of {n.op} is a graph output: swsc computes {n.op} as a table "
                              "between two quantized grids and needs a QuantizeLinear after it")
        if all(u.op == "QuantizeLinear" for u in users):
            self.vals[y] = self._emit_lut(n, chain, users)
        elif len(users) == 1 and hasattr(self, "op_" + users[0].op) and users[0].op in UNARY:
            self.vals[y] = chain                          # composed into the next function's table
        else:
            raise Unsupported(f"the float output of {n.op} feeds {', '.join(sorted({u.op for u in users}))}: "
                              f"swsc computes {n.op} as a table and needs a QuantizeLinear after it")

    def _emit_lut(self, n: ONode, chain: Pending, users) -> View:
        """The table of the chain onto the grid of its QuantizeLinear(s), as a ``Lut``; the value
        of the float output is the Lut's output dequantized, which only that grid ever reads."""
        grids = {self.activation_grid(u) for u in users}
        if len(grids) != 1:
            raise Unsupported(f"the output of {n.op} is quantized onto {len(grids)} different grids")
        (s, z, dt), = grids
        ir = self.check_view(chain.view)
        x = self.g.tensors[ir]
        base, top = INT_RANGES[x.dtype]
        q = np.arange(base, top + 1, dtype=np.int64)[None, :]
        # dequantize in float32 as onnxruntime does: fp32(s) * fp32(q - z)
        val = f32(chain.view.scale) * (q - chain.view.zp).astype(f32)
        with np.errstate(invalid="ignore"):
            for fn in chain.fns:
                val = np.asarray(fn(val), f32)
            if np.isnan(val).any():
                raise Unsupported(f"{n.op} is undefined (NaN) on part of its input's range")
            lo, hi = INT_RANGES[dt]
            table = np.clip(np.rint(val / f32(s)) + z, lo, hi).astype(np.int32)
        tab = self.const(f"{chain.node}_table", np.ascontiguousarray(table))
        out = self.emit("Lut", chain.node, [ir, tab], users[0].outputs[0], dt, x.shape, Quant(s, z, None, lo, hi),
                        {"base": int(base)})
        self.tables[out] = (ir, table, int(base))
        return View(float(s), int(z), x.shape, n.outputs[0], ir=out)

    # -- products of two functions of one tensor (SiLU: x * Sigmoid(x); Mish: x * Tanh(Softplus(x)))
    def _codes_of(self, v):
        """A dequantized operand as a function of the codes of the tensor it is computed from:
        (source IR tensor, float32 values [rows, levels] over the source's codes), or None. The
        source's own DequantizeLinear is the identity; the output of a table is its table."""
        if not isinstance(v, View) or v.ir is None or v.parents:
            return None
        path, src = [], v.ir
        while src in self.tables:                    # a table of a table of ... the source
            src, table, base = self.tables[src]
            path.append((table, base))
        t = self.g.tensors[src]
        if t.quant is None or t.dtype not in INT_RANGES:
            return None
        lo, hi = INT_RANGES[t.dtype]
        codes = np.arange(lo, hi + 1, dtype=np.int64)[None, :]
        for table, base in reversed(path):          # innermost first; rows: one, or one per channel
            rows = max(table.shape[0], codes.shape[0])
            codes = np.take_along_axis(np.broadcast_to(table, (rows, table.shape[1])).astype(np.int64),
                                       np.broadcast_to(codes - base, (rows, codes.shape[1])), axis=1)
        return src, f32(v.scale) * (codes - v.zp).astype(f32)

    def product_table(self, n: ONode) -> bool:
        """Mul of two dequantized tensors that are both functions of one quantized tensor (x and a
        table of x, as onnxruntime quantizes torch's SiLU and Mish) is itself a function of that
        tensor: a table, the product computed in float32 as onnxruntime's Mul; False where the
        operands are anything else."""
        a, b = (self._codes_of(self.val(i)) for i in n.inputs[:2])
        if a is None or b is None or a[0] != b[0]:
            return False
        if tuple(self.og.shape(n.outputs[0]) or ()) != tuple(self.g.tensors[a[0]].shape):
            return False
        prod = (a[1] * b[1]).astype(f32)
        src = self.view_of_q(a[0], n.inputs[0])
        self._continue(n, Pending(src, [lambda _val: prod], n.name))
        return True



#: the ONNX ops this mixin computes as tables (a chain of them composes into one)
UNARY = ("Sigmoid", "Tanh", "Exp", "Softplus", "Neg", "Abs", "LeakyRelu", "Elu", "HardSigmoid", "HardSwish",
         "PRelu", "Erf", "Gelu", "Mish")
