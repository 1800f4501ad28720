"""Elementwise functions of a quantized tensor as a lookup table: ``Lut`` (canonical, on
integers) and ``SpikeLut`` (its spiking form).

Between two integer grids any elementwise function ``f`` (Sigmoid, Tanh, HardSwish, LeakyRelu,
PRelu, Exp, ...) is a table: ``y_q = T[c][x_q - base]``, with at most ``2^bits`` entries per
channel (one table for all channels unless the function varies per channel, as PRelu's slope
may). The front-end (swsc/frontend/match_unary.py) computes ``T`` at compile time the way
onnxruntime evaluates ``DQ -> f -> Q`` (or builds the table of QLinearSigmoid/QLinearLeakyRelu):
dequantize in float32, ``f`` in float32, quantize with round-half-even and clamp. ``base`` is
the smallest value of the input type (row ``x_q - base`` of the table), so the table stays valid
whatever range a later Clip narrows; every lookup is clamped to the output tensor's ``[lo, hi]``.

The spiking form is a neuron that waits for its whole input window: a spike train's value is
complete only after its last step, so the neuron accumulates ``A = sum s(k) beta^(Tc-k)`` over
the Tc input steps, decodes the input code exactly (clamped to the table), looks it up and then
emits the output code's SWS train, the exact encoder's train for that code (``encode_frames``).
It is exact at any silent period of the layers around it (its input is whatever code the train
it gets encodes), and its **latency is one window**: its output starts Tc steps after its input
(``latency``), which schedule-latencies counts in every later start step and in ``T_inf``
(a chain with one table layer takes ``Tc`` steps more than without it).

Integer mode (lower-to-integer) attaches two tables: ``codes[c][A]`` (the output code of each
decoded train value ``A = 0 .. amax``, negative values clamp to 0, larger ones to ``amax``) and
``trains[code]`` (the output train of each output code, as the encoder's ``lut``). The C step
decodes each input train from its two masks (any integer beta: ``A = beta A + pos_k - neg_k``),
reads both tables (const arrays, in flash) and copies the output masks. Spike counts: the output
spikes, counted like an encoder's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from swsc import kernels
from swsc.errors import IRVerifyError, SwscError
from swsc.ir import INT_RANGES

from .base import Op, inputs_of, register


@register
class Lut(Op):
    name = "Lut"
    inputs = ("x", "table")
    attrs = {"base": True}
    doc = "elementwise function of a quantized tensor: y = clamp(table[c][x - base], lo, hi)"

    def verify(self, graph, node):
        check_table(graph, node)

    # -- reference (ANN)
    def reference(self, graph, node, env):
        y = graph.tensors[node.outputs[0]]
        idx = np.asarray(env[node.inputs[0]]).astype(np.int64) - int(node.attrs["base"])
        return lookup(graph.const(inputs_of(node).table), idx, y.quant.lo, y.quant.hi).astype(y.dtype)

    # -- passes
    # (no fold: the table acts on codes once the offsets are known, see ``codes_of``; rescale
    # needs nothing: the table is on codes, the amplitudes only matter to decode and encode)
    def lower_sws(self, graph, node, options):
        """-> ``SpikeLut``: the neuron that waits for its whole window, then emits the table's code."""
        node.op = SpikeLut.name
        node.attrs["window"] = graph.coding.tc
        return True

    # -- numpy runtime
    def run(self, rt, node, env, stats):
        """On codes (q - lo) of the integer-domain graph."""
        return codes_of(rt.g, node, env[node.inputs[0]])


