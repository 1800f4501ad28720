"""Linear op handlers of the matcher (Conv, Gemm, MatMul, AveragePool,
GlobalAveragePool, ReduceMean).

Each builds a ``Lin`` over dequantized inputs rather than emitting IR at once: the
canonical op can only be emitted when a later QuantizeLinear fixes its output
quantization, and the post-ops in between still fold into its weight scale and bias.
"""
from __future__ import annotations

import copy

import numpy as np

from ..ops import window_out
from .onnxgraph import ONode
from .values import Head, Lin, QRef, Unsupported, View, WConst, _pads2d


class LinearOps:
    """Mixin of Matcher: needs val/cval/og/vals/qof/materialize and the structural
    mixin's _pool_geom/_ceil_pads."""

    # -- linear ops ----------------------------------------------------------------------------------
    def _xview(self, name: str) -> View:
        v = self.val(name)
        if isinstance(v, View):
            return v
        if isinstance(v, Head) or isinstance(v, str) and v == "input":
            raise Unsupported(f"input '{name}' is used in float (no QuantizeLinear/DequantizeLinear before it)")
        if isinstance(v, np.ndarray):
            raise Unsupported(f"input '{name}' is a constant")
        raise Unsupported(f"input '{name}' is not a dequantized tensor")

    def _weight(self, name: str) -> WConst:
        if not name:
            raise Unsupported("weight input is missing")
        if name in self.og.consts:
            raise Unsupported(f"weight '{name}' is a float constant, not quantized (DequantizeLinear of an "
                              "int8/uint8 constant expected)")
        v = self.vals.get(name)
        if not isinstance(v, WConst):
            raise Unsupported(f"weight '{name}' is not a constant (DequantizeLinear of an integer initializer "
                              "expected)")
        if v.data.dtype not in (np.int8, np.uint8):
            raise Unsupported(f"weight '{name}' has type {v.data.dtype} (int8/uint8 expected)")
        return v

    def _sx(self, xv: View, ws):
        """Input scale of the IR tensor, and the weight scale absorbing a differing DQ scale."""
        ir = self.materialize(xv)
        q = self.qof(ir)
        if int(q.zero_point) != xv.zp:
            raise Unsupported("DequantizeLinear zero point differs from its QuantizeLinear's")
        sx = float(q.scale)
        if np.float32(sx) != np.float32(xv.scale):
            ws = ws * (xv.scale / sx)
        return sx, ws

    def _plain(self, xv: View, sx: float, bias: str) -> bool:
        """The cluster is one op onnxruntime runs as is in float32 when it cannot fuse it: the DQ
        scale is the tensor's own and the bias, if any, an int32 DequantizeLinear."""
        b = self.vals.get(bias) if bias else None
        return np.float32(sx) == np.float32(xv.scale) and (
            not bias or isinstance(b, WConst) and b.data.dtype == np.int32 and not np.any(b.zp))

    def _bias_acc(self, name: str, lin: Lin, M: int):
        if not name:
            return None
        bv = self.val(name)
        if isinstance(bv, WConst):
            real = bv.real().reshape(-1)
            exact = bv.data.dtype == np.int32 and not np.any(bv.zp) and np.allclose(
                np.broadcast_to(bv.scale.astype(np.float64), (M,)),
                np.broadcast_to(lin.sx * lin.ws, (M,)), rtol=1e-6, atol=0)
            if exact:
                return np.broadcast_to(bv.data.astype(np.float64).reshape(-1), (M,)).copy()
            lin.float_path = True
        elif isinstance(bv, np.ndarray) and bv.dtype.kind == "f":
            real = bv.astype(np.float64).reshape(-1)
            xv = lin.x[0]
            if bv.ndim == 1 and bv.size == M and xv.direct:
                # onnxruntime's WeightBiasQuantization turns a float bias of a Conv/Gemm on a
                # DequantizeLinear input into int32: Round(fp32(b) / fp32(s_x * s_w)).
                sxw = (np.float32(xv.scale) * np.broadcast_to(lin.ws, (M,)).astype(np.float32)).astype(np.float32)
                return np.rint(bv.astype(np.float32) / sxw).astype(np.float64)
            lin.float_path = True
        else:
            raise Unsupported(f"bias '{name}' is not a constant")
        real = np.broadcast_to(real, (M,))
        return real / (lin.sx * np.broadcast_to(lin.ws, (M,)))

    # -- 1-D windows: the 2-D form with a unit H axis ---------------------------------------------
    # Conv/MaxPool/AveragePool/GlobalAveragePool on [N, C, L] compute exactly their 2-D form on
    # [N, C, 1, L] with kernel [1, k], strides [1, s], dilations [1, d] and pads [0, p0, 0, p1]
    # (the H axis has one tap and no padding): the input is viewed as 4-D by a Reshape and the
    # result reshaped back to the model's 3-D shape (emit_natural / _window_1d).
    def _geom_1d(self, n: ONode, in_shape, kernel=None):
        """Kernel, strides, pads, dilations of a 1-D window node in 2-D form, the ceil_mode
        extra end padding included (allowed for MaxPool, refused for AveragePool)."""
        if in_shape is None or len(in_shape) != 3:
            raise Unsupported(f"a 1-D window needs a 3-D input, has shape {in_shape}")
        k = list(kernel or n.attrs.get("kernel_shape", []))
        if len(k) != 1:
            raise Unsupported(f"kernel {k} on a 3-D input (1-D kernel expected)")
        s = [1] + list(n.attrs.get("strides", [1]))
        d = [1] + list(n.attrs.get("dilations", [1]))
        k = [1] + k
        attrs = dict(n.attrs)
        if "pads" in attrs:
            attrs["pads"] = [0, int(attrs["pads"][0]), 0, int(attrs["pads"][1])]
        p = _pads2d(attrs, (1, in_shape[2]), k, s, d)
        out = self.og.shape(n.outputs[0])
        if out is None:
            raise Unsupported("output shape is not static")
        floor = window_out(in_shape[2], k[1], s[1], p[1], p[3], d[1])
        if floor != out[2]:
            if n.op != "MaxPool":
                raise Unsupported("ceil_mode=1 changes the output size (not supported for average pooling)")
            p[3] += (out[2] - floor) * s[1]
        return k, s, p, d

    def _view_4d(self, n: ONode, xv: View) -> View:
        """[N, C, L] viewed as [N, C, 1, L] (a Reshape, where it is materialized)."""
        N, C, L = xv.shape
        return View(xv.scale, xv.zp, (N, C, 1, L), f"{xv.fname}__2d", parents=[xv], op="Reshape",
                    attrs={"shape": [N, C, 1, L]}, node=f"{n.name}_as2d", direct=xv.direct)

    def _maxpool_1d(self, n: ONode) -> None:
        """MaxPool on [N, C, L]: Reshape -> 2-D MaxPool -> Reshape, on integers or between DQ and Q."""
        v = self.val(n.inputs[0])
        if isinstance(v, QRef):
            xv = self.view_of_q(v.ir, v.ir)
        elif isinstance(v, View):
            xv = v
        else:
            raise Unsupported(f"input is not a quantized tensor ({type(v).__name__})")
        k, s, p, d = self._geom_1d(n, xv.shape)
        x4 = self._view_4d(n, xv)
        out = n.outputs[0]
        N, M, L = self.og.shape(out)
        m4 = View(xv.scale, xv.zp, (N, M, 1, L), f"{out}__2d", parents=[x4], op="MaxPool",
                  attrs={"kernel": k, "strides": s, "pads": p, "dilations": d}, node=n.name, direct=xv.direct)
        y = View(xv.scale, xv.zp, (N, M, L), out, parents=[m4], op="Reshape", attrs={"shape": [N, M, L]},
                 node=f"{n.name}_as1d", direct=xv.direct)
        self.vals[out] = QRef(self.materialize(y, name=out)) if isinstance(v, QRef) else y

    def op_Conv(self, n: ONode) -> None:
        xv = self._xview(n.inputs[0])
        w = self._weight(n.inp(1))
        data = w.data
        if data.ndim == 3:
            k, s, p, d = self._geom_1d(n, xv.shape, list(n.attrs.get("kernel_shape", data.shape[2:])))
            xv, data = self._view_4d(n, xv), data[:, :, None, :]
        elif data.ndim == 4:
            k = list(n.attrs.get("kernel_shape", data.shape[2:]))
            k, s, p, d = self._pool_geom(n, xv.shape, k)
        else:
            raise Unsupported(f"only 1-D and 2-D convolution is supported (weight of rank {data.ndim})")
        M = data.shape[0]
        if w.axis not in (None, 0):
            raise Unsupported(f"weight is quantized along axis {w.axis} (per-output-channel axis 0 expected)")
        attrs = {"kernel": k, "strides": s, "pads": p, "dilations": d, "group": int(n.attrs.get("group", 1))}
        ws = w.scale.astype(np.float64)
        sx, ws = self._sx(xv, ws)
        lin = Lin("conv", n.name, self.og.shape(n.outputs[0]), [xv], attrs, np.ascontiguousarray(data), w.name, ws,
                  w.zp.astype(np.int64), None, sx)
        lin.float_path = not xv.direct
        lin.plain = self._plain(xv, sx, n.inp(2))
        lin.bias = self._bias_acc(n.inp(2), lin, M)
        if lin.shape is None:
            raise Unsupported("output shape is not static")
        self.vals[n.outputs[0]] = lin

    def _dense(self, n: ONode, xname, wname, trans_b: bool, alpha=1.0, cname="", beta=1.0) -> None:
        xv = self.val(xname)
        if isinstance(xv, Lin) and xv.kind in ("pool", "mean") and not xv.clamped and len(xv.shape) == 2:
            return self._pool_dense(n, xv, wname, trans_b, alpha, cname, beta)
        xv = self._xview(xname)
        if len(xv.shape) != 2:
            raise Unsupported(f"input has shape {list(xv.shape)}; only [1, K] inputs are supported")
        w = self._weight(wname)
        if w.data.ndim != 2:
            raise Unsupported("weight must be 2-D")
        data, axis = w.data, w.axis
        if not trans_b:          # [K, M] -> [M, K]
            data = data.T
            axis = None if axis is None else 1 - axis
        if axis not in (None, 0):
            raise Unsupported("weight is quantized per input channel (per output channel expected)")
        M = data.shape[0]
        if data.shape[1] != xv.shape[1] or self.og.shape(n.outputs[0]) is None:
            raise Unsupported(f"input {list(xv.shape)} does not fit weight {list(w.data.shape)}")
        ws = w.scale.astype(np.float64) * alpha
        sx, ws = self._sx(xv, ws)
        lin = Lin("dense", n.name, self.og.shape(n.outputs[0]), [xv], {}, np.ascontiguousarray(data),
                  w.name, ws, w.zp.astype(np.int64), None, sx)
        lin.float_path = not xv.direct
        lin.plain = self._plain(xv, sx, cname) and beta == 1.0 and n.op == "Gemm"
        if cname:
            b = self._bias_acc(cname, lin, M)
            lin.bias = None if b is None else b * beta
        self.vals[n.outputs[0]] = lin

    def _pool_dense(self, n, pl: Lin, wname, trans_b, alpha, cname, beta):
        """GlobalAveragePool -> Flatten -> Gemm in float (no Q between): one dense layer with
        the weight repeated over the pooled plane and its scale divided by the plane size."""
        xv = pl.x[0]
        if pl.kind == "mean" and set(pl.reduced) != {2, 3} or pl.kind == "pool" and not pl.attrs.get("global"):
            raise Unsupported("a pooled value feeds a dense layer without QuantizeLinear")
        w = self._weight(wname)
        data, axis = (w.data, w.axis) if trans_b else (w.data.T, None if w.axis is None else 1 - w.axis)
        if axis not in (None, 0):
            raise Unsupported("weight is quantized per input channel")
        C, H, W = xv.shape[1:]
        hw = H * W
        data = np.repeat(data, hw, axis=1)
        flat = View(xv.scale, xv.zp, (1, C * hw), pl.node + "_flat", parents=[xv], op="Reshape",
                    attrs={"shape": [1, C * hw]}, node=pl.node + "_flatten")
        ws = w.scale.astype(np.float64) * alpha / hw
        sx, ws = self._sx(flat, ws)
        lin = Lin("dense", n.name, self.og.shape(n.outputs[0]), [flat], {}, data, w.name, ws,
                  w.zp.astype(np.int64), None, sx)
        lin.float_path = True
        if cname:
            b = self._bias_acc(cname, lin, data.shape[0])
            lin.bias = None if b is None else b * beta
        self.vals[n.outputs[0]] = lin

    def op_Gemm(self, n: ONode) -> None:
        if n.attrs.get("transA", 0):
            raise Unsupported("transA=1 is not supported")
        self._dense(n, n.inputs[0], n.inp(1), bool(n.attrs.get("transB", 0)), float(n.attrs.get("alpha", 1.0)),
                    n.inp(2), float(n.attrs.get("beta", 1.0)))

    def op_MatMul(self, n: ONode) -> None:
        self._dense(n, n.inputs[0], n.inp(1), False)

    def op_AveragePool(self, n: ONode) -> None:
        xv = self._xview(n.inputs[0])
        if len(xv.shape) == 3:
            k, s, p, d = self._geom_1d(n, xv.shape)
            xv = self._view_4d(n, xv)
        else:
            k, s, p, d = self._pool_geom(n, xv.shape)
            p = self._ceil_pads(n, k, s, p, d, allow=False)
        if d != [1, 1]:
            raise Unsupported("dilated average pooling is not supported")
        attrs = {"kernel": k, "strides": s, "pads": p, "count_include_pad": int(n.attrs.get("count_include_pad", 0))}
        self.vals[n.outputs[0]] = Lin("pool", n.name, self.og.shape(n.outputs[0]), [xv], attrs)

    def op_GlobalAveragePool(self, n: ONode) -> None:
        xv = self._xview(n.inputs[0])
        if len(xv.shape) == 3:
            xv = self._view_4d(n, xv)
        if len(xv.shape) != 4:
            raise Unsupported("needs a 3-D or 4-D input")
        attrs = {"kernel": list(xv.shape[2:]), "global": True}
        lin = Lin("pool", n.name, self.og.shape(n.outputs[0]), [xv], attrs)
        # onnxruntime fuses DQ -> GlobalAveragePool -> Q into QLinearGlobalAveragePool; after a
        # Relu (QAT exports) it runs in float, summing in MLAS's float32 order
        lin.float_path = n.name not in self.og.lifted and not xv.direct
        if lin.float_path:
            self.mlas_global_pools.append(n.name)
        self.vals[n.outputs[0]] = lin

    def op_ReduceMean(self, n: ONode) -> None:
        v = self.val(n.inputs[0])
        axes = n.attrs.get("axes")
        if axes is None and n.inp(1):
            c = self.cval(n.inp(1))
            if c is None:
                raise Unsupported("axes must be constant")
            axes = [int(a) for a in np.asarray(c).reshape(-1)]
        keep = int(n.attrs.get("keepdims", 1))
        if isinstance(v, View):
            if len(v.shape) != 4:
                raise Unsupported("needs a 4-D input")
            lin = Lin("mean", n.name, v.shape, [v], {}, reduced=(), dims=(0, 1, 2, 3), float_path=True)
        elif isinstance(v, Lin) and v.kind == "mean" and not v.clamped:
            lin = copy.copy(v)
        else:
            raise Unsupported("input is not a dequantized tensor")
        rank = len(lin.dims)
        if axes is None:
            axes = list(range(rank))
        axes = [a + rank if a < 0 else a for a in axes]
        orig = tuple(lin.dims[a] for a in axes)
        lin.reduced = tuple(sorted(set(lin.reduced) | set(orig)))
        if not keep:
            lin.dims = tuple(dd for i, dd in enumerate(lin.dims) if i not in axes)
        lin.shape = self.og.shape(n.outputs[0])
        if lin.shape is None or not set(lin.reduced) <= {2, 3}:
            raise Unsupported(f"only the mean over H,W of a 4-D tensor is supported (axes {axes})")
        self.vals[n.outputs[0]] = lin
