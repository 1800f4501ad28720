"""``TsaLayer``: TSA neurons fed by a synapse, with a silent period ``ts`` (semantics section 3)."""
from __future__ import annotations

from .base import GEOM, Op, register, synapse_of


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

    # -- C backend
