"""The op base class, the registry, named inputs and the shared shape rules.

Every op is one class in one module of this package (``swsc/ops/<op>.py``), registered
with ``@register``. The class holds everything about the op: its definition (inputs and
attributes by name, shape rule, extra verification) and its behaviour at each stage of
the pipeline that has one. Stages never dispatch on ``node.op``: they look the op up
(``op_of(node)``) and call its hook. Hook names are fixed per stage:

================  ============================================================================
stage             hooks (an op defines only those of the stages it exists at)
================  ============================================================================
IR                ``shape``, ``verify``, ``latency``; flags ``structural``, ``spike_inputs``,
                  ``spike_output``, ``neuron_layer``, ``pure_delay``
front-end         ``build`` (emit a matched cluster: QConv, QDense, QAvgPool, QAdd, Concat; the
                  emitter of swsc/frontend/emit.py is its context)
reference (ANN)   ``reference``
passes            ``fold`` (fold-zero-points), ``rescale``, ``insert_encoder``, ``lower_sws``,
                  ``lower_int``; synapses: ``fold_bias``, ``rescale_weights``, ``int_weights``,
                  ``int_candidates``
numpy runtime     ``run``, ``sim_bytes`` (working memory); synapses: ``linear``, ``split_weights``,
                  ``real_current``, ``float32_exact``, ``fanout``, ``dense_macs``, ``im2col_taps``
C backend         ``c_plan`` (returns the op's plan dataclass, which names its fragment
                  ``swsc/ops/<op>.c.j2`` in ``template``); synapses: ``c_plan``
================  ============================================================================

docs/adding-an-op.md follows one op (Slice) through all of them.

The fused layer ops ``Affine`` and ``TsaLayer`` compute a synaptic current (a conv, a
dense map, a sum-pool, a weighted add) and feed it to integer-domain neurons or TSA
neurons; the synapse kind is the node's ``kind`` attribute and each kind is a
``Synapse`` class in the same module as its quantized op (``conv.py`` holds ``QConv``
and the conv synapse), looked up with ``synapse_of(node)``. docs/ir.md says why the
layer stays one node.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from swsc.errors import IRVerifyError, OptionError, SwscError, UnsupportedOpError
from swsc.ir import Node, scalar

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
        raise SwscError(f"op {inst.name!r} registered twice")
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
    #: a layer of TSA neurons: counted in L_TSA, given its silent period ``ts`` by schedule-latencies
    neuron_layer = False
    #: only shifts its input trains in time (SpikeDelay): tools look through it to the layer before
    pure_delay = False

    # -- IR
    def shape(self, graph, node) -> list[tuple]:
        return [graph.tensors[node.inputs[0]].shape]

    def verify(self, graph, node) -> None:
        """Op-specific checks beyond arity, attributes and shapes."""

    def latency(self, node) -> int:
        """Steps from the start of the input spike trains to the start of the output's."""
        return 0

    # -- passes (defaults: an op without a rule at a pass passes through it unchanged;
    # each hook returns True where it changed the graph)
    def fold(self, graph, node):
        """fold-zero-points: the ``Affine`` node replacing ``node``, or None to keep it."""
        return None

    def rescale(self, graph, node, coding) -> bool:
        """rescale: normalize ``node`` to the spike amplitudes chosen for its tensors. An op
        acting frame by frame (structural) needs one amplitude on all its tensors."""
        if self.structural:
            one_theta(graph, node)
        return False

    def insert_encoder(self, graph, node, options) -> bool:
        """insert-encoder: turn the input quantizer into the SWS encoder."""
        return False

    def lower_sws(self, graph, node, options) -> bool:
        """lower-to-sws: turn ``node`` into its spiking form. Ops that already act on spike
        trains (or frame by frame on whatever they get) stay; any other op has no spiking form."""
        if self.structural or self.spike_output or self.spike_inputs:
            return False
        raise UnsupportedOpError([(node.name, node.op, "no spiking lowering")])

    def lower_int(self, graph, node, lowering) -> bool:
        """lower-to-integer: attach the integer constants of ``node``; ``lowering`` is the pass
        (it chooses the neuron constants within the proven membrane bound)."""
        return False


class Synapse:
    """One kind of fused layer (Affine/TsaLayer ``kind``): the current into the neurons."""

    name: str = ""

    def shape(self, graph, node) -> list[tuple]:
        raise NotImplementedError

    # -- passes
    def rescale_weights(self, graph, node, w, theta_out):
        """rescale (eq. 18): ``W = W~ theta_in / theta_out`` on a copy ``w`` of the weights of
        a synapse with one input."""
        w *= graph.tensors[node.inputs[0]].quant.theta / theta_out
        return w

    def int_weights(self, graph, node, W, b):
        """lower-to-integer: (integer weights or None, the real multiplier M with ``W = wq M``
        that the neurons take over, a bound of ``|acc|`` per input LSB); W, b: the layer's
        normalized weights and per-step bias."""
        raise UnsupportedOpError([(node.name, node.op, f"no integer form of a {self.name} synapse")])

    def int_candidates(self, W, wq, M, fan, *, S, beta, ts, unit_err):
        """lower-to-integer: (complete candidates, (wq, M, fan) to sweep acc_mul over or None).
        Integer weights are exact: only the neuron's unit ``acc_mul`` is to be chosen."""
        return [], (wq, M, fan)


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