@register
class SpikeLut(Op):
    name = "SpikeLut"
    inputs = ("x", "table", "codes?", "trains?")
    attrs = {"base": True, "window": True}
    doc = "wait for the whole input train, decode its code, emit the SWS train of table[c][code]"
    spike_inputs = True
    spike_output = True

    def verify(self, graph, node):
        check_table(graph, node)
        if graph.coding is not None and node.attrs["window"] != graph.coding.tc:
            raise IRVerifyError(f"waits {node.attrs['window']} steps, but the window is Tc = {graph.coding.tc}",
                                node=node.name, op=node.op)

    def latency(self, node) -> int:
        """One window: the input's code is known only after its last step. (The hook sees the node
        only, so lower-to-sws records Tc as ``window``; verify checks it against the coding.)"""
        return int(node.attrs["window"])

    # -- passes
    def lower_int(self, graph, node, lowering):
        """The table on decoded train values ``A`` (what the C decoder computes) and the output
        trains of every output code (the exact encoder's, tabulated)."""
        coding = graph.coding
        x, y = graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]]
        amax = train_range(coding, x.quant)
        A = np.arange(amax + 1, dtype=np.float64)
        code_in = np.clip(kernels.int_code(A, x.quant.theta or 1.0), 0, x.quant.hi - x.quant.lo)
        codes = codes_of(graph, node, code_in[None, :].repeat(_rows(graph, node), 0), per_row=True)
        levels = np.arange(y.quant.hi - y.quant.lo + 1, dtype=np.float64)
        trains = kernels.encode_exact(levels, coding.tc, coding.beta, y.quant.theta or 1.0)
        ins = inputs_of(node)
        c = graph.add_const(f"{node.name}.codes", codes.astype(_int_type(codes)))
        t = graph.add_const(f"{node.name}.trains", np.ascontiguousarray(trains.T.astype(np.int8)))
        node.inputs = [ins.x, ins.table, c.name, t.name]
        return True

    # -- numpy runtime
    def run(self, rt, node, env, stats):
        """Decode each input train (float: ``A theta``; integer mode: the integer decoder and the
        tables of lower-to-integer, as the C does), look it up, emit the output code's train."""
        g = rt.g
        frames = env[node.inputs[0]]
        x, y = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
        # steps = Tc: the neuron accumulates its input over the window (A = beta A + s(k))
        s = rt.stat(stats, node, neurons=int(np.prod(frames.shape[2:])), ts=0, steps=g.coding.tc)
        A = kernels.decode(frames, g.coding.beta)
        ins = inputs_of(node)
        if rt.mode == "int":
            codes = g.const(ins.codes)
            a = np.clip(np.rint(A), 0, codes.shape[1] - 1).astype(np.int64)
            out = codes[_channel_index(codes.shape[0], a.shape), a]
            out_frames = np.moveaxis(g.const(ins.trains)[out], -1, 0)
        else:
            code_in = np.clip(np.rint(A * (x.quant.theta or 1.0)), 0, x.quant.hi - x.quant.lo)
            out = codes_of(g, node, code_in)
            out_frames = kernels.encode_exact(out, g.coding.tc, g.coding.beta, y.quant.theta or 1.0)
        s.count_spikes(out_frames)
        s.synaptic_ops += int(np.count_nonzero(frames))    # each input spike reaches one neuron
        return out_frames

    def sim_bytes(self, mem, node):
        """The decoded values and codes in float64 and the output frames."""
        return 24 * mem.size(node.outputs[0]) + mem.value_bytes(node.outputs[0])

    # -- C backend
    def c_plan(self, pl, node, idx):
        ins = inputs_of(node)
        if ins.codes is None:
            raise SwscError("the table layer has no integer tables (run lower-to-integer)", node=node.name,
                            op=node.op)
        codes, trains = pl.const(ins.codes), pl.const(ins.trains)
        out = node.outputs[0]
        levels = pl.t(out).quant.hi - pl.t(out).quant.lo + 1
        if trains.shape != (levels, pl.tc):
            raise SwscError(f"output train table has shape {trains.shape}, expected {(levels, pl.tc)}",
                            node=node.name, op=node.op)
        inp = pl.spike_in(node.inputs[0], idx)
        buf = pl.new_buffer(out, idx)
        ident = pl.ident(node)
        frame = pl.frame(out)
        inner = int(np.prod(frame[1:], dtype=np.int64)) if len(frame) > 1 else 1
        csym, cflash, _ = pl.array(f"lutc_{ident}", codes, f"table {node.name}: output code per channel "
                                       f"and decoded input value A = 0..{codes.shape[1] - 1}")
        weights = 1 << np.arange(pl.tc, dtype=np.int64)
        masks = np.stack([((trains > 0) * weights).sum(axis=1), ((trains < 0) * weights).sum(axis=1)], axis=1)
        tsym, tflash, _ = pl.array(f"lutt_{ident}", masks, f"table {node.name}: (+1 mask, -1 mask) per output "
                                   "code", ctype=pl.mask_t, share=True)
        at, _ = pl.wide(pl.beta * pl.code_sum + 1, "a decoded train value", node)
        pl.report(node, cflash + tflash, pl.spike_bytes(out))
        return LutPlan(at=at, fn=pl.fn(idx, ident), comment=pl.comment(node.name), inp=inp, out=buf, n=pl.numel(out),
                       channels=codes.shape[0], inner=inner, amax=codes.shape[1] - 1, codes=csym, trains=tsym,
                       stat=pl.stat(node), per_channel=codes.shape[0] > 1)


