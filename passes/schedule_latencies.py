"""schedule-latencies: silent periods, start steps, delays and T_inf.

Each TsaLayer gets its silent period ``ts`` (one value for all layers, a list in
topological order, or {layer name: ts}). Spike tensors get their start ``t0``
(semantics note section 6): the encoder's output starts at 0 (``exact``) or after its
own silent period (``tsa``); a TsaLayer's output starts ``ts`` after its input;
SpikeMaxPool and structural ops keep ``t0``. Where a node's inputs start at
different steps (a residual shortcut, the branches of a Concat) the earlier ones pass
through a ``SpikeDelay`` of the difference, so all inputs start together. The
inference latency is ``T_inf = Tc + max t0`` over the decoded outputs, i.e.
``Tc + Ts * L_TSA`` on a plain chain (eq. 6).

Requires: lower-to-sws. Options: ts (int | list | dict), ts_default.
Guarantees: ``graph.t_inf`` is set and graph.meta has ``l_tsa``; every node's spike inputs
start at one step; TsaLayer outputs start ``ts`` after their inputs.
"""
from __future__ import annotations

from swsc.errors import OptionError
from swsc.ir import Graph, Tensor
from swsc.ops import inputs_of, op_of
from swsc.options import CompileOptions
from swsc.passmanager import Pass


class ScheduleLatencies(Pass):
    name = "schedule-latencies"
    __doc__ = __doc__

    def __init__(self, options: CompileOptions):
        self.options = options

    def _silent_periods(self, layers) -> dict[str, int]:
        ts = self.options.ts
        names = [n.name for n in layers]
        if isinstance(ts, int):
            return {n: ts for n in names}
        if isinstance(ts, list):
            if len(ts) != len(names):
                raise OptionError(f"--ts lists {len(ts)} silent periods but the network has "
                                  f"{len(names)} TSA layers ({', '.join(names)})")
            return dict(zip(names, ts))
        unknown = set(ts) - set(names)
        if unknown:
            raise OptionError(f"--ts names unknown TSA layer(s) {sorted(unknown)}; layers are: "
                              f"{', '.join(names)}")
        return {n: ts.get(n, self.options.ts_default) for n in names}

    def run(self, graph: Graph) -> bool:
        before = _schedule(graph)
        graph.sort()
        layers = [n for n in graph.nodes if op_of(n).neuron_layer]
        ts_of = self._silent_periods(layers)
        delayed: dict[tuple[str, int], str] = {}
        for node in list(graph.nodes):
            # the encoder's float input has no spikes: its start was set by insert-encoder
            spikes = [i for i in node.inputs if graph.tensors[i].dtype == "spike"]
            if spikes:
                start = max(graph.tensors[i].t0 for i in spikes)
                for k, name in enumerate(node.inputs):
                    t = graph.tensors[name]
                    if t.dtype != "spike" or t.t0 == start:
                        continue
                    d = start - t.t0
                    if (name, d) not in delayed:
                        dn = graph.unique_name(f"{name}.delay{d}")
                        graph.add_tensor(Tensor(dn, "spike", t.shape, quant=t.quant, t0=start))
                        graph.add_node("SpikeDelay", graph.unique_name(f"{name}.delay{d}"), [name], [dn],
                                       {"delay": d}, index=graph.nodes.index(node))
                        delayed[(name, d)] = dn
                    node.inputs[k] = delayed[(name, d)]
                if node.name in ts_of:
                    node.attrs["ts"] = ts_of[node.name]
                shift = op_of(node).latency(node)
                for o in node.outputs:
                    out = graph.tensors[o]
                    if out.dtype == "spike":
                        out.t0 = start + shift
        # the decoders (spikes in, values out) end the spiking part
        ends = [graph.tensors[inputs_of(n).x].t0 for n in graph.nodes
                if op_of(n).spike_inputs and not op_of(n).spike_output]
        graph.t_inf = graph.coding.tc + max(ends, default=0)
        graph.meta["l_tsa"] = str(len(layers))
        return _schedule(graph) != before


def _schedule(graph: Graph) -> tuple:
    """What this pass sets: node order, silent periods, start steps, T_inf (to report a change)."""
    return ([(n.name, tuple(n.inputs), n.attrs.get("ts")) for n in graph.nodes],
            [(k, t.t0) for k, t in graph.tensors.items()], graph.t_inf, graph.meta.get("l_tsa"))
