"""``TsaLayer``: TSA neurons fed by a synapse, with a silent period ``ts`` (semantics section 3)."""
from __future__ import annotations

import numpy as np

from swsc import kernels, loops

from .base import GEOM, Op, register, synapse_of
from .base import inputs_of


@register
class TsaLayer(Op):
    name = "TsaLayer"
    inputs = ("*x", "w", "b", "wq?", "bq?", "rq?", "bd?")
    attrs = {"kind": True, "n_inputs": True, "ts": True, "tc": True, "beta": True, "vth": True, "hi_norm": True,
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