# ---- the table


def check_table(graph, node) -> None:
    """The table is [1 or C, 2^bits of the input type] of integers, C the input's axis 1."""
    x = graph.tensors[node.inputs[0]]
    tab = graph.tensors[inputs_of(node).table]
    rows = tab.shape[0] if len(tab.shape) == 2 else -1
    if rows < 1 or (rows != 1 and (len(x.shape) < 2 or rows != x.shape[1])):
        raise IRVerifyError(f"table shape {list(tab.shape)} is not [1 or channels, levels]", node=node.name,
                            op=node.op)
    if x.dtype in INT_RANGES:
        lo, hi = INT_RANGES[x.dtype]
        if tab.shape[1] != hi - lo + 1 or node.attrs["base"] != lo:
            raise IRVerifyError(f"a {x.dtype} input needs a table of {hi - lo + 1} entries from {lo}, not "
                                f"{tab.shape[1]} from {node.attrs['base']}", node=node.name, op=node.op)


def lookup(table: np.ndarray, idx: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``clamp(table[c][idx], lo, hi)`` elementwise, ``c`` the index on axis 1 of ``idx`` (row 0
    for a table shared by all channels)."""
    idx = np.clip(idx, 0, table.shape[1] - 1)
    return np.clip(table.astype(np.int64)[_channel_index(table.shape[0], idx.shape), idx], lo, hi)


def codes_of(graph, node, code_in, per_row: bool = False) -> np.ndarray:
    """Output codes (q - lo, float64) of input codes (q - lo): the table between the two tensors'
    offsets. ``per_row``: ``code_in`` is [rows, n] (row c looks up channel c's table)."""
    x, y = graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]]
    table = graph.const(inputs_of(node).table)
    idx = np.asarray(code_in).astype(np.int64) + x.quant.lo - int(node.attrs["base"])
    if per_row:
        idx = idx.reshape(idx.shape[0], 1, -1).transpose(1, 0, 2)   # rows on axis 1, as channels
        return (lookup(table, idx, y.quant.lo, y.quant.hi)[0] - y.quant.lo).astype(np.float64)
    return (lookup(table, idx, y.quant.lo, y.quant.hi) - y.quant.lo).astype(np.float64)


def train_range(coding, q) -> int:
    """The largest decoded train value ``A`` the integer table needs: the first that decodes to
    the input's top code (larger ones clamp to it); at most the code sum S."""
    theta = q.theta or 1.0
    return int(min(coding.code_sum, np.ceil((q.hi - q.lo) / theta) + 1))


def _rows(graph, node) -> int:
    return graph.tensors[inputs_of(node).table].shape[0]


def _channel_index(rows: int, shape) -> np.ndarray | int:
    """The table row of every element of an array shaped ``shape`` ([N, C, ...]): its channel."""
    if rows == 1:
        return 0
    return np.arange(rows).reshape((1, rows) + (1,) * (len(shape) - 2))


def _int_type(a: np.ndarray):
    return np.uint8 if a.max() < 256 else np.uint16 if a.max() < 65536 else np.int32


# ---- C backend helpers
@dataclass
class LutPlan:
    """The table layer's C step (lut.c.j2): decode each of the ``n`` input trains to ``A``
    (clamped to 0..amax), read its output code from ``codes`` (row = channel, ``channels`` rows
    of ``amax + 1``, channel = (i / inner) % channels), copy that code's masks from ``trains``;
    ``stat`` is its stats entry."""
    template: ClassVar[str] = "ops/lut.c.j2"
    fn: str
    comment: str
    inp: object
    out: object
    n: int
    channels: int
    inner: int
    amax: int
    codes: str
    trains: str
    stat: int
    per_channel: bool
    at: str            # the C type of A
