"""The SWS IR: a small, typed, ONNX-like graph.

A graph holds tensors by name, nodes in a list, and graph inputs/outputs by name.
A tensor is a value (an activation or a spike train) or a constant (it has data).
Quantized tensors carry their quantization parameters; spike tensors carry the step
at which their train starts (``t0``); the coding every train shares (Tc, beta) is stored
once, on the graph (``Graph.coding``). Ops are described in ``swsc.ops``; ``Graph.verify`` checks every
invariant the passes rely on.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from .errors import IRVerifyError

#: Element types a tensor may have. ``spike`` is a ternary spike train: per element
#: Tc frames of {-1, 0, +1}; its ``shape`` is the shape of one frame.
DTYPES = ("float32", "float64", "uint8", "int8", "uint16", "int16", "int32", "int64", "bool", "spike")
#: integer types of quantized activations (16-bit: onnxruntime's A16W8; exact with Tc = 16)
ACTIVATION_DTYPES = ("uint8", "int8", "uint16", "int16")
INT_RANGES = {"uint8": (0, 255), "int8": (-128, 127), "uint16": (0, 65535), "int16": (-32768, 32767),
              "int32": (-2**31, 2**31 - 1)}


def fresh_name(base: str, taken, *, maxlen: int | None = None, key=None) -> str:
    """``base``, else the first of ``base_1``, ``base_2``, ... not in ``taken``: the one rule
    by which the front-end and the passes keep node and tensor names unique. ``maxlen``
    shortens ``base`` so a suffixed name stays within it; ``key`` maps a name to what
    ``taken`` holds (``str.lower`` for names that must differ case-insensitively, as C
    identifiers upper-cased into macros must)."""
    name, i = base, 1
    while (key(name) if key else name) in taken:
        suffix = f"_{i}"
        name = (base if maxlen is None else base[:maxlen - len(suffix)]) + suffix
        i += 1
    return name


def scalar(a) -> float:
    """The value of a per-tensor parameter (scalar, or a 1-element array as exporters write it)."""
    return float(np.asarray(a).reshape(-1)[0])


@dataclass
class Quant:
    """Quantization of a tensor: real = scale * (q - zero_point).

    ``scale``/``zero_point`` are scalars, or 1-D along ``axis`` (per channel).
    ``lo``/``hi`` is the integer range the tensor's values are clamped to (the
    type's range narrowed by a fused Relu/Clip). ``theta`` is the spike amplitude
    chosen by the ``rescale`` pass (None before it).
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None
    lo: int = 0
    hi: int = 255
    theta: float | None = None

    def __post_init__(self):
        self.scale = np.asarray(self.scale, dtype=np.float64)
        self.zero_point = np.asarray(self.zero_point, dtype=np.int64)
        self.lo, self.hi = int(self.lo), int(self.hi)
        if self.theta is not None:
            self.theta = float(self.theta)

    @property
    def per_channel(self) -> bool:
        return self.scale.ndim == 1

    def same_as(self, other: "Quant") -> bool:
        return (other is not None and self.axis == other.axis and self.lo == other.lo
                and self.hi == other.hi and self.theta == other.theta
                and self.scale.shape == other.scale.shape
                and bool(np.all(self.scale == other.scale))
                and bool(np.all(self.zero_point == other.zero_point)))


@dataclass(frozen=True)
class Coding:
    """The SWS coding of a compiled graph, stored once on the graph (``Graph.coding``):
    every spike train has ``tc`` steps and the weight of step k is ``beta^(tc-k)``."""

    tc: int
    beta: float

    @property
    def code_sum(self) -> float:
        """S = sum_{k=1..tc} beta^(tc-k): the largest value a train of +1 spikes encodes."""
        return float(sum(self.beta ** (self.tc - k) for k in range(1, self.tc + 1)))

    @property
    def int_code_sum(self) -> int:
        """S as an exact integer, for an integer beta (integer mode's constants need it exact)."""
        return sum(int(self.beta) ** (self.tc - k) for k in range(1, self.tc + 1))

    def text(self) -> str:
        return f"tc={self.tc} beta={self.beta!r}"


@dataclass
class Tensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    data: np.ndarray | None = None
    quant: Quant | None = None
    #: spike tensors only: the train's frames occupy global steps t0+1 .. t0+Tc (Tc: graph.coding)
    t0: int | None = None

    def __post_init__(self):
        self.shape = tuple(int(d) for d in self.shape)
        if self.data is not None:
            self.data = np.asarray(self.data)
        if self.t0 is not None:
            self.t0 = int(self.t0)

    @property
    def is_const(self) -> bool:
        return self.data is not None


