"""Emission of canonical IR ops for a matched linear cluster (``Lin``) once a
QuantizeLinear fixes its output quantization."""
from __future__ import annotations

import copy

import numpy as np

from ..errors import InvalidModelError
from ..ir import INT_RANGES, Quant
from ..ops import window_out
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
        emit = self._EMITTERS.get(lin.kind)
        if emit is None:
            raise Unsupported(f"cannot emit {lin.kind}")
        return emit(self, lin, y, s, z, dt, q, lo, hi)

    def _emit_linear(self, lin: Lin, y, s, z, dt, q, lo, hi) -> str:
        """conv/dense -> QConv/QDense with the integer weight (and bias) as quantized constants."""
        k = lin.kind
        x = self.materialize(lin.x[0])
        M = lin.w.shape[0]
        ws = np.asarray(lin.ws, np.float64)
        wz = np.asarray(lin.wz, np.int64)
        if not np.all(np.isfinite(ws)) or (lin.bias is not None and not np.all(np.isfinite(lin.bias))):
            # NaN/inf constants, or a BatchNormalization whose variance is negative
            raise InvalidModelError("its weight scale or bias, with the Mul/Add/BatchNormalization after it "
                                    "folded in, is not finite", file=self.og.file, node=lin.node,
                                    op="Conv" if k == "conv" else "Gemm/MatMul",
                                    hint="check the model's constants for NaN, infinity or a negative variance")
        wlo, whi = INT_RANGES[str(lin.w.dtype)]
        if ws.size == 1 and wz.size == 1:
            wq = Quant(float(ws.reshape(-1)[0]), int(wz.reshape(-1)[0]), None, wlo, whi)
        else:
            wq = Quant(np.broadcast_to(ws.reshape(-1), (M,)).copy(),
                       np.broadcast_to(wz.reshape(-1), (M,)).copy(), 0, wlo, whi)
        wn = self.const(lin.wname or f"{lin.node}_w", lin.w, wq)
        ins = [x, wn]
        if lin.bias is not None:
            ins.append(self.const(f"{lin.node}_bias", np.asarray(lin.bias, np.float64)))
        if k == "conv":
            nat, op, attrs = self._natural_conv(lin), "QConv", {kk: vv for kk, vv in lin.attrs.items()}
        else:
            nat, op, attrs = (1, M), "QDense", None
        out = self.emit(op, lin.node, ins, y if nat == tuple(lin.shape) else f"{y}__{k}", dt, nat, q, attrs)
        return self._reshape_to(out, nat, lin, y, q, dt)

    def _emit_pool(self, lin: Lin, y, s, z, dt, q, lo, hi) -> str:
        """pool/mean (AveragePool, GlobalAveragePool, ReduceMean over H and W) -> QAvgPool."""
        xv = lin.x[0]
        x = self.check_view(xv)
        H, W = xv.shape[2:]
        if lin.kind == "mean" and set(lin.reduced) != {2, 3}:
            raise Unsupported("mean over a single spatial axis is not supported")
        if lin.kind == "mean" or lin.attrs.get("global"):
            attrs = {"kernel": [H, W], "strides": [1, 1], "pads": [0, 0, 0, 0], "count_include_pad": 1}
        else:
            attrs = dict(lin.attrs)
        sh = self.g.tensors[x].shape
        kk, ss, pp = attrs["kernel"], attrs["strides"], attrs["pads"]
        nat = (sh[0], sh[1]) + tuple(window_out(sh[2 + i], kk[i], ss[i], pp[i], pp[i + 2]) for i in range(2))
        out = self.emit("QAvgPool", lin.node, [x], y if nat == tuple(lin.shape) else f"{y}__pool", dt, nat, q,
                        attrs)
        return self._reshape_to(out, nat, lin, y, q, dt)

    def _emit_add(self, lin: Lin, y, s, z, dt, q, lo, hi) -> str:
        """add -> QAdd; a constant operand becomes a quantized constant input."""
        ins = []
        for v in lin.x:
            if isinstance(v, View):
                ins.append(self.check_view(v))
            else:
                cq = Quant(float(_scalar(v.scale)), int(_scalar(v.zp)), None, *INT_RANGES[str(v.data.dtype)])
                if v.scale.size != 1 or v.zp.size != 1:
                    raise Unsupported("a constant operand must be quantized per tensor")
                ins.append(self.const(v.name, v.data, cq))
        return self.emit("QAdd", lin.node, ins, y, dt, lin.shape, q)

    def _emit_concat(self, lin: Lin, y, s, z, dt, q, lo, hi) -> str:
        """concat of differently quantized inputs -> a requantizing one-input QAdd per input, then Concat."""
        ins = []
        for i, v in enumerate(lin.x):
            x = self.check_view(v)
            xq = self.qof(x)
            if (not lin.clamped and self.g.tensors[x].dtype == dt and np.float32(xq.scale) == np.float32(s)
                    and int(xq.zero_point) == z):
                ins.append(x)
            else:
                ins.append(self.emit("QAdd", f"{lin.node}_requant{i}", [x], f"{y}__in{i}", dt,
                                     self.g.tensors[x].shape, Quant(s, z, None, lo, hi)))
        q.lo = min(self.qof(i).lo for i in ins)
        q.hi = max(self.qof(i).hi for i in ins)
        return self.emit("Concat", lin.node, ins, y, dt, lin.shape, q, {"axis": lin.attrs["axis"]})

    #: matched cluster kind (``Lin.kind``) -> its emitter
    _EMITTERS = {"conv": _emit_linear, "dense": _emit_linear, "pool": _emit_pool, "mean": _emit_pool,
                 "add": _emit_add, "concat": _emit_concat}

    def _natural_conv(self, lin: Lin) -> tuple:
        xs = self.g.tensors[self.materialize(lin.x[0])].shape
        k, s, p, d = (lin.attrs[a] for a in ("kernel", "strides", "pads", "dilations"))
        sp = tuple(window_out(xs[2 + i], k[i], s[i], p[i], p[i + 2], d[i]) for i in range(2))
        return (xs[0], lin.w.shape[0]) + sp

    def _reshape_to(self, out, nat, lin, y, q, dt):
        if tuple(nat) == tuple(lin.shape):
            return out
        return self.emit("Reshape", f"{lin.node}_reshape", [out], y, dt, lin.shape, copy.deepcopy(q),
                         {"shape": list(lin.shape)})
