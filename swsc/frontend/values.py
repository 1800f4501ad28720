"""Values the matcher gives ONNX tensors (see match.py), and small helpers."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class Unsupported(Exception):
    pass


@dataclass
class QRef:
    ir: str


@dataclass
class TailQ:
    ir: str


@dataclass
class Tail:
    ir: str


@dataclass
class Head:
    """The float graph input after shape-only ops (Flatten, Reshape, Transpose, ...) and elementwise
    arithmetic with constants (normalization). The shape ops commute with the per-tensor
    QuantizeLinear that follows, so they run after it on the integers; the arithmetic runs in
    float32 before it (``FloatArith``), its constants carried back to the input's layout."""
    src: str
    steps: list = field(default_factory=list)     # (IR op, attrs, output shape, node name)
    arith: list = field(default_factory=list)     # (op, constant in the input's layout, reverse, node, output)


@dataclass
class WConst:
    data: np.ndarray
    scale: np.ndarray
    zp: np.ndarray
    axis: int | None
    name: str

    def real(self) -> np.ndarray:
        s, z = self.scale.astype(np.float64), self.zp.astype(np.float64)
        if self.axis is not None and s.ndim == 1:
            shp = [1] * self.data.ndim
            shp[self.axis] = -1
            s, z = s.reshape(shp), z.reshape(shp)
        return s * (self.data.astype(np.float64) - z)


@dataclass
class View:
    scale: float
    zp: int
    shape: tuple
    fname: str
    ir: str | None = None
    parents: list = field(default_factory=list)
    op: str = ""
    attrs: dict = field(default_factory=dict)
    node: str = ""
    direct: bool = False          # made by a DequantizeLinear (onnxruntime can fuse it)


@dataclass
class Lin:
    kind: str                     # conv | dense | pool | mean | add | concat
    node: str
    shape: tuple                  # current float shape
    x: list                       # views (and WConst operands for add)
    attrs: dict = field(default_factory=dict)
    w: np.ndarray | None = None
    wname: str = ""
    ws: np.ndarray | None = None  # effective real weight scale, scalar or [M]
    wz: np.ndarray | None = None
    bias: np.ndarray | None = None  # accumulator units [M]
    sx: float = 1.0
    lo: float = -np.inf           # real clamp
    hi: float = np.inf
    clamped: bool = False
    reduced: tuple = ()           # mean: reduced original axes
    dims: tuple = ()              # mean: original axis of each current axis
    float_path: bool = False      # onnxruntime computes this cluster in float (no QLinear fusion)
    plain: bool = False           # one Conv/Gemm with its own int32 (or no) bias: its float32 run can be mirrored
    affine: list | None = None    # a dequantized tensor times/plus constants (match_postops.py): the steps
    fused: WConst | None = None   # ... a lone DQ x DQ(const) -> Mul -> Q, which onnxruntime fuses to QLinearMul
    mirror: tuple | None = None   # (meta key, spec): how onnxruntime computes this cluster, for the reference


BAD = object()


def _scalar(a) -> np.ndarray:
    return np.asarray(a).reshape(-1)[0]


def _pads2d(attrs: dict, in_hw, k, s, d) -> list[int]:
    ap = attrs.get("auto_pad", "NOTSET")
    if ap in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0, 0, 0, 0]
        for i in range(2):
            out = -(-in_hw[i] // s[i])
            total = max(0, (out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in_hw[i])
            small = total // 2
            big = total - small
            pads[i], pads[i + 2] = (small, big) if ap == "SAME_UPPER" else (big, small)
        return pads
    if ap == "VALID":
        return [0, 0, 0, 0]
    return [int(p) for p in attrs.get("pads", [0, 0, 0, 0])]
