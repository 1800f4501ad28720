"""The op registry: one module per op (``swsc/ops/<op>.py``), see ``base.py`` for the hooks.

Three families share one registry:

* canonical quantized ops, produced by the front-end (``Quantize``, ``QConv``, ...);
  every quantized tensor is an integer tensor with ``Quant`` parameters;
* ``Affine``, the integer-domain layer of ``fold-zero-points`` (paper eq. 15-17);
* SWS ops (``SwsEncode``, ``TsaLayer``, ``SpikeMaxPool``, ``SpikeDelay``, ``SwsDecode``);

plus structural ops (``Reshape``, ``Transpose``, ``Concat``) that act on integer
tensors and on spike frames alike, and float ops (``FloatArith`` before the input
quantizer, ``Softmax`` after the decoder). The meaning of every op is written in
docs/ir.md and in ``../shared/design/semantics.md``.
"""
from __future__ import annotations

from swsc.errors import IRVerifyError

# the op modules register themselves; this list is the table of contents
from . import (add, affine, avgpool, concat, conv, delay, dense, dequantize, float_arith,  # noqa: F401
               maxpool, quantize, reshape, slicing, softmax, transpose, tsa)
from .base import (DOMAIN, GEOM, OPS, SYNAPSES, Geometry, Inputs, Op, Synapse, broadcast,  # noqa: F401
                   inputs_of, op_of, prod, register, spatial_shape, synapse_of, window_out)



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
