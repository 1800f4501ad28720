"""``SpikeDelay``: shift a spike train by ``delay`` steps (inserted by schedule-latencies)."""
from __future__ import annotations

from .base import Op, register


@register
class SpikeDelay(Op):
    name = "SpikeDelay"
    inputs = ("x",)
    attrs = {"delay": True}
    doc = "shift a spike train by delay steps"
    spike_inputs = True
    spike_output = True
    pure_delay = True

    def latency(self, node):
        return node.attrs.get("delay", 0)

    # -- numpy runtime
    def run(self, rt, node, env, stats):
        """The same frames: the runtime stores a spike train from its own start step ``t0``,
        which the graph records, so a delay moves no data."""
        return env[node.inputs[0]]

    # -- C backend
    def c_plan(self, pl, node, idx):
        """No step: the C steps process whole windows, so a delay is the same bytes."""
        pl.alias(node.outputs[0], node.inputs[0], idx)
        return None
