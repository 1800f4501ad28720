"""The front-end's working form of an ONNX graph: plain nodes, constants as numpy.

Lifting, folding and shape inference edit this; matching reads it. ``to_model``
turns it back into a ModelProto (for onnx shape inference and single-node
constant evaluation).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper


@dataclass
class ONode:
    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict = field(default_factory=dict)
    domain: str = ""

    def inp(self, i: int) -> str:
        return self.inputs[i] if i < len(self.inputs) else ""


class OGraph:
    def __init__(self, file: str, opset: int, name: str):
        self.file = file
        self.opset = opset
        self.name = name
        self.nodes: list[ONode] = []
        self.consts: dict[str, np.ndarray] = {}
        self.inputs: list[str] = []
        self.input_dims: dict[str, list | None] = {}
        self.elem: dict[str, int] = {}          # onnx elem type of graph inputs
        self.outputs: list[str] = []
        self.shapes: dict[str, tuple] = {}      # static shapes (after shape inference)
        self.types: dict[str, int] = {}         # onnx elem type per tensor (after inference)
        self.lifted: set[str] = set()           # names of float ops lifted from QOperator nodes
        self.batchless: set[str] = set()        # batch-1 tensors without a batch axis (shapes.batchless)
        self._uid = 0

    # -- queries -------------------------------------------------------------
    def producer(self, t: str) -> ONode | None:
        for n in self.nodes:
            if t in n.outputs:
                return n
        return None

    def consumer_map(self) -> dict[str, list[ONode]]:
        m: dict[str, list[ONode]] = {}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    m.setdefault(i, []).append(n)
        return m

    def fresh(self, base: str) -> str:
        self._uid += 1
        return f"{base}__{self._uid}"

    def shape(self, t: str):
        if t in self.consts:
            return tuple(self.consts[t].shape)
        return self.shapes.get(t)

    # -- rewriting -------------------------------------------------------------
    def topo_sort(self) -> None:
        prod = {o: n for n in self.nodes for o in n.outputs}
        done: set[int] = set()
        order: list[ONode] = []
        visiting: set[int] = set()
        for root in self.nodes:
            stack = [(root, 0)]
            while stack:
                n, i = stack.pop()
                if id(n) in done:
                    continue
                if i < len(n.inputs):
                    stack.append((n, i + 1))
                    d = prod.get(n.inputs[i])
                    if d is not None and id(d) not in done and id(d) not in visiting:
                        visiting.add(id(d))
                        stack.append((d, 0))
                    continue
                done.add(id(n))
                order.append(n)
        self.nodes = order

    def prune(self) -> None:
        """Drop nodes that no graph output depends on, and unused constants."""
        prod = {o: n for n in self.nodes for o in n.outputs}
        live: set[int] = set()
        stack = [prod[o] for o in self.outputs if o in prod]
        while stack:
            n = stack.pop()
            if id(n) in live:
                continue
            live.add(id(n))
            stack.extend(prod[i] for i in n.inputs if i in prod)
        self.nodes = [n for n in self.nodes if id(n) in live]
        used = {i for n in self.nodes for i in n.inputs} | set(self.outputs)
        self.consts = {k: v for k, v in self.consts.items() if k in used}

    # -- back to ONNX --------------------------------------------------------------
    def to_model(self, input_shapes: dict[str, tuple]) -> onnx.ModelProto:
        nodes = []
        for n in self.nodes:
            attrs = {}
            for k, v in n.attrs.items():
                if isinstance(v, np.ndarray):
                    v = numpy_helper.from_array(v)
                attrs[k] = v
            nodes.append(helper.make_node(n.op, n.inputs, n.outputs, name=n.name,
                                          domain=n.domain or None, **attrs))
        inputs = [helper.make_tensor_value_info(i, self.elem.get(i, onnx.TensorProto.FLOAT),
                                                list(input_shapes[i])) for i in self.inputs]
        outputs = [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in self.outputs]
        inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in self.consts.items()]
        g = helper.make_graph(nodes, self.name or "g", inputs, outputs, initializer=inits)
        opsets = [helper.make_opsetid("", self.opset)]
        if any(n.domain == "com.microsoft" for n in self.nodes):
            opsets.append(helper.make_opsetid("com.microsoft", 1))
        m = helper.make_model(g, opset_imports=opsets)
        m.ir_version = min(m.ir_version, 8)
        return m
