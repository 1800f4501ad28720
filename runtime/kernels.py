"""Array kernels shared by the reference evaluator and the SWS runtime.

All take NCHW arrays whose leading axis is the batch (the SWS runtime folds its
``Tc`` frames into that axis so a layer's whole input window is one call).
Padding is always with zeros: callers pass zero-centred values (``q - z``) or spike
frames, where zero is the right padding value.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _windows(x: np.ndarray, kernel, strides, pads, dilations, pad_value=0.0) -> np.ndarray:
    """View of x as [N, C, H', W', kh, kw] windows (pads: [top, left, bottom, right])."""
    nd = len(kernel)
    if any(pads):
        width = [(0, 0), (0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)]
        x = np.pad(x, width, constant_values=pad_value)
    span = [dilations[i] * (kernel[i] - 1) + 1 for i in range(nd)]
    w = sliding_window_view(x, span, axis=tuple(range(2, 2 + nd)))
    sl = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides) \
        + tuple(slice(None, None, d) for d in dilations)
    return w[sl]


def geometry(attrs: dict, nd: int = 2):
    k = list(attrs["kernel"])
    return (k, list(attrs.get("strides") or [1] * nd), list(attrs.get("pads") or [0] * 2 * nd),
            list(attrs.get("dilations") or [1] * nd))


def conv2d(x: np.ndarray, w: np.ndarray, attrs: dict) -> np.ndarray:
    """Grouped 2-D convolution (cross-correlation, as ONNX Conv) without bias."""
    k, s, p, d = geometry(attrs)
    group = int(attrs.get("group", 1))
    n, c = x.shape[:2]
    m = w.shape[0]
    win = _windows(x, k, s, p, d)                       # N, C, H', W', kh, kw
    ho, wo = win.shape[2:4]
    cg, mg = c // group, m // group
    out = np.empty((n, m, ho, wo), dtype=np.result_type(x.dtype, w.dtype))
    if group == c and cg == 1 and mg == 1:              # depthwise: no GEMM needed
        out[:] = np.einsum("nchwij,cij->nchw", win, w[:, 0], optimize=True)
        return out
    for g in range(group):
        cols = win[:, g * cg:(g + 1) * cg].transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, -1)
        wg = w[g * mg:(g + 1) * mg].reshape(mg, -1)
        out[:, g * mg:(g + 1) * mg] = (cols @ wg.T).reshape(n, ho, wo, mg).transpose(0, 3, 1, 2)
    return out


def sum_pool(x: np.ndarray, attrs: dict) -> np.ndarray:
    k, s, p, d = geometry(attrs)
    return _windows(x, k, s, p, d).sum(axis=(-2, -1))


def pool_counts(in_hw, attrs: dict) -> np.ndarray:
    """Number of real (non-pad) taps in each output window, shape [H', W']."""
    ones = np.ones((1, 1) + tuple(in_hw))
    return sum_pool(ones, attrs)[0, 0]


def max_pool(x: np.ndarray, attrs: dict) -> np.ndarray:
    k, s, p, d = geometry(attrs)
    fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    return _windows(x, k, s, p, d, pad_value=fill).max(axis=(-2, -1))


def conv_tap_counts(in_shape, w_shape, attrs: dict) -> np.ndarray:
    """For each output position and input channel, how many weight taps hit real input.

    Used for fan-out counts and per-position bias maps: conv of an all-ones input.
    """
    ones = np.ones((1,) + tuple(in_shape[1:]))
    return conv2d(ones, np.ones(w_shape), attrs)[0]
