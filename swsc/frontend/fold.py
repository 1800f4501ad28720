"""Constant folding: every node whose inputs are all constant becomes a constant.

Except DequantizeLinear: integer weights must stay visible as ``DQ(int const)``.
A QuantizeLinear of a float constant (a QAT fake-quant weight chain
``Q(w) -> DQ``) is folded, leaving ``DQ(int const)``. ``Shape`` of a tensor with a
static shape is a constant too, so shape sub-graphs feeding Reshape disappear.
"""
from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from ..errors import InvalidModelError
from .onnxgraph import OGraph, ONode

KEEP = {"DequantizeLinear"}
_SIMPLE = {"Identity"}


def _eval_node(og: OGraph, n: ONode) -> list[np.ndarray]:
    if n.op == "Identity":
        return [og.consts[n.inputs[0]]]
    if n.op == "Constant":
        for k in ("value", "value_float", "value_floats", "value_int", "value_ints"):
            if k in n.attrs:
                v = n.attrs[k]
                if k in ("value_float", "value_floats"):
                    v = np.asarray(v, np.float32)
                elif k in ("value_int", "value_ints"):
                    v = np.asarray(v, np.int64)
                return [np.asarray(v)]
        raise ValueError("Constant without a supported value attribute")
    if n.op == "Shape":
        shp = og.shapes.get(n.inputs[0]) if n.inputs[0] not in og.consts else og.consts[n.inputs[0]].shape
        if shp is None:
            raise KeyError("shape unknown")
        shp = np.asarray(shp, np.int64)
        start, end = n.attrs.get("start", 0), n.attrs.get("end", None)
        return [shp[start:end]]

    ins = [i for i in n.inputs if i]
    attrs = {k: (numpy_helper.from_array(v) if isinstance(v, np.ndarray) else v) for k, v in n.attrs.items()}
    node = helper.make_node(n.op, n.inputs, n.outputs, domain=n.domain or None, **attrs)
    feeds = {i: og.consts[i] for i in ins}
    graph = helper.make_graph(
        [node], "fold",
        [helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(feeds[i].dtype), feeds[i].shape)
         for i in ins],
        [helper.make_tensor_value_info(o, 0, None) for o in n.outputs if o])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", og.opset)])
    res = ReferenceEvaluator(model).run(None, feeds)
    return [np.asarray(r) for r in res]


def fold(og: OGraph) -> bool:
    """Fold constants in place; True if anything changed."""
    og.topo_sort()
    changed = False
    kept = []
    for n in og.nodes:
        const_in = all((not i) or i in og.consts for i in n.inputs)
        foldable = n.op not in KEEP and n.domain in ("", "ai.onnx") and (
            (const_in and (n.inputs or n.op == "Constant"))
            or (n.op == "Shape" and n.inputs[0] in og.shapes))
        if foldable and n.op == "QuantizeLinear" and n.inputs[0] in og.inputs:
            foldable = False
        if not foldable:
            kept.append(n)
            continue
        try:
            vals = _eval_node(og, n)
        except Exception as e:  # leave it to the matcher if it cannot be evaluated
            if n.op == "Constant":
                raise InvalidModelError(f"cannot read constant ({e})", file=og.file, node=n.name, op=n.op) from None
            kept.append(n)
            continue
        for o, v in zip(n.outputs, vals):
            if o:
                og.consts[o] = v
        changed = True
    og.nodes = kept
    return changed