@dataclass
class Node:
    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)


class Graph:
    def __init__(self, name: str = "graph"):
        self.name = name
        self.tensors: dict[str, Tensor] = {}
        self.nodes: list[Node] = []
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        #: free-form string facts: source file, compile options, ...
        self.meta: dict[str, str] = {}
        #: the SWS coding (Tc, beta), set by rescale; None for an imported graph
        self.coding: Coding | None = None
        #: steps from the first input spike to the last output spike (set by schedule-latencies)
        self.t_inf: int | None = None
        #: whether lower-to-integer has run (integer mode and the C backend need it)
        self.integer: bool = False

    # -- construction -------------------------------------------------------
    def add_tensor(self, t: Tensor) -> Tensor:
        self.tensors[t.name] = t
        return t

    def add_const(self, name: str, data: np.ndarray, quant: Quant | None = None) -> Tensor:
        data = np.asarray(data)
        return self.add_tensor(Tensor(self.unique_name(name), str(data.dtype), data.shape,
                                      data=data, quant=quant))

    def add_node(self, op: str, name: str, inputs: Iterable[str], outputs: Iterable[str],
                 attrs: dict | None = None, *, index: int | None = None) -> Node:
        node = Node(op, name, list(inputs), list(outputs), dict(attrs or {}))
        if index is None:
            self.nodes.append(node)
        else:
            self.nodes.insert(index, node)
        return node

    def unique_name(self, base: str) -> str:
        """A name no tensor or node of the graph has (``fresh_name``)."""
        return fresh_name(base, set(self.tensors) | {n.name for n in self.nodes})

    def remove_node(self, node: Node) -> None:
        self.nodes.remove(node)

    def remove_unused_tensors(self) -> None:
        used = set(self.inputs) | set(self.outputs)
        for n in self.nodes:
            used.update(i for i in n.inputs if i)
            used.update(n.outputs)
        for name in [t for t in self.tensors if t not in used]:
            del self.tensors[name]

    def prune(self) -> None:
        """Drop nodes no graph output depends on, then tensors nothing uses."""
        prod = {o: n for n in self.nodes for o in n.outputs}
        live, stack = set(), [prod[o] for o in self.outputs if o in prod]
        while stack:
            n = stack.pop()
            if id(n) not in live:
                live.add(id(n))
                stack.extend(prod[i] for i in n.inputs if i in prod)
        self.nodes = [n for n in self.nodes if id(n) in live]
        self.remove_unused_tensors()

    def replace_uses(self, old: str, new: str) -> None:
        for n in self.nodes:
            n.inputs = [new if i == old else i for i in n.inputs]
        self.outputs = [new if o == old else o for o in self.outputs]

    # -- queries -------------------------------------------------------------
    def producer(self, tensor: str) -> Node | None:
        for n in self.nodes:
            if tensor in n.outputs:
                return n
        return None

    def consumers(self, tensor: str) -> list[Node]:
        return [n for n in self.nodes if tensor in n.inputs]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise IRVerifyError(f"no node named '{name}'")

    def const(self, name: str) -> np.ndarray | None:
        t = self.tensors.get(name)
        return None if t is None else t.data

    def topo_order(self) -> list[Node]:
        """Nodes in a dependency order; stable (keeps list order where free). Raises on cycles."""
        produced_by = {}
        for n in self.nodes:
            for o in n.outputs:
                produced_by[o] = n
        state: dict[int, int] = {}
        order: list[Node] = []
        for root in self.nodes:
            if id(root) in state:
                continue
            stack = [(root, iter(root.inputs))]
            state[id(root)] = 1
            while stack:
                node, it = stack[-1]
                for i in it:
                    dep = produced_by.get(i)
                    if dep is None:
                        continue
                    s = state.get(id(dep))
                    if s == 1:
                        raise IRVerifyError(f"cycle through node '{dep.name}' ({dep.op})",
                                            node=node.name, op=node.op)
                    if s is None:
                        state[id(dep)] = 1
                        stack.append((dep, iter(dep.inputs)))
                        break
                else:
                    stack.pop()
                    state[id(node)] = 2
                    order.append(node)
        return order

    def sort(self) -> None:
        self.nodes = self.topo_order()

    def clone(self) -> "Graph":
        return copy.deepcopy(self)
