"""The C backend's planner: walks the graph, asks each op for its C plan, places the buffers.

``Planner(graph, prefix).plan()`` calls ``op_of(node).c_plan(pl, node, idx)`` for every
node in topological order. The hook returns the op's plan (a dataclass defined in the op's
module, with the ``template`` of its fragment: ``ops/<op>.c.j2``) or None (an op that only
aliases a buffer); an op without a ``c_plan`` is one the backend cannot run. The planner
is the hooks' whole toolbox (``pl.*``): tensors and frames, the spike-buffer arena
(``spike_in``, ``new_buffer``, ``alias``), the constant arrays (``array``), C literals and
types (``c_int``, ``wide``, ...), the stats and memory-report entries, the block size of
the accumulators (``blocking``), the model's input and outputs. After the walk it drops
decoders of outputs nobody reads, numbers the outputs and places every spike buffer in
the arena (first fit by liveness); the plans hold the buffers themselves, so their
offsets are known when the templates render.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from swsc.passes.lower_to_integer import membrane_bits

from swsc.errors import SwscError, UnsupportedOpError
from swsc.ir import Graph, Node, scalar
from swsc.ops import op_of, prod

from . import cformat as cf

#: the accumulators and the neuron state of a block of output channels stay under this many bytes (stack)
ACC_BLOCK_BYTES = 8192
SCAN_BYTES = 44   # per neuron of a block, int32 membranes: U, bq, rq, two thresholds, E, two masks, two counts, bd


@dataclass
class LayerMem:
    name: str
    op: str
    flash_bytes: int
    ram_bytes: int
    membrane_bits: int = 0     # TSA layers: bits the proven membrane bound needs (signed)
    saturating: bool = False   # TSA layers: the membrane saturates (docs/integer.md)


@dataclass
class SpikeBuf:
    """One spike buffer of the arena, in mask words: live from step ``start`` to ``end``;
    ``offset`` is set by the allocation, before any template renders."""
    size: int
    start: int
    end: int
    offset: int = -1


@dataclass
class Blocking:
    """Output channels computed in blocks of ``MB`` sharing each input (``Planner.blocking``):
    accumulators of type ``at`` (``acc_size`` bytes), weight rows padded to ``MGP`` channels,
    ``MB_exact`` when ``MB`` divides the real channel count."""
    MB: int
    MB_exact: bool
    at: str
    acc_size: int
    MGP: int


@dataclass
class CInput:
    """The model's quantized input (``<prefix>_input_t``)."""
    n: int
    dims: list
    ctype: str
    dtype: str
    lo: int
    hi: int
    scale: str
    zp: str
    tensor: str
    head: list = field(default_factory=list)   # HeadStep: the float head, in order


@dataclass
class HeadStep:
    """One ``FloatArith`` of the float head, run on the float input in ``<prefix>_quantize_input``:
    ``v = v op c`` (``c op v`` where reversed), ``c`` one value, one per channel or one per
    element (``index`` the C expression that picks it for element ``i``)."""
    op: str
    reverse: bool
    values: list              # C float literals
    index: str


@dataclass
class COutput:
    """One graph output: a decoder's integer codes, optionally followed by the float tail
    (``softmax``, the Softmax op's plan, rendered into ``<prefix>_float.c``)."""
    tensor: str
    decode_tensor: str
    n: int
    dims: list
    scale: str
    zp: str
    name: str
    softmax: object = None
    index: int = 0
    base: int = 0
    end: int = 0


