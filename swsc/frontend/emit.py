"""Emission of canonical IR ops for a matched linear cluster (``Lin``) once a
QuantizeLinear fixes its output quantization."""
from __future__ import annotations

import copy
import json

import numpy as np

from ..errors import InvalidModelError
from ..ir import INT_RANGES, Quant
from ..ops import OPS
from .values import Lin, Unsupported, View, _scalar


class Emitter:
    """Mixin of Matcher: needs emit/const/materialize/check_view/qof and g, og."""

    # -- emission ------------------------------------------------------------------------------------
    def emit_lin(self, lin: Lin, y: str, s: float, z: int, dt: str) -> str:
        lo, hi = INT_RANGES[dt]
        if lin.lo > -np.inf:
            lo = max(lo, int(np.clip(np.rint(np.float32(lin.lo) / np.float32(s)) + z, *INT_RANGES[dt])))
        if lin.hi < np.inf:
            hi = min(hi, int(np.clip(np.rint(np.float32(lin.hi) / np.float32(s)) + z, *INT_RANGES[dt])))
        if lo > hi:
            raise Unsupported("the Relu/Clip range is empty after quantization")
        q = Quant(s, z, None, lo, hi)
        self._float_pending = lin.float_path and lin.node not in self.og.lifted
        self._plain_pending = lin.plain and lin.node not in self.og.lifted
        try:
            return self._emit_lin(lin, y, s, z, dt, q, lo, hi)
        finally:
            self._float_pending = self._plain_pending = False

    def _emit_lin(self, lin: Lin, y: str, s: float, z: int, dt: str, q: Quant, lo: int, hi: int) -> str:
        op = self.CLUSTER_OPS.get(lin.kind)
        if op is None:
            raise Unsupported(f"cannot emit {lin.kind}")
        if lin.affine is not None:     # constants on a dequantized tensor (match_postops.py)
            return self.emit_affine(lin, OPS[op], y, Quant(s, z, None, lo, hi), dt)
        n0 = len(self.g.nodes)
        out = OPS[op].build(self, lin, y, Quant(s, z, None, lo, hi), dt, q)
        if lin.mirror is not None:   # recorded under the emitted node's name (swsc/requant.py reads it)
            key, spec = lin.mirror
            node = next(m for m in self.g.nodes[n0:] if m.op == op)
            table = json.loads(self.g.meta.get(key, "{}"))
            table[node.name] = spec
            self.g.meta[key] = json.dumps(table, sort_keys=True)
        return out

    #: matched cluster kind (``Lin.kind``) -> the canonical op whose ``build`` emits it
    CLUSTER_OPS = {"conv": "QConv", "dense": "QDense", "pool": "QAvgPool", "mean": "QAvgPool", "add": "QAdd",
                   "concat": "Concat", "indexmap": "IndexMap"}
    #: what an op's ``build`` raises for a construct the front-end cannot take (reported per node)
    Unsupported = Unsupported

    def is_view(self, v) -> bool:
        return isinstance(v, View)

    def linear_inputs(self, lin: Lin, what: str) -> list[str]:
        """[x, w, bias?] of a conv/dense cluster: the integer weight as a quantized constant
        (per tensor or per output channel) and the float64 bias in accumulator units."""
        x = self.materialize(lin.x[0])
        M = lin.w.shape[0]
        ws = np.asarray(lin.ws, np.float64)
        wz = np.asarray(lin.wz, np.int64)
        if not np.all(np.isfinite(ws)) or (lin.bias is not None and not np.all(np.isfinite(lin.bias))):
            # NaN/inf constants, or a BatchNormalization whose variance is negative
            raise InvalidModelError("its weight scale or bias, with the Mul/Add/BatchNormalization after it "
                                    "folded in, is not finite", file=self.og.file, node=lin.node, op=what,
                                    hint="check the model's constants for NaN, infinity or a negative variance")
        wlo, whi = INT_RANGES[str(lin.w.dtype)]
        if ws.size == 1 and wz.size == 1:
            wq = Quant(float(ws.reshape(-1)[0]), int(wz.reshape(-1)[0]), None, wlo, whi)
        else:
            wq = Quant(np.broadcast_to(ws.reshape(-1), (M,)).copy(),
                       np.broadcast_to(wz.reshape(-1), (M,)).copy(), 0, wlo, whi)
        ins = [x, self.const(lin.wname or f"{lin.node}_w", lin.w, wq)]
        if lin.bias is not None:
            ins.append(self.const(f"{lin.node}_bias", np.asarray(lin.bias, np.float64)))
        return ins

    def const_operand(self, v) -> str:
        """A constant operand of an add (a quantized constant, per tensor)."""
        if v.scale.size != 1 or v.zp.size != 1:
            raise Unsupported("a constant operand must be quantized per tensor")
        cq = Quant(float(_scalar(v.scale)), int(_scalar(v.zp)), None, *INT_RANGES[str(v.data.dtype)])
        return self.const(v.name, v.data, cq)

    def emit_natural(self, op: str, lin: Lin, ins, y, nat, dt, q, attrs=None, tag: str = "") -> str:
        """Emit ``op`` with its natural output shape ``nat``, reshaped to the cluster's shape
        where they differ (a Flatten folded into the cluster)."""
        out = self.emit(op, lin.node, ins, y if tuple(nat) == tuple(lin.shape) else f"{y}__{tag}", dt, nat, q,
                        attrs)
        return self._reshape_to(out, nat, lin, y, q, dt)

    def _reshape_to(self, out, nat, lin, y, q, dt):
        if tuple(nat) == tuple(lin.shape):
            return out
        return self.emit("Reshape", f"{lin.node}_reshape", [out], y, dt, lin.shape, copy.deepcopy(q),
                         {"shape": list(lin.shape)})
