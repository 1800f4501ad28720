"""Max pooling: ``MaxPool`` on integer tensors and ``SpikeMaxPool`` on spike trains."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from swsc import kernels, loops
from swsc.errors import UnsupportedOpError

from .base import GEOM, Op, one_theta, pool_shape, register
from .cgeometry import CWindow, c_window


@register
class MaxPool(Op):
    name = "MaxPool"
    inputs = ("x",)
    attrs = {**GEOM}
    doc = "max pool on an integer tensor"

    shape = staticmethod(pool_shape)

    # -- reference (ANN)
    def reference(self, graph, node, env):
        return kernels.max_pool(env[node.inputs[0]], node.attrs)

    # -- passes
    def rescale(self, graph, node, coding):
        one_theta(graph, node)     # the running max passes its input frames on as they are
        return False

    def lower_sws(self, graph, node, options):
        """-> ``SpikeMaxPool``: the exact running max of spike trains (semantics section 5)."""
        node.op = SpikeMaxPool.name
        return True

    # -- numpy runtime
    def run(self, rt, node, env, stats):
        return kernels.max_pool(env[node.inputs[0]], node.attrs)


@register
class SpikeMaxPool(Op):
    name = "SpikeMaxPool"
    inputs = ("x",)
    attrs = {**GEOM}
    doc = "exact running-max pooling of spike trains"
    spike_inputs = True
    spike_output = True

    shape = staticmethod(pool_shape)

    # -- numpy runtime
    def run(self, rt, node, env, stats):
        return loops.max_pool_spikes(env[node.inputs[0]], node.attrs, rt.g.coding.beta)

    # -- C backend
    def c_plan(self, pl, node, idx):
        """The exact running max (semantics section 5) over each window, frame by frame."""
        g = c_window(node)
        if g is None:
            raise UnsupportedOpError([(node.name, node.op, "only 2-D pooling")])
        C, H, W = pl.frame(node.inputs[0])
        _, OH, OW = pl.frame(node.outputs[0])
        rows = [[0 <= oy * g.SY - g.PT + ky * g.DY < H for ky in range(g.KH)] for oy in range(OH)]
        cols = [[0 <= ox * g.SX - g.PL + kx * g.DX < W for kx in range(g.KW)] for ox in range(OW)]
        if not all(any(r) for r in rows) or not all(any(c) for c in cols):
            raise UnsupportedOpError([(node.name, node.op, "a pooling window entirely in the padding")])
        full = all(all(r) for r in rows) and all(all(c) for c in cols)
        pt, psize = pl.wide(pl.beta * pl.code_sum + 1, "a max-pool partial value", node)
        inp = pl.spike_in(node.inputs[0], idx)
        out = pl.new_buffer(node.outputs[0], idx)
        ident = pl.ident(node)
        window = g.KH * g.KW
        work = window * (psize + 2 * pl.mask_bytes) + 2 * psize
        pl.scratch(work)
        pl.report(node, 0, pl.spike_bytes(node.outputs[0]) + work)
        return MaxPoolPlan(fn=pl.fn(idx, ident), comment=pl.comment(node.name), inp=inp, out=out, geo=g,
                           C=C, H=H, W=W, OH=OH, OW=OW, pt=pt, window=window, nv=window if full else None)


# ---- C backend helpers
@dataclass
class MaxPoolPlan:
    """The max pool's C step (maxpool.c.j2): ``C`` planes H x W to OH x OW through window
    ``geo`` (``window`` = KH * KW taps); partial values in type ``pt``; ``nv`` = the number of
    taps where every window lies inside the input (None: counted per window)."""
    template: ClassVar[str] = "ops/maxpool.c.j2"
    fn: str
    comment: str
    inp: object
    out: object
    geo: CWindow
    C: int
    H: int
    W: int
    OH: int
    OW: int
    pt: str
    window: int
    nv: int | None
