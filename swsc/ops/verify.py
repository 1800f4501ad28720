"""The IR's invariants: ``verify(graph)`` checks a whole graph, ``check_node`` one node
against its op's definition (the registry's). The passes' manager runs it after every pass."""
from __future__ import annotations

from swsc.errors import IRVerifyError
from swsc.ir import DTYPES

from .base import op_of


def verify(graph) -> None:
    """Check every invariant of ``graph``; raise IRVerifyError naming the node at fault."""
    if graph.coding is not None and not (graph.coding.tc >= 1 and graph.coding.beta > 1):
        raise IRVerifyError(f"coding {graph.coding.text()} needs tc >= 1 and beta > 1")
    if graph.t_inf is not None and graph.t_inf < 0:
        raise IRVerifyError(f"t_inf = {graph.t_inf} is negative")
    seen_nodes: set[str] = set()
    produced: dict[str, str] = {}
    for n in graph.nodes:
        if n.name in seen_nodes:
            raise IRVerifyError("duplicate node name", node=n.name, op=n.op)
        seen_nodes.add(n.name)
        for o in n.outputs:
            if o in produced:
                raise IRVerifyError(f"tensor '{o}' is produced twice (also by '{produced[o]}')",
                                    node=n.name, op=n.op)
            if o in graph.inputs or (o in graph.tensors and graph.tensors[o].is_const):
                raise IRVerifyError(f"node overwrites input/constant '{o}'", node=n.name, op=n.op)
            produced[o] = n.name
    for name, t in graph.tensors.items():
        if name != t.name:
            raise IRVerifyError(f"tensor registered as '{name}' is named '{t.name}'")
        if t.dtype not in DTYPES:
            raise IRVerifyError(f"tensor '{name}' has unknown dtype '{t.dtype}'")
        if t.data is not None and tuple(t.data.shape) != t.shape:
            raise IRVerifyError(f"constant '{name}' data shape {t.data.shape} != declared {t.shape}")
        if t.dtype == "spike":
            if t.t0 is None or t.t0 < 0:
                raise IRVerifyError(f"spike tensor '{name}' needs its start step t0 >= 0, has {t.t0}")
            if graph.coding is None:
                raise IRVerifyError(f"spike tensor '{name}' but the graph has no coding (Tc, beta)")
        elif t.t0 is not None:
            raise IRVerifyError(f"non-spike tensor '{name}' has a start step t0")
        if t.quant is not None and t.quant.lo > t.quant.hi:
            raise IRVerifyError(f"tensor '{name}' has empty range [{t.quant.lo}, {t.quant.hi}]")
    for name in graph.inputs:
        if name not in graph.tensors:
            raise IRVerifyError(f"graph input '{name}' has no tensor")
    available = set(graph.inputs) | {k for k, t in graph.tensors.items() if t.is_const} | set(produced)
    for n in graph.nodes:
        for i in n.inputs:
            if i and i not in available:
                raise IRVerifyError(f"input '{i}' is produced by nothing (dangling)", node=n.name, op=n.op)
            if i and i not in graph.tensors:
                raise IRVerifyError(f"input '{i}' has no tensor entry", node=n.name, op=n.op)
        for o in n.outputs:
            if o not in graph.tensors:
                raise IRVerifyError(f"output '{o}' has no tensor entry", node=n.name, op=n.op)
    for o in graph.outputs:
        if o not in available:
            raise IRVerifyError(f"graph output '{o}' is produced by nothing")
    graph.topo_order()
    for n in graph.nodes:
        check_node(graph, n)


def check_node(graph, node) -> None:
    """Check one node against its op: arity, attributes, declared output shapes, spike rules."""
    d = op_of(node)
    fixed = [i for i in d.inputs if not i.startswith("*")]
    variadic = any(i.startswith("*") for i in d.inputs)
    required = [i for i in fixed if not i.endswith("?")]
    n = len(node.inputs)
    if n < len(required) + (1 if variadic else 0) or (not variadic and n > len(fixed)):
        raise IRVerifyError(f"takes inputs {d.inputs}, got {n}", node=node.name, op=node.op)
    for a, req in d.attrs.items():
        if req and a not in node.attrs:
            raise IRVerifyError(f"missing attribute '{a}'", node=node.name, op=node.op)
    unknown = set(node.attrs) - set(d.attrs)
    if unknown:
        raise IRVerifyError(f"unknown attribute(s) {sorted(unknown)}", node=node.name, op=node.op)
    if len(node.outputs) != 1:
        raise IRVerifyError(f"expects 1 output, has {len(node.outputs)}", node=node.name, op=node.op)
    want = d.shape(graph, node)
    for o, s in zip(node.outputs, want):
        got = graph.tensors[o].shape
        if tuple(got) != tuple(s):
            raise IRVerifyError(f"output '{o}' declared {list(got)} but op gives {list(s)}",
                                node=node.name, op=node.op)
    a = node.attrs
    if "ts" in a and not a["ts"] >= 0:
        raise IRVerifyError(f"silent period ts = {a['ts']} is negative", node=node.name, op=node.op)
    spike_in = [graph.tensors[i].dtype == "spike" for i in node.inputs
                if i and not graph.tensors[i].is_const]
    if d.spike_inputs and not all(spike_in):
        raise IRVerifyError("expects spike inputs", node=node.name, op=node.op)
    if d.spike_output or (d.structural and any(spike_in)):
        if not all(graph.tensors[o].dtype == "spike" for o in node.outputs):
            raise IRVerifyError("must produce spike tensors", node=node.name, op=node.op)
    # Start steps are only meaningful once schedule-latencies has run.
    if graph.t_inf is not None and any(spike_in) and (d.spike_inputs or d.structural):
        starts = {graph.tensors[i].t0 for i in node.inputs if i and not graph.tensors[i].is_const}
        if len(starts) > 1:
            raise IRVerifyError(f"inputs start at different steps {sorted(starts)}; a SpikeDelay is needed",
                                node=node.name, op=node.op)
        t0, = starts
        out = graph.tensors[node.outputs[0]]
        if out.dtype == "spike":
            shift = d.latency(node)
            if out.t0 != t0 + shift:
                raise IRVerifyError(f"output starts at step {out.t0}, not at its inputs' {t0} shifted by {shift}",
                                    node=node.name, op=node.op)
    d.verify(graph, node)
