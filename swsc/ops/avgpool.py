"""Average pooling: ``QAvgPool`` and the sum-pool synapse (``kind = "avgpool"``) of fused layers."""
from __future__ import annotations

import numpy as np

from swsc import kernels
from swsc.ir import scalar

from .base import GEOM, Op, Synapse, register, spatial_shape
from .base import affine_node, inputs_of


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
    def fold(self, graph, node):
        """W~ = s_i / (s_o n) per output position (n taps averaged; fewer at padded borders with
        count_include_pad=0) and b~ the matching map; one value each where they do not vary."""
        x, out = graph.tensors[inputs_of(node).x], graph.tensors[node.outputs[0]]
        valid = kernels.pool_counts(x.shape[2:], node.attrs)
        n = valid if not node.attrs.get("count_include_pad", 0) else \
            np.full_like(valid, float(np.prod(node.attrs["kernel"])))
        factor = scalar(x.quant.scale) / (scalar(out.quant.scale) * n)
        shift = x.quant.lo - scalar(x.quant.zero_point)
        b = (factor * valid * shift + scalar(out.quant.zero_point) - out.quant.lo)[None]
        if np.all(factor == factor.flat[0]):
            factor = np.array([factor.flat[0]])
        if np.all(b == b.flat[0]):
            b = np.array([b.flat[0]]).reshape(1, 1, 1)
        return affine_node(graph, node, AvgPoolSynapse.name, [inputs_of(node).x], factor, b)

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
    def int_weights(self, graph, node, W, b):
        """A plain window sum; its factor may vary by position (count_include_pad=0 at padded
        borders), and then so do bq and rq, as per-position constants."""
        return None, np.asarray(W, np.float64), int(np.prod(node.attrs["kernel"]))

    # -- numpy runtime

    # -- C backend
