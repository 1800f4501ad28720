"""Average pooling: ``QAvgPool`` and the sum-pool synapse (``kind = "avgpool"``) of fused layers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from swsc.errors import UnsupportedOpError

from .base import GEOM, Op, Synapse, register, spatial_shape
from .cgeometry import c_window


@register
class QAvgPool(Op):
    name = "QAvgPool"
    inputs = ("x",)
    attrs = {**GEOM, "count_include_pad": False}
    doc = "quantized average pool (global pooling is a kernel over the whole plane)"

    def shape(self, graph, node):
        x = graph.tensors[node.inputs[0]].shape
        return spatial_shape(node, x, x[1])

    # -- reference (ANN)

    # -- passes

    # -- numpy runtime

    # -- C backend


@register
class AvgPoolSynapse(Synapse):
    """The avgpool synapse of Affine/TsaLayer (``kind = "avgpool"``)."""
    name = "avgpool"

    def shape(self, graph, node):
        x = graph.tensors[node.inputs[0]].shape
        return spatial_shape(node, x, x[1])

    # -- reference (ANN)

    # -- passes

    # -- numpy runtime

    # -- C backend
    def c_plan(self, pl, node, ident, xs):
        """A sum-pool layer's loops (avgpool.c.j2): each window's spikes summed frame by frame."""
        geo = c_window(node)
        if geo is None:
            raise UnsupportedOpError([(node.name, node.op, "only 2-D pooling")])
        C, H, W = pl.frame(node.inputs[0])
        _, OH, OW = pl.frame(node.outputs[0])
        return AvgPoolPlan(inp=xs[0], M=C, H=H, W=W, OH=OH, OW=OW, geo=geo, npos=OH * OW,
                           chan_stride=H * W * 2, fan=geo.KH * geo.KW, flash=0)


# ---- C backend helpers
@dataclass
class AvgPoolPlan:
    """The sum-pool synapse's part of a TSA layer's C step (avgpool.c.j2): ``M`` planes H x W
    (``chan_stride`` mask words apart) to OH x OW (``npos`` positions) through window ``geo``."""
    template: ClassVar[str] = "ops/avgpool.c.j2"
    spatial: ClassVar[bool] = True     # count_include_pad=0: the constants vary at the borders
    inp: object
    M: int
    H: int
    W: int
    OH: int
    OW: int
    geo: object
    npos: int
    chan_stride: int
    fan: int
    flash: int

    def scratch(self, msize: int, per_channel: bool, mask_bytes: int, tc: int) -> int:
        """One neuron at a time: its membrane and state."""
        return 2 * msize + 4
