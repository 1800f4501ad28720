"""``TsaLayer``: TSA neurons fed by a synapse, with a silent period ``ts`` (semantics section 3)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from swsc import kernels, loops
from swsc.errors import SwscError, UnsupportedOpError

from .base import GEOM, Op, inputs_of, register, synapse_of


@register
class TsaLayer(Op):
    name = "TsaLayer"
    inputs = ("*x", "w", "b", "wq?", "bq?", "rq?", "bd?")
    attrs = {"kind": True, "n_inputs": True, "ts": True, "vth": True, "hi_norm": True,
             "int_acc_mul": False, "int_vth": False, "int_hi": False, "int_membrane": False,
             "int_sat": False, "int_bound": False, "int_error": False,
             **{k: False for k in GEOM}, "group": False, "count_include_pad": False}
    doc = "TSA neurons with a linear map and silent period ts (semantics section 3)"
    spike_inputs = True
    spike_output = True

    def shape(self, graph, node):
        return synapse_of(node).shape(graph, node)

    def latency(self, node):
        return node.attrs.get("ts", 0)

    # -- passes
    neuron_layer = True   # one of the L_TSA layers; schedule-latencies sets its silent period
    def lower_int(self, graph, node, lowering):
        """The integer constants of docs/integer.md, chosen by the pass within the proven
        membrane bound: ``wq`` (none for a window sum), ``bq``, ``rq``, ``bd`` where the bias is
        dithered, and the ``int_*`` facts."""
        ins, syn = inputs_of(node), synapse_of(node)
        W, b = graph.const(ins.w), graph.const(ins.b)
        wq, M, fan = syn.int_weights(graph, node, W, b)
        if np.any(M <= 0):
            raise UnsupportedOpError([(node.name, node.op, "a non-positive per-channel multiplier "
                                       "(negative folded BatchNorm scale) is not supported in integer mode")])
        c = lowering.constants(graph, node, syn, W, b, wq, M, fan)
        extra = [graph.add_const(f"{node.name}.wq", c.wq.astype(np.int32)).name if c.wq is not None else ""]
        extra.append(graph.add_const(f"{node.name}.bq", c.bq).name)
        extra.append(graph.add_const(f"{node.name}.rq", c.rq).name)
        if np.any(c.bd):
            extra.append(graph.add_const(f"{node.name}.bd", c.bd).name)
        node.inputs = ins.x + [ins.w, ins.b] + extra
        node.attrs.update(int_acc_mul=int(c.acc_mul), int_vth=[c.num, c.den], int_hi=int(math.floor(node.attrs["hi_norm"])),
                          int_membrane=c.membrane, int_sat=int(c.sat), int_bound=int(c.bound), int_error=float(c.err))
        return True

    # -- numpy runtime
    def run(self, rt, node, env, stats):
        """The synapse's current through the TSA neuron scan (``rt.tsa``: runtime/neurons.py), on
        all Tc input frames of the batch at once; counts spikes, synaptic operations (input
        spikes times the synapses they reach) and, with ``rt.residuals``, the residuals."""
        a = node.attrs
        ins = inputs_of(node)
        syn = synapse_of(node)
        w = rt.g.const(ins.w)
        xs = [env[i] for i in ins.x]
        tc, nb = xs[0].shape[:2]
        flat = [f.reshape((tc * nb,) + f.shape[2:]) for f in xs]
        frames, E, v = rt.tsa(node, flat, tc, nb)
        out = rt.g.tensors[node.outputs[0]]
        s = rt.stat(stats, node, neurons=int(np.prod(out.shape[1:])), ts=a["ts"], steps=rt.g.coding.tc + a["ts"],
                    macs=syn.dense_macs(rt.g, node, w))
        s.count_spikes(frames)
        fanout = rt.fanout(node, [f.shape[2:] for f in xs], w)
        s.synaptic_ops += sum(int(np.dot(loops.nonzero_counts(f).ravel(), fo.ravel())) for f, fo in zip(xs, fanout))
        if rt.residuals:
            s.add_residuals(E, v, a["hi_norm"])
        return frames

    def sim_bytes(self, mem, node):
        """Its GEMM operands over up to Tc frames (float32, or float64 for wide layers), the
        membranes and emitted values, the residual statistics."""
        tc = mem.g.coding.tc
        n_in = sum(mem.size(i) for i in inputs_of(node).x)
        n_out = mem.size(node.outputs[0])
        l1 = mem.row_l1(node)
        width = 4 if l1 is not None and l1 * 2 ** tc < kernels.FLOAT32_EXACT else 8
        cols = synapse_of(node).im2col_taps(node) if width == 8 else 1   # numpy's im2col columns
        # onnxruntime's conv output may be copied once: the GEMM result is there twice for a moment
        return width * tc * (n_in * cols + 2 * n_out) + 16 * n_out + (40 * n_out if mem.residuals else 0)

    # -- C backend
    def c_plan(self, pl, node, idx):
        """The layer's C step: its synapse's loops (the synapse's plan and fragment, e.g.
        conv.c.j2) around the TSA neurons of docs/integer.md (NeuronPlan, tsa.c.j2's macros).
        The membrane type comes from the bound lower-to-integer proved (``int_bound``)."""
        a = node.attrs
        for key in ("int_acc_mul", "int_vth", "int_hi", "int_bound"):
            if key not in a:
                raise SwscError(f"TSA layer lacks '{key}' (run lower-to-integer)", node=node.name, op=node.op)
        ins = inputs_of(node)
        if ins.bq is None or ins.rq is None:
            raise SwscError("TSA layer lacks its integer constants wq/bq/rq", node=node.name, op=node.op)
        tc, beta, ts = pl.tc, pl.beta, int(a["ts"])
        num, den = (int(v) for v in a["int_vth"])
        hi = int(a["int_hi"])
        bq, rq = pl.const(ins.bq), pl.const(ins.rq)
        bd = pl.const(ins.bd) if ins.bd is not None else None
        out = node.outputs[0]
        frame = pl.frame(out)
        xs = [pl.spike_in(i, idx) for i in ins.x]
        obuf = pl.new_buffer(out, idx)
        ident = pl.ident(node)
        syn = synapse_of(node).c_plan(pl, node, ident, xs)
        flash = syn.flash
        bqc, f1 = _c_neuron_const(pl, bq, frame, f"bq_{ident}", node, "bias bq", syn.spatial)
        rqc, f2 = _c_neuron_const(pl, rq, frame, f"rq_{ident}", node, "reset rq", syn.spatial)
        bdc, f3 = None, 0
        if bd is not None and np.any(bd):
            if int(bd.min()) < 0 or int(bd.max()) >= 2**tc or int(bd.max()) > pl.INT32_MAX:
                raise SwscError("bias dither bd out of range", node=node.name, op=node.op)
            bdc, f3 = _c_neuron_const(pl, bd, frame, f"bd_{ident}", node, "bias dither bd (bit t: +1 at step t)",
                                      syn.spatial)
        flash += f1 + f2 + f3
        if int(rq.min()) < 0:
            raise SwscError("negative reset rq", node=node.name, op=node.op)
        if syn.fan > pl.INT32_MAX:
            raise SwscError(f"synaptic sum may reach {syn.fan}, beyond int32", node=node.name, op=node.op)
        bound = int(a["int_bound"])
        mt, msize = pl.wide(bound, "the membrane", node)
        et, _ = pl.wide(beta * hi + 1, "the emitted value", node)
        lim = [hi // beta ** (tc - 1 - k) for k in range(tc)]
        lim_sym, fl, _ = pl.array(f"lim_{ident}", lim, f"fire-limit (int_hi {hi}) per output step", ctype=et,
                                  share=True)
        flash += fl
        sat = int(a.get("int_sat", 0))
        neu = NeuronPlan(beta=beta, ts=ts, one=pl.c_int(int(a["int_acc_mul"])), num=num, den=den, den_less1=den - 1,
                         mt=mt, et=et, bq=bqc, rq=rqc, bd=bdc, sat=pl.c_int(sat) if sat else None,
                         lim=lim_sym, phases=_c_phases(tc, ts),
                         per_channel=all(c is None or c.form in ("literal", "channel") for c in (bqc, rqc, bdc)))
        bits = pl.membrane_bits(bound)
        plan = TsaPlan(template=syn.template, fn=pl.fn(idx, ident), comment=pl.comment(node.name), out=obuf,
                       syn=syn, neu=neu, stat=pl.stat(node))
        work = syn.scratch(msize, neu.per_channel, pl.mask_bytes, tc)
        pl.scratch(work)
        pl.report(node, flash, pl.spike_bytes(out) + work, bits, bool(sat))
        return plan


# ---- C backend helpers
@dataclass
class ScanPhase:
    """Steps lo .. hi-1 of the neuron scan, with fixed behaviour: ``inp`` (the synaptic sum and
    the bias enter), ``fire`` (an output step), ``last`` (the last output step, where the
    threshold comparisons are strict)."""
    lo: int
    hi: int
    inp: bool
    fire: bool
    last: bool


def _c_phases(tc: int, ts: int) -> list[ScanPhase]:
    """Split the neuron scan t = 0 .. tc+ts-1 into loops with fixed behaviour."""
    out = []
    bounds = sorted({0, tc, ts, tc + ts - 1, tc + ts})
    for lo, hi in zip(bounds, bounds[1:]):
        if lo >= hi:
            continue
        out.append(ScanPhase(lo, hi, lo < tc, lo >= ts, lo == tc + ts - 1))
    return out


@dataclass
class NeuronConst:
    """A per-neuron integer constant as the fragment reads it (tsa.c.j2's ``const`` macro, in
    the loop variables m (channel), p (position in the channel), oy, ox): ``form`` "literal"
    (C literal ``literal``), "channel" (``sym[m]``), "classes" (a padded layer's map by border
    class: ``sym[(m * ny + rows[oy]) * nx + cols[ox]]``) or "map" (``sym[m * npos + p]``)."""
    form: str
    literal: str | None = None
    sym: str | None = None
    npos: int = 0
    ny: int = 0
    nx: int = 0
    rows: str | None = None
    cols: str | None = None


def _c_neuron_const(pl, values, frame, name: str, node, what: str, spatial: bool):
    """The smallest form of a per-neuron constant (``NeuronConst``) and its flash bytes: a
    literal, a per-channel array, a table per border class (``spatial``: rows and columns with
    equal values form classes), or a full map."""
    a = np.asarray(values).astype(np.int64)
    while a.ndim > len(frame) and a.shape[0] == 1:
        a = a[0]
    try:
        full = np.broadcast_to(a, frame)
    except ValueError:
        raise SwscError(f"{what} of shape {a.shape} does not broadcast to the output frame {frame}",
                        node=node.name, op=node.op) from None
    lo, hi = int(full.min()), int(full.max())
    if lo == hi:
        return NeuronConst("literal", literal=pl.c_int(lo)), 0
    chan = full.reshape(frame[0], -1)
    if np.all(chan == chan[:, :1]):
        sym, flash, _ = pl.array(name, chan[:, 0], f"{what} per channel, {node.name}")
        return NeuronConst("channel", sym=sym), flash
    if spatial and len(frame) == 3:
        _, ry, cy = np.unique(full.transpose(1, 0, 2).reshape(frame[1], -1), axis=0, return_index=True,
                              return_inverse=True)[:3]
        reduced = full[:, np.sort(ry), :]
        cy = np.searchsorted(np.sort(ry), ry[np.asarray(cy).reshape(-1)])
        _, rx, cx = np.unique(reduced.transpose(2, 0, 1).reshape(frame[2], -1), axis=0, return_index=True,
                              return_inverse=True)[:3]
        cx = np.searchsorted(np.sort(rx), rx[np.asarray(cx).reshape(-1)])
        table = reduced[:, :, np.sort(rx)]
        ny, nx = table.shape[1], table.shape[2]
        if np.array_equal(table[:, cy][:, :, cx], full):
            size = pl.ctype_bytes(lo, hi)
            if table.size * size + frame[1] + frame[2] < full.size * size:
                tsym, f1, _ = pl.array(name, table, f"{what} per (channel, row class, column class), {node.name}")
                ysym, f2, _ = pl.array(name + "_rows", cy, f"row class per output row, {node.name}")
                xsym, f3, _ = pl.array(name + "_cols", cx, f"column class per output column, {node.name}")
                return NeuronConst("classes", sym=tsym, ny=ny, nx=nx, rows=ysym, cols=xsym), f1 + f2 + f3
    sym, flash, _ = pl.array(name, full, f"{what} per neuron, {node.name}")
    return NeuronConst("map", sym=sym, npos=chan.shape[1]), flash


@dataclass
class NeuronPlan:
    """The TSA neurons of a layer as tsa.c.j2's scan macros read them (docs/integer.md):
    ``H = beta U + acc * one + bq (+ bit t of bd)`` in the input steps, fire against the
    thresholds ``num * rq / den`` (ceil; ``den_less1`` = den - 1) and the per-step limit
    table ``lim``, in membrane type ``mt`` (emitted values in ``et``), clamped to +-``sat``
    where it saturates; ``phases`` are the scan's loops; ``per_channel``: no constant varies
    by position."""
    beta: int
    ts: int
    one: str
    num: int
    den: int
    den_less1: int
    mt: str
    et: str
    bq: NeuronConst
    rq: NeuronConst
    bd: NeuronConst | None
    sat: str | None
    lim: str
    phases: list
    per_channel: bool


@dataclass
class TsaPlan:
    """A TSA layer's C step: ``template`` is its synapse's fragment, which reads the synapse's
    plan ``syn``, the neurons' ``neu``, the output buffer ``out`` and stats entry ``stat``."""
    template: str
    fn: str
    comment: str
    out: object
    syn: object
    neu: NeuronPlan
    stat: int
