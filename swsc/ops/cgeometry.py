"""The 2-D window geometry of conv and pool nodes as the C backend's loops read it (the
C plans of ``conv.py``, ``avgpool.py`` and ``maxpool.py`` share it)."""
from __future__ import annotations

from dataclasses import dataclass

from .base import Geometry


@dataclass(frozen=True)
class CWindow:
    """A 2-D window's geometry as the C loops read it: kernel KH x KW, strides SY, SX, the
    top and left pads PT, PL, dilations DY, DX (input row iy = oy * SY - PT + ky * DY)."""
    KH: int
    KW: int
    SY: int
    SX: int
    PT: int
    PL: int
    DY: int
    DX: int


def c_window(node) -> CWindow | None:
    """The 2-D window of a pool or conv node (None where it is not 2-D)."""
    g = Geometry.of(node.attrs)
    if len(g.kernel) != 2:
        return None
    k, s, p, d = ([int(v) for v in t] for t in (g.kernel, g.strides, g.pads, g.dilations))
    return CWindow(k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1])
