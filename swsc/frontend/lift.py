"""Lift QOperator nodes into the equivalent QDQ form.

``QLinearConv(x, sx, zx, w, sw, zw, sy, zy, B)`` becomes
``Q(Conv(DQ(x, sx, zx), DQ(w, sw, zw), DQ(B, sx*sw, 0)), sy, zy)`` and so on, so the
matcher only has to understand one form. The float op keeps the QLinear node's
name; the QuantizeLinear keeps its output tensor name, so quantized tensors keep
the names onnxruntime gives them.
"""
from __future__ import annotations

import numpy as np

from .onnxgraph import OGraph, ONode

MS = "com.microsoft"

#: (domain, op) -> float op it lifts to
LIFTED = {
    ("", "QLinearConv"): "Conv",
    ("", "QLinearMatMul"): "MatMul",
    ("", "MatMulInteger"): "MatMul",
    ("", "ConvInteger"): "Conv",
    (MS, "QGemm"): "Gemm",
    (MS, "QLinearAdd"): "Add",
    (MS, "QLinearMul"): "Mul",
    (MS, "QLinearAveragePool"): "AveragePool",
    (MS, "QLinearGlobalAveragePool"): "GlobalAveragePool",
    (MS, "QLinearConcat"): "Concat",
    (MS, "QLinearSoftmax"): "Softmax",
    (MS, "QLinearSigmoid"): "Sigmoid",
    (MS, "QLinearLeakyRelu"): "LeakyRelu",
}


class _Lifter:
    def __init__(self, og: OGraph):
        self.og = og
        self.out: list[ONode] = []

    def dq(self, x: str, s: str, z: str, tag: str, axis=None) -> str:
        out = self.og.fresh(f"{x}__dq_{tag}")
        attrs = {} if axis is None else {"axis": axis}
        self.out.append(ONode("DequantizeLinear", self.og.fresh(f"{tag}_DequantizeLinear"),
                              [x, s, z] if z else [x, s], [out], attrs))
        return out

    def q(self, x: str, s: str, z: str, y: str, tag: str) -> None:
        self.out.append(ONode("QuantizeLinear", self.og.fresh(f"{tag}_QuantizeLinear"),
                              [x, s, z] if z else [x, s], [y]))

    def const(self, base: str, value) -> str:
        name = self.og.fresh(base)
        self.og.consts[name] = np.asarray(value)
        return name

    def bias(self, b: str, sa: str, sb: str, tag: str) -> str:
        """int32 bias -> DQ with scale sa*sb (computed in float32, as the quantizer does)."""
        og = self.og
        if b in og.consts and sa in og.consts and sb in og.consts:
            s = (np.float32(og.consts[sa]) * og.consts[sb].astype(np.float32)).astype(np.float32)
            sname = self.const(f"{b}__scale", s)
            return self.dq(b, sname, "", tag, axis=0 if s.ndim == 1 else None)
        return b  # the matcher reports a non-constant bias

    def lift(self, n: ONode) -> None:
        key = (n.domain if n.domain != "ai.onnx" else "", n.op)
        fop = LIFTED.get(key)
        i = n.inp
        nm = n.name
        attrs = dict(n.attrs)
        if fop is None:
            self.out.append(n)
            return
        y = n.outputs[0]
        f = self.og.fresh(f"{y}__float")
        self.og.lifted.add(nm)
        if n.op == "QLinearConv":
            x = self.dq(i(0), i(1), i(2), nm + "_x")
            w = self.dq(i(3), i(4), i(5), nm + "_w", axis=0)
            ins = [x, w] + ([self.bias(i(8), i(1), i(4), nm + "_b")] if i(8) else [])
            self.out.append(ONode("Conv", nm, ins, [f], attrs))
            self.q(f, i(6), i(7), y, nm)
        elif n.op == "QLinearMatMul":
            x = self.dq(i(0), i(1), i(2), nm + "_a")
            w = self.dq(i(3), i(4), i(5), nm + "_b", axis=-1)
            self.out.append(ONode("MatMul", nm, [x, w], [f]))
            self.q(f, i(6), i(7), y, nm)
        elif n.op in ("MatMulInteger", "ConvInteger"):
            one = self.const(f"{nm}__one", np.float32(1.0))
            x = self.dq(i(0), one, i(2), nm + "_a")
            w = self.dq(i(1), one, i(3), nm + "_b", axis=0 if n.op == "ConvInteger" else -1)
            self.out.append(ONode(fop, nm, [x, w], [y], attrs))
        elif n.op == "QGemm":
            x = self.dq(i(0), i(1), i(2), nm + "_a")
            w = self.dq(i(3), i(4), i(5), nm + "_b", axis=0 if attrs.get("transB", 0) else -1)
            ins = [x, w] + ([self.bias(i(6), i(1), i(4), nm + "_c")] if i(6) else [])
            if i(7):
                self.out.append(ONode("Gemm", nm, ins, [f], attrs))
                self.q(f, i(7), i(8), y, nm)
            else:
                self.out.append(ONode("Gemm", nm, ins, [y], attrs))
        elif n.op in ("QLinearAdd", "QLinearMul"):
            a = self.dq(i(0), i(1), i(2), nm + "_a")
            b = self.dq(i(3), i(4), i(5), nm + "_b")
            self.out.append(ONode(fop, nm, [a, b], [f]))
            self.q(f, i(6), i(7), y, nm)
        elif n.op in ("QLinearAveragePool", "QLinearGlobalAveragePool"):
            cl = attrs.pop("channels_last", 0)
            if cl:  # leave it; the matcher reports it
                self.out.append(n)
                return
            x = self.dq(i(0), i(1), i(2), nm + "_x")
            self.out.append(ONode(fop, nm, [x], [f], attrs))
            self.q(f, i(3), i(4), y, nm)
        elif n.op == "QLinearConcat":
            ins = []
            for k in range(2, len(n.inputs), 3):
                ins.append(self.dq(i(k), i(k + 1), i(k + 2), f"{nm}_in{(k - 2) // 3}"))
            self.out.append(ONode("Concat", nm, ins, [f], attrs))
            self.q(f, i(0), i(1), y, nm)
        elif n.op == "QLinearSoftmax":
            attrs.pop("opset", None)
            x = self.dq(i(0), i(1), i(2), nm + "_x")
            self.out.append(ONode("Softmax", nm, [x], [f], attrs))
            self.q(f, i(3), i(4), y, nm)
        elif n.op in ("QLinearSigmoid", "QLinearLeakyRelu"):
            # onnxruntime builds their table from exactly this DQ -> f -> Q in float32
            x = self.dq(i(0), i(1), i(2), nm + "_x")
            self.out.append(ONode(fop, nm, [x], [f], attrs))
            self.q(f, i(3), i(4), y, nm)


def lift(og: OGraph) -> None:
    lifter = _Lifter(og)
    for n in og.nodes:
        lifter.lift(n)
    og.nodes = lifter.out
