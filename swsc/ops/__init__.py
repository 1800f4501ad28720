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

# the op modules register themselves; this list is the table of contents
from . import (  # noqa: F401
               add,
               affine,
               avgpool,
               concat,
               conv,
               delay,
               dense,
               dequantize,
               float_arith,
               indexmap,
               lut,
               maxpool,
               quantize,
               reshape,
               slicing,
               softmax,
               transpose,
               tsa,
)
from .base import (  # noqa: F401
               DOMAIN,
               GEOM,
               OPS,
               SYNAPSES,
               Geometry,
               Inputs,
               Op,
               Synapse,
               broadcast,
               inputs_of,
               op_of,
               pool_shape,
               prod,
               register,
               spatial_shape,
               synapse_of,
               window_out,
)
from .verify import check_node, verify  # noqa: F401
