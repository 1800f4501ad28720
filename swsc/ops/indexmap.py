"""``IndexMap``: a static gather of values, of integer tensors and spike frames alike.

Output element ``e`` of a sample (its flat C-order index past the batch axis) is input element
``index[e]`` of the same sample, or the constant code ``fill`` where ``index[e] = -1``. The
batch axis is never touched. Every pure data-movement ONNX op on a static shape is such a map
(Pad constant/reflect/edge, Resize nearest, DepthToSpace/SpaceToDepth, Tile,
Expand, and ConvTranspose's zero insertion); the front-end (swsc/frontend/match_index.py)
computes the map by running the ONNX op on a tensor of element indices.

It only moves values, so it commutes with (de)quantization and with SWS coding, adds no
latency and needs one spike amplitude on its input and output (``structural``): the output
train of an element is the input train of the element it selects. The input and output share
one ``Quant`` (range included), so both carry the same codes ``q - lo``.

The fill: ``fill`` is an integer ``Q`` on the tensor's grid (a Pad constant quantized onto
it; ConvTranspose's inserted zeros are the real 0, i.e. the zero point), inside ``[lo, hi]``.
Integer tensors of the runtimes carry codes, so a filled element holds ``fill - lo``. In
spike form it gets the constant train the exact encoder emits for that code,
``kernels.encode_exact(fill - lo)`` (``fill_train``), which decodes to
``rint((fill - lo) / theta)`` in units of the amplitude: exactly the code when ``theta = 1``
(8-bit codes at ``Tc = 8``, ``beta = 2``), and otherwise the codable value nearest to it, the
same rounding every train of that tensor has. Consumers only see a train's decoded value
(TSA layers weigh it linearly, SpikeMaxPool compares running prefixes of any ternary train),
so a filled element is indistinguishable from an input element holding that code.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from swsc import kernels
from swsc.errors import IRVerifyError
from swsc.ir import INT_RANGES, Quant

from .base import Op, prod, register


@register
class IndexMap(Op):
    name = "IndexMap"
    inputs = ("x",)
    attrs = {"index": True, "fill": False}
    doc = "static gather: output element e (per sample) = input element index[e], or the code fill where -1"
    structural = True

    def shape(self, graph, node):
        x = graph.tensors[node.inputs[0]].shape
        out = graph.tensors[node.outputs[0]].shape
        idx = np.asarray(node.attrs["index"], np.int64)
        if len(out) < 1 or out[0] != x[0]:
            raise IRVerifyError(f"an index map keeps the batch axis: {list(x)} -> {list(out)}",
                                node=node.name, op=node.op)
        if idx.ndim != 1 or idx.size != prod(out[1:]):
            raise IRVerifyError(f"{idx.size} indices for an output of {prod(out[1:])} elements per sample",
                                node=node.name, op=node.op)
        if idx.size and (idx.min() < -1 or idx.max() >= prod(x[1:])):
            raise IRVerifyError(f"indices leave [-1, {prod(x[1:])})", node=node.name, op=node.op)
        if idx.size and idx.min() < 0 and node.attrs.get("fill") is None:
            raise IRVerifyError("index -1 without a fill code", node=node.name, op=node.op)
        return [tuple(out)]

    def verify(self, graph, node):
        xq = graph.tensors[node.inputs[0]].quant
        yq = graph.tensors[node.outputs[0]].quant
        if xq is not None and (yq is None or not xq.same_as(yq)):
            raise IRVerifyError("input and output must share one quantization (they carry the same codes)",
                                node=node.name, op=node.op)
        fill = node.attrs.get("fill")
        if fill is not None and xq is not None and not xq.lo <= int(fill) <= xq.hi:
            raise IRVerifyError(f"fill {fill} is outside the range [{xq.lo}, {xq.hi}]", node=node.name, op=node.op)

    # -- front-end
    def build(self, fe, lin, y, rq, dt, q):
        """A map whose fill is off its input's grid or range (a Pad constant that onnxruntime's
        quantize_static gives its own output quantization): as onnxruntime computes
        ``Q(map(DQ(x), v))`` elementwise, this is ``map(Q(DQ(x)), Q(v))``: the input requantized
        onto the output grid ``rq`` by a one-input QAdd (skipped where it already is there and
        holds the fill), then the map with the fill ``Q(v)``."""
        if lin.clamped:
            raise fe.Unsupported("a Relu/Clip after an index map with a fill")
        x = fe.check_view(lin.x[0])
        xq = fe.qof(x)
        lo, hi = INT_RANGES[dt]
        fill = int(np.clip(np.rint(np.float32(lin.attrs["fill"]) / np.float32(rq.scale)) + int(rq.zero_point), lo, hi))
        if not (fe.g.tensors[x].dtype == dt and np.float32(xq.scale) == np.float32(rq.scale)
                and int(xq.zero_point) == int(rq.zero_point) and xq.lo <= fill <= xq.hi):
            x = fe.emit("QAdd", f"{lin.node}_requant", [x], f"{y}__in", dt, fe.g.tensors[x].shape,
                        Quant(rq.scale, rq.zero_point, None, lo, hi))
        return fe.emit(self.name, lin.node, [x], y, dt, lin.shape, copy.deepcopy(fe.qof(x)),
                       {"index": lin.attrs["index"], "fill": fill})

    # -- reference (ANN)
    def reference(self, graph, node, env):
        """On the integer tensor: the fill is the code ``Q`` itself."""
        fill = node.attrs.get("fill")
        return _gather(env[node.inputs[0]], node, graph.tensors[node.outputs[0]].shape, 0,
                       None if fill is None else np.asarray(fill))

    # -- passes
    # (structural: rescale checks equal amplitudes, lower-to-sws keeps it; nothing op-specific)

    # -- numpy runtime
    def run(self, rt, node, env, stats):
        """Integer tensors of the runtime carry codes ``q - lo``; spike frames carry trains, and a
        filled element gets ``fill_train`` (the same frames in float and integer mode)."""
        x = node.inputs[0]
        lead = rt.lead(x)
        fill = node.attrs.get("fill")
        fv = None
        if fill is not None:
            q = rt.g.tensors[x].quant
            fv = fill_train(rt.g, q, fill) if lead else np.asarray(fill - q.lo)
        return _gather(env[x], node, rt.g.tensors[node.outputs[0]].shape, lead, fv)

    # -- C backend
    def c_plan(self, pl, node, idx):
        """A gather of spike trains through a const index table (one per channel plane where the
        map repeats per channel, ``blocked``; the narrowest C type holding it; counted in flash),
        with the fill's two masks as constants."""
        pl.require_spikes(node)
        index = np.asarray(node.attrs["index"], np.int64)
        blocks, stride, table = blocked(index, pl.frame(node.inputs[0]), pl.frame(node.outputs[0]))
        sym, flash, _ = pl.array(f"idx_{pl.ident(node)}", table, f"index map {node.name}: input train per "
                                 f"output train of a block (of {blocks}, {stride} trains apart), -1 = fill",
                                 share=True)
        pos = neg = 0
        fill = node.attrs.get("fill")
        if fill is not None:
            train = fill_train(pl.g, pl.t(node.inputs[0]).quant, fill)
            weights = 1 << np.arange(pl.tc, dtype=np.int64)
            pos, neg = int(((train > 0) * weights).sum()), int(((train < 0) * weights).sum())
        inp = pl.spike_in(node.inputs[0], idx)
        out = pl.new_buffer(node.outputs[0], idx)
        pl.report(node, flash, pl.spike_bytes(node.outputs[0]))
        return IndexMapPlan(fn=pl.fn(idx, pl.ident(node)), comment=pl.comment(node.name), inp=inp, out=out,
                            n=int(table.size), blocks=blocks, stride=stride, index=sym,
                            has_fill=bool(index.size and index.min() < 0),
                            fill_pos=pos, fill_neg=neg)