def pool_shape(graph, node) -> list[tuple]:
    """The shape rule of a pool: a window op that keeps the channels."""
    x = graph.tensors[node.inputs[0]].shape
    return spatial_shape(node, x, x[1])


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


# ---- passes helpers
#: the window attributes a quantized layer hands on to its Affine
_GEOM_KEYS = ("kernel", "strides", "pads", "dilations", "group", "count_include_pad")


def one_theta(graph, node) -> None:
    """rescale: an op that moves values without computing needs one spike amplitude on all
    its inputs and outputs (its frames are passed on as they are)."""
    thetas = {graph.tensors[i].quant.theta for i in node.inputs + node.outputs}
    if len(thetas) != 1:
        raise OptionError(f"inputs and outputs of {node.op} '{node.name}' need one spike "
                          f"amplitude but have {sorted(thetas)}")


def requant_multiplier(x, w, out) -> np.ndarray:
    """``s_i s_w / s_o`` per output channel of a linear layer (x, w, out: its tensors)."""
    m = w.shape[0]
    s_w = np.broadcast_to(w.quant.scale, (m,)).astype(np.float64)
    return scalar(x.quant.scale) * s_w / scalar(out.quant.scale)


def fold_linear(graph, node, synapse) -> Node:
    """fold-zero-points of a conv or dense layer (eq. 15-17 on codes, pass docstring):
    ``W~ = (w - z_w) s_i s_w / s_o``, the bias ``const = bias s_i s_w / s_o + z_o - lo_o``
    and the input's shift ``lo_i - z_i``, whose tap sums the synapse folds into ``b~``."""
    ins = inputs_of(node)
    x, w, out = graph.tensors[ins.x], graph.tensors[ins.w], graph.tensors[node.outputs[0]]
    m = w.shape[0]
    z_w = np.broadcast_to(w.quant.zero_point, (m,)).astype(np.float64)
    mult = requant_multiplier(x, w, out)
    bshape = (m,) + (1,) * (w.data.ndim - 1)
    w_tilde = (w.data.astype(np.float64) - z_w.reshape(bshape)) * mult.reshape(bshape)
    bias = graph.const(ins.bias) if ins.bias else None
    const = (np.zeros_like(mult) if bias is None else bias.astype(np.float64) * mult) \
        + scalar(out.quant.zero_point) - out.quant.lo
    shift = x.quant.lo - scalar(x.quant.zero_point)
    b = synapse.fold_bias(graph, node, w_tilde, const, shift)
    # the integer weights stay attached: lower-to-integer builds on them
    return affine_node(graph, node, synapse.name, [ins.x], w_tilde, b, wq=ins.w)


def affine_node(graph, node, kind: str, inputs: list, w, b, wq=None) -> Node:
    """The Affine node of fold-zero-points replacing the quantized layer ``node``: its real
    weights and bias become constants beside it."""
    wt = graph.add_const(f"{node.name}.weight", w)
    bt = graph.add_const(f"{node.name}.bias", b)
    geom = {k: node.attrs[k] for k in _GEOM_KEYS if k in node.attrs}
    return Node("Affine", node.name, inputs + [wt.name, bt.name] + ([wq] if wq else []), node.outputs,
                {"kind": kind, "n_inputs": len(inputs), **geom})


def model_int_weights(graph, node, b):
    """lower-to-integer of a conv or dense synapse: the model's integer weights ``w - z_w`` and
    ``M = s_i s_w theta_i / (s_o theta_o)`` (shaped like the bias ``b`` where it is a map)."""
    ins = inputs_of(node)
    wt, x, out = graph.tensors[ins.wq], graph.tensors[ins.x[0]], graph.tensors[node.outputs[0]]
    m = wt.shape[0]
    zw = np.broadcast_to(wt.quant.zero_point, (m,)).reshape((m,) + (1,) * (wt.data.ndim - 1))
    wq = wt.data.astype(np.int64) - zw
    M = requant_multiplier(x, wt, out) * (x.quant.theta / out.quant.theta)
    M = M.reshape((m,) + (1,) * (b.ndim - 1)) if b.ndim > 1 else M
    fan_in = np.abs(wq).reshape(m, -1).sum(axis=1).max()
    return wq, M, fan_in
