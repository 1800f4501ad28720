"""Elementwise nonlinearities of a dequantized tensor (Sigmoid, Tanh, LeakyRelu, PRelu, HardSwish,
Gelu, Mish, ...) handlers of the matcher: each becomes a ``Lut`` (swsc/ops/lut.py), the table of the function
between the input's grid and the grid of the QuantizeLinear that follows.

``DQ -> f -> Q`` is what onnxruntime's quantize_static writes (QDQ, and QOperator for the ops it
has no QLinear kernel for); its QLinearSigmoid / QLinearLeakyRelu are lifted to the same form
(lift.py). The table is computed as onnxruntime computes the values: dequantize every input level
in float32 (``fp32(s) * fp32(q - z)``, QlinearBuildLookupTable and DequantizeLinear alike), apply
``f`` in float32 (the numpy float32 mirrors below of the ONNX definitions and onnxruntime's
kernels), quantize with round-half-even and clamp. onnxruntime's Sigmoid and Tanh are MLAS's
rational approximations, mirrored here to the bit (its x86 FMA3 kernels: fused multiply-adds);
its Exp and Erf, and the libm calls of Softplus, are within an ulp of numpy's, which moves a
value across a rounding boundary on a few codes in 10,000 (1 LSB).

16-bit activations (A16W8) work the same way with tables of 65536 entries (tests/test_op_lut.py
checks every code against onnxruntime: Sigmoid, Tanh and HardSwish exact, the others >= 99.9%).

A chain of such functions between one DQ and one Q (DQ -> Sigmoid -> Tanh -> Q) becomes one table
(each function in float32 in turn, as onnxruntime runs them). The output of a function must be
quantized: one that feeds a graph output or another float op is refused by name.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ir import INT_RANGES, Quant
from ..requant import qlinear_add, qlinear_mul
from .onnxgraph import ONode
from .values import Unsupported, View, WConst, _scalar

f32 = np.float32


@dataclass
class Pending:
    """A chain of float functions of a dequantized tensor, waiting for its QuantizeLinear."""
    view: View
    fns: list          # float32 [rows, levels] -> [rows, levels], applied in order
    node: str          # the first function's node (names the Lut)
    kernel: object = None   # (scale, zero point, dtype) -> codes [rows, levels] or None: where
                            # onnxruntime computes the last op and its quantization in one kernel


@dataclass
class Operand:
    """An operand of an elementwise op: its codes for each code of one source tensor (or a
    constant: ``src`` None), on the grid (scale, zp)."""
    src: str | None
    q: np.ndarray | None       # int64 [rows, levels]; [1, 1] for a constant
    scale: float
    zp: int
    direct: bool               # made by a DequantizeLinear: onnxruntime can fuse its QLinear op
    table: bool                # through at least one table (not the source itself)
    value: np.ndarray | None = None    # a float constant

    def real(self) -> np.ndarray:
        """DequantizeLinear in float32: fp32(s) * fp32(q - z)."""
        return self.value if self.q is None else f32(self.scale) * (self.q - self.zp).astype(f32)


def _where(c, a, b):
    return np.where(c, a, b).astype(f32)


def _hard_sigmoid(x, alpha, beta):
    return np.maximum(np.minimum(x * f32(alpha) + f32(beta), f32(1)), f32(0))


def _fma(a, b, c):
    """float32 fused multiply-add: the float32 product is exact in float64, so one rounding."""
    return (np.asarray(a, np.float64) * np.float64(b) + np.float64(c)).astype(f32)


def _rational(x, lim, num, den):
    """MLAS's Sigmoid/Tanh (the rational approximations of Eigen, x86 FMA3 kernels): x clamped to
    +-lim, then x * P(x^2) / Q(x^2), each polynomial by Horner's rule in fused multiply-adds."""
    v = np.clip(x, f32(-lim), f32(lim)).astype(f32)
    v2 = (v * v).astype(f32)
    p, q = np.full_like(v2, num[0]), np.full_like(v2, den[0])
    for c in num[1:]:
        p = _fma(p, v2, f32(c))
    for c in den[1:]:
        q = _fma(q, v2, f32(c))
    return ((p * v).astype(f32) / q).astype(f32)


#: MlasLogisticConstants / MlasTanhConstants (onnxruntime/core/mlas/lib/logistic.cpp, tanh.cpp)
_LOGISTIC = (18.0, (4.37031012579801e-11, 1.15627324459942e-07, 6.08574864600143e-05, 8.51377133304701e-03,
                    2.48287947061529e-01),
             (6.10247389755681e-13, 5.76102136993427e-09, 6.29106785017040e-06, 1.70198817374094e-03,
              1.16817656904453e-01, 9.93151921023180e-01))
_TANH = (9.0, (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
               1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03),
         (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03))


def _sigmoid(x):
    # MlasComputeLogistic: the rational function plus 1/2, clamped to [0, 1]
    return np.clip(_rational(x, *_LOGISTIC) + f32(0.5), f32(0), f32(1)).astype(f32)


def _tanh(x):
    # MlasComputeTanh
    return _rational(x, *_TANH)


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
        inner = _tanh(f32(math.sqrt(2 / math.pi)) * (x + f32(0.044715) * x * x * x))
    else:
        inner = _erf(x * f32(1 / math.sqrt(2)))
    return (f32(0.5) * x * (f32(1) + inner)).astype(f32)


