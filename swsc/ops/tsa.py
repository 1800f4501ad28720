"""``TsaLayer``: TSA neurons fed by a synapse, with a silent period ``ts`` (semantics section 3)."""
from __future__ import annotations

import math

import numpy as np

from swsc import kernels, loops
from swsc.errors import UnsupportedOpError

from .base import GEOM, Op, register, synapse_of
from .base import inputs_of


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

    # -- reference (ANN)

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
