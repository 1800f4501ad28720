"""The input quantizer: ``Quantize`` (canonical graph) and ``SwsEncode`` (its spiking form)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from swsc.errors import SwscError

from .base import Op, register
from .base import inputs_of


@register
class Quantize(Op):
    name = "Quantize"
    inputs = ("x",)
    attrs = {}
    doc = "float input -> integer tensor: clamp(rint(x/scale)+zp, lo, hi)"

    # -- reference (ANN)

    # -- passes

    # -- numpy runtime

    # -- C backend

@register
class SwsEncode(Op):
    name = "SwsEncode"
    inputs = ("x", "lut?")
    attrs = {"encoder": True, "ts": True, "tc": True, "beta": True}
    doc = "quantize the float input and emit its SWS code (exact or tsa encoder)"
    spike_output = True

    # -- reference (ANN)

    # -- passes

    # -- numpy runtime

    # -- C backend
    def c_plan(self, pl, node, idx):
        """The encoder: a lookup table of spike trains (+1 mask, -1 mask) per input code."""
        if inputs_of(node).lut is None:
            raise SwscError("the encoder has no lookup table (run lower-to-integer)", node=node.name, op=node.op)
        tc = pl.tc
        out = node.outputs[0]
        q = pl.t(out).quant
        lut = pl.const(inputs_of(node).lut)
        levels = q.hi - q.lo + 1
        if lut.shape != (levels, tc):
            raise SwscError(f"encoder table has shape {lut.shape}, expected {(levels, tc)}",
                            node=node.name, op=node.op)
        pl.set_input(node, out)
        buf = pl.new_buffer(out, idx)
        ident = pl.ident(node)
        weights = (1 << np.arange(tc, dtype=np.int64))
        masks = np.stack([((lut > 0) * weights).sum(axis=1), ((lut < 0) * weights).sum(axis=1)], axis=1)
        sym, flash, _ = pl.array(f"lut_{ident}", masks, f"encoder {node.name}: (+1 mask, -1 mask) per code P - lo",
                                 ctype=pl.mask_t)
        plan = EncodePlan(fn=pl.fn(idx, ident), comment=pl.comment(node.name), out=buf, n=pl.numel(out),
                          lo=q.lo, hi=q.hi, lut=sym, stat=pl.stat(node))
        pl.report(node, flash, pl.spike_bytes(out))
        return plan


# ---- C backend helpers
@dataclass
class EncodePlan:
    """The encoder's C step (quantize.c.j2): clamp each input code P to [lo, hi] and copy its
    two masks from table ``lut`` (row P - lo) into ``out``; ``stat`` is its stats entry."""
    template: ClassVar[str] = "ops/quantize.c.j2"
    fn: str
    comment: str
    out: object
    n: int
    lo: int
    hi: int
    lut: str
    stat: int