class _Arrays:
    """The constant arrays of the model (all go to ``<prefix>_weights.c``)."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.items: list[dict] = []
        self._by_content: dict[tuple, tuple[str, str]] = {}
        self._syms: set[str] = set()

    def add(self, name: str, values, comment: str, *, ctype: str | None = None,
            share: bool = False) -> tuple[str, int, str]:
        arr = np.asarray(values).astype(np.int64).reshape(-1)
        if arr.size == 0:
            arr = np.zeros(1, dtype=np.int64)
        if ctype is None:
            ctype, size = cf.int_ctype(int(arr.min()), int(arr.max()))
        else:
            size = cf.CTYPE_BYTES[ctype]
        key = (ctype, tuple(arr.tolist())) if share else None
        if key is not None and key in self._by_content:
            return self._by_content[key], 0, ctype
        sym = base = f"{self.prefix}_{name}"
        i = 1
        while sym in self._syms:          # names built from two model names may meet
            sym = f"{base}_{i}"
            i += 1
        self._syms.add(sym)
        self.items.append({"sym": sym, "ctype": ctype, "n": int(arr.size), "comment": cf.c_comment(comment),
                           "body": cf.format_array(arr)})
        if key is not None:
            self._by_content[key] = sym
        return sym, int(arr.size) * size, ctype


class Planner:
    """Walks the graph in topological order and collects the emission plan."""

    # the C helpers the hooks use (op modules do not import the runtime)
    c_int = staticmethod(cf.c_int)
    c_float = staticmethod(cf.c_float)
    c_double = staticmethod(cf.c_double)
    comment = staticmethod(cf.c_comment)
    wide = staticmethod(cf.wide_ctype)
    membrane_bits = staticmethod(membrane_bits)
    INT32_MAX = cf.INT32_MAX

    def __init__(self, graph: Graph, prefix: str):
        if not graph.integer:
            raise SwscError("the C backend needs a graph compiled with lower-to-integer",
                            hint="compile with integer=True or --target c")
        if graph.coding is None:
            raise SwscError("the graph has no SWS coding (Tc, beta)", hint="compile it with rescale")
        self.g = graph
        self.prefix = prefix
        self.arrays = _Arrays(prefix)
        self.order = graph.topo_order()
        self.taken: set[str] = set()
        self.steps: list = []               # (plan, output it feeds or None)
        self.layers: list[dict] = []        # stats entries: encoder and TSA layers, in order
        self.mem: list[LayerMem] = []
        self.buffers: dict[str, SpikeBuf] = {}   # root spike tensor -> buffer
        self.root: dict[str, str] = {}      # spike tensor -> root tensor (aliases)
        self.outputs: list[COutput] = []
        self.work_bytes = 0
        self.input: CInput | None = None
        self.head: list[tuple[str, HeadStep]] = []   # the float head: (output tensor, step)
        self.coding = graph.coding
        self.tc = int(graph.coding.tc)
        self.beta = int(graph.coding.beta)
        self.code_sum = int(graph.coding.code_sum)
        bad = []
        if len(graph.inputs) != 1:
            bad.append((graph.name, "graph", f"the C backend takes one input, the graph has {len(graph.inputs)}"))
        for n in self.order:
            if not hasattr(op_of(n), "c_plan"):
                bad.append((n.name, n.op, "the C backend has no code for this op"))
        if self.tc > 32:
            bad.append((graph.name, "graph", "the C backend packs a spike train in 32 bits: Tc <= 32"))
        if bad:
            raise UnsupportedOpError(bad)
        self.mask_t, self.mask_bytes = (("uint8_t", 1) if self.tc <= 8 else ("uint16_t", 2) if self.tc <= 16
                                        else ("uint32_t", 4))
        self.bit1 = "(uint32_t)1" if self.tc > 16 else "1u"

    # -- tensors and constants
    def t(self, name):
        return self.g.tensors[name]

    def frame(self, name) -> tuple[int, ...]:
        return tuple(self.t(name).shape[1:])

    def numel(self, name) -> int:
        return prod(self.frame(name))

    def const(self, name) -> np.ndarray:
        return np.asarray(self.g.const(name)).astype(np.int64)

    def frame_axis(self, node: Node, rank: int, batch_error: str) -> int:
        """The node's ``axis`` attribute as an axis of one frame (the batch axis is not allowed)."""
        axis = int(node.attrs["axis"])
        if axis < 0:
            axis += rank
        if axis == 0:
            raise UnsupportedOpError([(node.name, node.op, batch_error)])
        return axis - 1

    def ident(self, node: Node) -> str:
        return cf.c_ident(node.name, self.taken, 24)

    def array(self, name: str, values, comment: str, *, ctype: str | None = None,
              share: bool = False) -> tuple[str, int, str]:
        """A constant array in ``<prefix>_weights.c``: (symbol, flash bytes, C type); ``share``:
        reuse an equal array (0 bytes)."""
        return self.arrays.add(name, values, comment, ctype=ctype, share=share)

    def ctype_bytes(self, lo: int, hi: int) -> int:
        return cf.int_ctype(lo, hi)[1]

    # -- the spike arena
    def new_buffer(self, name: str, idx: int) -> SpikeBuf:
        t = self.t(name)
        if t.dtype != "spike":
            raise SwscError(f"expected a spike tensor, '{name}' is {t.dtype}")
        self.root[name] = name
        self.buffers[name] = SpikeBuf(2 * self.numel(name), idx, idx)
        return self.buffers[name]

    def spike_in(self, name: str, idx: int) -> SpikeBuf:
        """The buffer holding spike tensor ``name``, kept alive until step ``idx``."""
        b = self.buffers[self.root[name]]
        b.end = max(b.end, idx)
        return b

    def alias(self, out: str, src: str, idx: int) -> None:
        self.spike_in(src, idx)
        self.root[out] = self.root[src]

    def require_spikes(self, node: Node) -> None:
        """Structural ops run in C on spike tensors only (integer tensors exist only before the encoder)."""
        if any(self.t(i).dtype != "spike" for i in node.inputs):
            raise UnsupportedOpError([(node.name, node.op, "the C backend runs structural ops on spike tensors only")])

    def spike_bytes(self, name: str) -> int:
        return 2 * self.numel(name) * self.mask_bytes

    # -- steps, stats and the memory report
    def fn(self, idx: int, ident: str) -> str:
        return f"{self.prefix}_l{idx}_{ident}"

    def stat(self, node: Node) -> int:
        self.layers.append({"name": node.name, "ident": None, "op": node.op})
        return len(self.layers) - 1

    def report(self, node: Node, flash: int, ram: int, bits: int = 0, sat: bool = False) -> None:
        self.mem.append(LayerMem(cf.c_comment(node.name, 60), node.op, int(flash), int(ram), bits, sat))

    def scratch(self, nbytes: int) -> None:
        """A step's stack scratch: the largest one counts."""
        self.work_bytes = max(self.work_bytes, nbytes)

    def blocking(self, channels: int, fan: int) -> Blocking:
        """Output channels are computed in blocks sharing each input: each input's weight row
        (padded with zeros to ``MGP`` channels, a whole number of vectors) is added to the block's
        accumulators ``[Tc][MB]`` in every frame at once. The accumulators are int16_t where the
        synaptic sum ``|acc| <= fan`` fits (twice the lanes per vector), else int32_t; ``MB`` is
        the real channel count where that is less than one vector, else the largest whole number of vectors that divides ``MGP`` and keeps the block under
        ACC_BLOCK_BYTES; ``MB_exact`` when it divides the real channel count too."""
        at, size = ("int16_t", 2) if fan <= 2**15 - 1 else ("int32_t", 4)
        lanes = 16 // size
        if channels < lanes:
            # fewer channels than one vector (a depthwise conv's one per group): padding the rows
            # would only add zero lanes, 8x the depthwise weights in flash (MobileNetV2 then
            # overflows the Cortex-M4 board's 4 MiB) and zero-filled accumulators per position
            return Blocking(channels, True, at, size, channels)
        units = -(-channels // lanes)
        cap = max(1, ACC_BLOCK_BYTES // ((size * self.tc + SCAN_BYTES) * lanes))
        ub = max(u for u in range(1, min(units, cap) + 1) if units % u == 0)
        mb = ub * lanes
        return Blocking(mb, channels % mb == 0, at, size, units * lanes)

    # -- the model's input and outputs
    def set_input(self, node: Node, out: str) -> CInput:
        """The encoder's input: the model's quantized input, of the C type for its code range."""
        if self.input is not None:
            raise UnsupportedOpError([(node.name, node.op, "more than one encoder")])
        q = self.t(out).quant
        ctype, tmin, tmax = cf.input_ctype(q.lo, q.hi)
        if not (tmin <= q.lo and q.hi <= tmax):
            raise UnsupportedOpError([(node.name, node.op, f"input range [{q.lo}, {q.hi}] is wider than 16 bits")])
        if node.inputs[0] != self.head_end():
            raise UnsupportedOpError([(node.name, node.op, "the encoder does not read the graph input or its head")])
        self.input = CInput(self.numel(out), list(self.frame(out)), ctype, ctype.replace("_t", ""), q.lo, q.hi,
                            cf.c_float(scalar(q.scale)), cf.c_float(scalar(q.zero_point)), node.inputs[0],
                            [step for _, step in self.head])
        return self.input

    def head_end(self) -> str:
        """The tensor the float head ends in so far (the graph input where it has none)."""
        return self.head[-1][0] if self.head else self.g.inputs[0]

    def add_head(self, node: Node, op: str, c: np.ndarray, reverse: bool) -> None:
        """A float head op on the graph input (before the encoder; a chain from the input only)."""
        if node.inputs[0] != self.head_end():
            raise UnsupportedOpError([(node.name, node.op, ("the C backend runs a float head as one chain of "
                                                            "elementwise ops on the graph input"))])
        frame = self.frame(node.outputs[0])
        full = np.broadcast_to(np.asarray(c, np.float32), (1,) + frame)[0]
        plane = prod(frame[1:]) if len(frame) > 1 else 1
        if np.all(full == full.reshape(-1)[0]):
            values, index = full.reshape(-1)[:1], "0"
        elif len(frame) > 1 and np.all(full.reshape(frame[0], -1) == full.reshape(frame[0], -1)[:, :1]):
            values, index = full.reshape(frame[0], -1)[:, 0], f"i / {plane}"     # one per channel
        else:
            values, index = full.reshape(-1), "i"
        sym = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/"}[op]
        self.head.append((node.outputs[0], HeadStep(sym, reverse, [cf.c_float(v) for v in values], index)))

    def add_output(self, tensor: str, src: str) -> COutput:
        """A decoded output ``tensor`` of spike tensor ``src``."""
        q = self.t(src).quant
        out = COutput(tensor, tensor, self.numel(src), list(self.frame(src)),
                      cf.c_double(scalar(q.scale)), cf.c_double(scalar(q.zero_point)), cf.c_comment(tensor, 60))
        self.outputs.append(out)
        return out

    def output_of(self, tensor: str) -> COutput | None:
        return next((o for o in self.outputs if o.tensor == tensor), None)

    # -- the walk
    def plan(self) -> None:
        for idx, node in enumerate(self.order):
            step = op_of(node).c_plan(self, node, idx)
            if step is not None:
                self.steps.append(step)
        for o in self.g.outputs:
            if self.output_of(o) is None:
                raise UnsupportedOpError([(o, "output", "a graph output that is not a decoded spike tensor "
                                           "(SwsDecode, optionally followed by Softmax)")])
        live = {o.decode_tensor for o in self.outputs if o.tensor in self.g.outputs}
        self.outputs = sorted((o for o in self.outputs if o.decode_tensor in live),
                              key=lambda out: self.g.outputs.index(out.tensor))
        # a step that feeds an output (a decoder) goes with it
        self.steps = [st for st in self.steps if getattr(st, "output", None) is None
                      or any(st.output is o for o in self.outputs)]
        base = 0
        for i, out in enumerate(self.outputs):
            out.index, out.base, out.end = i, base, base + out.n
            base += out.n
        self.output_size = base
        self.allocate()
        layer_taken: set[str] = set()
        for lay in self.layers:
            lay["ident"] = cf.c_ident(lay["name"], layer_taken, 24).upper()
            lay["comment"] = cf.c_comment(lay["name"], 60)

    def allocate(self) -> None:
        """First-fit placement of the spike buffers by liveness (topological steps)."""
        placed: list[tuple[int, int, int, int]] = []   # (offset, size, start, end)
        self.arena = 0
        self.unshared = 0
        for b in self.buffers.values():   # in creation order
            self.unshared += b.size
            live = sorted((o, s) for o, s, st, en in placed if not (en < b.start or st > b.end))
            off = 0
            for o, s in live:
                if off + b.size <= o:
                    break
                off = max(off, o + s)
            b.offset = off
            placed.append((off, b.size, b.start, b.end))
            self.arena = max(self.arena, off + b.size)