def fill_train(graph, quant, fill: int) -> np.ndarray:
    """The frames ``[Tc]`` of the constant train of code ``fill - lo`` (module docstring): the
    exact encoder's train, which the float and integer runtimes and the C all use."""
    c = graph.coding
    return kernels.encode_exact(np.asarray(float(int(fill) - quant.lo)), c.tc, c.beta, quant.theta or 1.0)


def blocked(index: np.ndarray, in_frame, out_frame) -> tuple[int, int, np.ndarray]:
    """(blocks, stride, table): ``index`` as ``blocks`` repeats of ``table``, block ``k`` reading
    the input ``k * stride`` trains further on (fills stay fills). A map that leaves the channel
    axis alone (Pad, Resize, ConvTranspose's zero insertion) is one table per plane, a
    channel-count times smaller in flash; any other map is one block."""
    if len(in_frame) >= 2 and len(out_frame) >= 2 and in_frame[0] == out_frame[0] > 1:
        k = int(out_frame[0])
        stride = prod(in_frame[1:])
        rows = index.reshape(k, -1)
        shifted = np.where(rows[:1] >= 0, rows[:1] + stride * np.arange(k)[:, None], -1)
        if np.array_equal(rows, shifted):
            return k, int(stride), np.ascontiguousarray(rows[0])
    return 1, 0, index


def _gather(x: np.ndarray, node, out_shape, lead: int, fill) -> np.ndarray:
    """``node``'s map on a runtime value with ``lead`` leading axes (any batch size); ``fill``:
    the value of a filled element (a scalar, or frames ``[Tc]`` when ``lead`` is 1)."""
    idx = np.asarray(node.attrs["index"], np.int64)
    flat = x.reshape(x.shape[:lead + 1] + (-1,))
    y = flat[..., np.maximum(idx, 0)]
    if fill is not None and idx.size and idx.min() < 0:
        f = np.asarray(fill, dtype=y.dtype).reshape(np.shape(fill) + (1,) * (y.ndim - np.ndim(fill)))
        y = np.where(idx < 0, f, y)
    return np.ascontiguousarray(y.reshape(x.shape[:lead + 1] + tuple(out_shape[1:])))


# ---- C backend helpers
@dataclass
class IndexMapPlan:
    """The index map's C step (indexmap.c.j2): in block ``k`` (of ``blocks``), output train
    ``k n + e`` is input train ``k stride + index[e]``, or the masks ``fill_pos``/``fill_neg``
    where ``index[e]`` is -1 (``has_fill``)."""
    template: ClassVar[str] = "ops/indexmap.c.j2"
    fn: str
    comment: str
    inp: object
    out: object
    n: int
    blocks: int
    stride: int
    index: str
    has_fill: bool
    fill_pos: int
    fill_neg: int
