"""The op base class, the registry, named inputs and the shared shape rules.

Every op is one class in one module of this package (``swsc/ops/<op>.py``), registered
with ``@register``. The class holds everything about the op: its definition (inputs and
attributes by name, shape rule, extra verification) and its behaviour at each stage of
the pipeline that has one. Stages never dispatch on ``node.op``: they look the op up
(``op_of(node)``) and call its hook. Hook names are fixed per stage:

================  ============================================================================
stage             hooks (an op defines only those of the stages it exists at)
================  ============================================================================
IR                ``shape``, ``verify``, ``latency``
reference (ANN)   ``reference``
passes            ``fold`` (fold-zero-points), ``rescale``, ``lower_sws``, ``lower_int``
numpy runtime     ``run``
C backend         ``c_plan`` (returns the op's plan dataclass), ``c_template``
================  ============================================================================

The fused layer ops ``Affine`` and ``TsaLayer`` compute a synaptic current (a conv, a
dense map, a sum-pool, a weighted add) and feed it to integer-domain neurons or TSA
neurons; the synapse kind is the node's ``kind`` attribute and each kind is a
``Synapse`` class in the same module as its quantized op (``conv.py`` holds ``QConv``
and the conv synapse), looked up with ``synapse_of(node)``. docs/ir.md says why the
layer stays one node.
"""
from __future__ import annotations

from dataclasses import dataclass

from swsc.errors import IRVerifyError

DOMAIN = "ai.swsc"

#: op name -> Op instance
OPS: dict[str, "Op"] = {}
#: synapse kind (the ``kind`` attribute of Affine/TsaLayer) -> Synapse instance
SYNAPSES: dict[str, "Synapse"] = {}


def register(cls):
    """Class decorator: add one instance of an Op (or Synapse) subclass to its registry."""
    inst = cls()
    table = SYNAPSES if issubclass(cls, Synapse) else OPS
    if inst.name in table:
        raise RuntimeError(f"op {inst.name!r} registered twice")
    table[inst.name] = inst
    return cls


def op_of(node) -> "Op":
    d = OPS.get(node.op)
    if d is None:
        raise IRVerifyError(f"unknown op '{node.op}'", node=node.name, op=node.op)
    return d


def synapse_of(node) -> "Synapse":
    s = SYNAPSES.get(node.attrs.get("kind"))
    if s is None:
        raise IRVerifyError(f"unknown layer kind {node.attrs.get('kind')!r}", node=node.name, op=node.op)
    return s


class Inputs:
    """A node's inputs by the names of its op's definition: ``ins.w`` is the weight tensor's
    name, ``ins.x`` the list of variadic inputs; an absent optional input is None."""

    def __init__(self, names: dict):
        self.__dict__.update(names)

    def __repr__(self):
        return f"Inputs({self.__dict__})"


def inputs_of(node) -> Inputs:
    """The inputs of ``node`` by name (the only place that knows their positions)."""
    spec = op_of(node).inputs
    fixed = [s for s in spec if not s.startswith("*")]
    variadic = next((s[1:] for s in spec if s.startswith("*")), None)
    ins = list(node.inputs)
    names: dict = {}
    if variadic is not None:
        n = node.attrs.get("n_inputs", len(ins) - len(fixed))
        names[variadic] = ins[:n]
        ins = ins[n:]
    for s, v in zip(fixed, ins + [None] * len(fixed)):
        names[s.rstrip("?")] = v or None
    return Inputs(names)


class Op:
    """One IR op. Subclasses set the class attributes and override the hooks they have."""

    name: str = ""
    inputs: tuple[str, ...] = ()      # names; "*name" = variadic, "name?" = optional
    attrs: dict = {}                  # name -> required (True) / optional (False)
    doc: str = ""
    #: after lower-to-sws: every non-constant input must be a spike train
    spike_inputs = False
    #: produces spike trains (structural ops do when their inputs are spikes)
    spike_output = False
    #: acts frame by frame on whatever it gets: integer tensors and spike frames alike
    structural = False

    # -- IR
    def shape(self, graph, node) -> list[tuple]:
        return [graph.tensors[node.inputs[0]].shape]

    def verify(self, graph, node) -> None:
        """Op-specific checks beyond arity, attributes and shapes."""

    def latency(self, node) -> int:
        """Steps from the start of the input spike trains to the start of the output's."""
        return 0


class Synapse:
    """One kind of fused layer (Affine/TsaLayer ``kind``): the current into the neurons."""

    name: str = ""

    def shape(self, graph, node) -> list[tuple]:
        raise NotImplementedError


# ---------------------------------------------------------------- shape rules
def window_out(size: int, k: int, s: int = 1, p0: int = 0, p1: int = 0, d: int = 1) -> int:
    """Output length of a sliding window (conv, pool): the one copy of this formula."""
    return (size + p0 + p1 - d * (k - 1) - 1) // s + 1


@dataclass(frozen=True)
class Geometry:
    """Kernel, strides, pads (begin..., end...) and dilations of a window op, defaults filled."""
    kernel: tuple
    strides: tuple
    pads: tuple
    dilations: tuple

    @classmethod
    def of(cls, attrs: dict) -> "Geometry":
        k = tuple(attrs["kernel"])
        nd = len(k)
        return cls(k, tuple(attrs.get("strides", [1] * nd)), tuple(attrs.get("pads", [0] * (2 * nd))),
                   tuple(attrs.get("dilations", [1] * nd)))

    def out(self, in_spatial) -> list[int]:
        nd = len(self.kernel)
        return [window_out(in_spatial[i], self.kernel[i], self.strides[i], self.pads[i], self.pads[i + nd],
                           self.dilations[i]) for i in range(nd)]


def spatial_shape(node, in_shape, channels) -> list[tuple]:
    sp = Geometry.of(node.attrs).out(in_shape[2:])
    if any(v < 1 for v in sp):
        raise IRVerifyError(f"output spatial size {sp} is empty", node=node.name, op=node.op)
    return [(in_shape[0], channels, *sp)]


def broadcast(shapes, node) -> tuple:
    nd = max(len(s) for s in shapes)
    out = []
    for dims in zip(*[(1,) * (nd - len(s)) + tuple(s) for s in shapes]):
        big = {d for d in dims if d != 1}
        if len(big) > 1:
            raise IRVerifyError(f"shapes {shapes} do not broadcast", node=node.name, op=node.op)
        out.append(big.pop() if big else 1)
    return tuple(out)


def prod(shape) -> int:
    p = 1
    for d in shape:
        p *= int(d)
    return p


GEOM = {"kernel": True, "strides": False, "pads": False, "dilations": False}