class UnaryOps:
    """Mixin of Matcher: needs val/cval/og/g/vals/consumers/emit/check_view/activation_grid/const."""

    # -- the ONNX ops: each names its float32 function
    def op_Sigmoid(self, n: ONode) -> None:
        self._unary(n, _sigmoid)

    def op_Tanh(self, n: ONode) -> None:
        self._unary(n, _tanh)

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
        self._unary(n, lambda x: (x * _tanh(_softplus(x))).astype(f32))

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
            chain = Pending(v.view, list(v.fns), v.node)   # (a kernel only ever ends a chain)
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
        lo, hi = INT_RANGES[dt]
        table = None if chain.kernel is None else chain.kernel(s, z, dt)
        if table is None:
            with np.errstate(invalid="ignore"):
                for fn in chain.fns:
                    val = np.asarray(fn(val), f32)
                if np.isnan(val).any():
                    raise Unsupported(f"{n.op} is undefined (NaN) on part of its input's range")
                table = np.clip(np.rint(val / f32(s)) + z, lo, hi)
        table = table.astype(np.int32)
        tab = self.const(f"{chain.node}_table", np.ascontiguousarray(table))
        out = self.emit("Lut", chain.node, [ir, tab], users[0].outputs[0], dt, x.shape, Quant(s, z, None, lo, hi),
                        {"base": int(base)})
        self.tables[out] = (ir, table, int(base))
        return View(float(s), int(z), x.shape, n.outputs[0], ir=out)

    # -- arithmetic on functions of one tensor (SiLU: x * Sigmoid(x); GELU as torch's legacy exporter
    # writes it: 0.5 * x * (1 + Erf(x / sqrt 2)), each step quantized)
    def _operand(self, v) -> Operand | None:
        """An operand of an elementwise op as a function of the codes of the tensor it is computed
        from, or a one-element constant; None for anything else. The source's own DequantizeLinear
        is the identity; the output of a table is its table."""
        if isinstance(v, WConst):
            if v.data.size != 1 or v.scale.size != 1 or v.zp.size != 1:
                return None
            return Operand(None, v.data.astype(np.int64).reshape(1, 1), float(_scalar(v.scale)), int(_scalar(v.zp)),
                           True, False)
        if isinstance(v, np.ndarray):
            if v.size != 1 or v.dtype.kind != "f":
                return None
            return Operand(None, None, 1.0, 0, False, False, value=v.astype(f32).reshape(1, 1))
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
        wide = t.dtype in ("uint16", "int16") or self.g.tensors[v.ir].dtype in ("uint16", "int16")
        return Operand(src, codes, float(v.scale), int(v.zp), v.direct and not wide, bool(path))

    def elementwise_table(self, n: ONode) -> bool:
        """Add/Sub/Mul/Div whose operands are functions of one quantized tensor (x and a table of x,
        or a table of x and a constant) is itself a function of that tensor: a table, computed as
        onnxruntime computes the op (QLinearMul / QLinearAdd where it fuses the cluster, else
        DequantizeLinear, the op in float32, QuantizeLinear). The same op on a float value that
        feeds a table function (the Div of DQ(x) / sqrt 2 -> Erf) joins that table. False for the
        other forms: the source itself and a constant is an affine layer, x + x a QAdd
        (match_postops.py)."""
        ops = [self._operand(self.val(i)) for i in n.inputs[:2]]
        if None in ops or len({o.src for o in ops} - {None}) != 1:
            return False
        src = next(o.src for o in ops if o.src is not None)
        users = self.consumers.get(n.outputs[0], [])
        into_table = bool(users) and all(u.op in UNARY for u in users)
        if not (into_table or any(o.table for o in ops) or n.op == "Mul" and None not in [o.src for o in ops]):
            return False
        if tuple(self.og.shape(n.outputs[0]) or ()) != tuple(self.g.tensors[src].shape):
            return False
        a, b = ops
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            real = np.asarray(_ARITH[n.op](a.real(), b.real()), f32)
        kernel = None
        if n.op in ("Add", "Mul") and not into_table and (n.name in self.og.lifted or a.direct and b.direct):
            def kernel(s, z, dt):
                if dt in ("uint16", "int16"):
                    return None           # onnxruntime has no 16-bit QLinear kernels: DQ -> op -> Q
                yq = Quant(s, z, None, *INT_RANGES[dt])
                if n.op == "Mul":
                    return qlinear_mul(a.q, a.scale, a.zp, b.q, b.scale, b.zp, yq, np.int64)
                shift = 128.0 if dt == "int8" and self.int8_qdq else 0.0
                return qlinear_add(a.q, a.scale, a.zp, b.q, b.scale, b.zp, yq, np.int64, shift)
        self._continue(n, Pending(self.view_of_q(src, n.inputs[0]), [lambda _val: real], n.name, kernel))
        return True


#: float32 arithmetic of the elementwise ops
_ARITH = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}

#: the ONNX ops this mixin computes as tables (a chain of them composes into one)
UNARY = ("Sigmoid", "Tanh", "Exp", "Softplus", "Neg", "Abs", "LeakyRelu", "Elu", "HardSigmoid", "HardSwish",
         "PRelu", "Erf", "Gelu", "Mish")
