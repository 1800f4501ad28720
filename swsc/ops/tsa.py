"""``TsaLayer``: TSA neurons fed by a synapse, with a silent period ``ts`` (semantics section 3)."""
from __future__ import annotations

import math

import numpy as np

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

    # -- C backend
