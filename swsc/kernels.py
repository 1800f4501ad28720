"""Array kernels shared by the reference evaluator and the SWS runtime.

All take NCHW arrays whose leading axis is the batch (the SWS runtime folds its
``Tc`` frames into that axis so a layer's whole input window is one call).
Padding is always with zeros: callers pass zero-centred values (``q - z``) or spike
frames, where zero is the right padding value.
"""
from __future__ import annotations

import hashlib

import numpy as np
import onnxruntime as ort
from numpy.lib.stride_tricks import sliding_window_view
from onnx import TensorProto, helper, numpy_helper

from swsc.ops.base import window_out

#: float32 represents every integer up to 2^24 exactly
FLOAT32_EXACT = 2.0 ** 24

#: float32 elementwise arithmetic of a float head (ONNX Add/Sub/Mul/Div in float32, as onnxruntime)
_ARITH = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}


def float_arith(x: np.ndarray, c: np.ndarray, op: str, reverse: bool = False) -> np.ndarray:
    a, b = np.asarray(x, np.float32), np.asarray(c, np.float32)
    return _ARITH[op](*((b, a) if reverse else (a, b))).astype(np.float32)


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


def windows(x: np.ndarray, attrs: dict) -> np.ndarray:
    """View of x [N, C, H, W] as its [N, C, H', W', kh, kw] windows, zero padded."""
    return _windows(x, *geometry(attrs))


def geometry(attrs: dict, nd: int = 2):
    k = list(attrs["kernel"])
    return (k, list(attrs.get("strides") or [1] * nd), list(attrs.get("pads") or [0] * 2 * nd),
            list(attrs.get("dilations") or [1] * nd))


_ORT_CONVS: dict = {}


def _ort_conv(x: np.ndarray, w: np.ndarray, attrs: dict, out: np.ndarray | None = None) -> np.ndarray:
    """float32 Conv through onnxruntime's MLAS kernels, one cached session per weight.

    Used for frames of spikes times integer weights: every partial sum is an integer
    below 2^24, so float32 is exact in any summation order (the tests check it).
    With ``out`` (a C-contiguous float32 array of the output's shape) onnxruntime writes
    there directly: no allocation and no copy of what is the runtime's largest array.
    Sessions run without onnxruntime's memory arena, which keeps each session's largest
    buffers for good (measured: 4 GB peak on 4-frame MobileNetV2 runs, one arena per conv).
    """
    k, s, p, d = geometry(attrs)
    # keyed by the weights' content, not their identity: every run() builds its interpreter's
    # integer weights anew, and a session per conv per run cost more than the convs on MobileNetV2
    digest = hashlib.blake2b(np.ascontiguousarray(w).tobytes(), digest_size=16).digest()
    key = (digest, w.shape, str(w.dtype), tuple(k), tuple(s), tuple(p), tuple(d), int(attrs.get("group", 1)))
    hit = _ORT_CONVS.get(key)
    if hit is None:
        node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=k, strides=s, pads=p, dilations=d,
                                group=int(attrs.get("group", 1)))
        graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                  initializer=[numpy_helper.from_array(np.ascontiguousarray(w), "w")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.log_severity_level = 3
        so.enable_cpu_mem_arena = False
        # basic, not all: the full level rewrites the Conv to the NCHWc layout, whose reorder
        # buffers are allocated (and page-faulted) on every call; measured 2x the wall time
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        if len(_ORT_CONVS) > 256:
            _ORT_CONVS.clear()
        hit = _ORT_CONVS[key] = (w, sess)
    if out is None:
        return hit[1].run(None, {"x": np.ascontiguousarray(x)})[0]
    binding = hit[1].io_binding()
    binding.bind_cpu_input("x", np.ascontiguousarray(x))
    binding.bind_output("y", "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
    hit[1].run_with_iobinding(binding)
    return out


def conv2d(x: np.ndarray, w: np.ndarray, attrs: dict, out: np.ndarray | None = None) -> np.ndarray:
    """Grouped 2-D convolution (cross-correlation, as ONNX Conv) without bias.

    float32 inputs go through onnxruntime's kernels (exact for the integer-valued
    spike GEMMs of the SWS runtime), into ``out`` if given; everything else through numpy.

    im2col on a channels-last copy (so the column matrix is built with contiguous
    copies) and one GEMM per group; depthwise convolutions skip the GEMM.
    """
    if x.dtype == np.float32 and w.dtype == np.float32:
        return _ort_conv(x, w, attrs, out)
    k, s, p, d = geometry(attrs)
    group = int(attrs.get("group", 1))
    n, c = x.shape[:2]
    m = w.shape[0]
    dtype = np.result_type(x.dtype, w.dtype)
    cg, mg = c // group, m // group
    if group == c and cg == 1 and mg == 1:              # depthwise: no GEMM needed
        win = _windows(x, k, s, p, d)
        return np.einsum("nchwij,cij->nchw", win, w[:, 0], optimize=True).astype(dtype, copy=False)
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # N, H, W, C
    if any(p):
        xl = np.pad(xl, [(0, 0), (p[0], p[2]), (p[1], p[3]), (0, 0)])
    span = [d[i] * (k[i] - 1) + 1 for i in range(2)]
    win = sliding_window_view(xl, span, axis=(1, 2))[:, ::s[0], ::s[1], :, ::d[0], ::d[1]]  # N,H',W',C,kh,kw
    ho, wo = win.shape[1:3]
    out = np.empty((n, ho, wo, m), dtype=dtype)
    for g in range(group):
        cols = win[:, :, :, g * cg:(g + 1) * cg].reshape(n * ho * wo, -1)
        wg = w[g * mg:(g + 1) * mg].reshape(mg, -1).astype(dtype, copy=False)
        out[..., g * mg:(g + 1) * mg] = (cols @ wg.T).reshape(n, ho, wo, mg)
    return out.transpose(0, 3, 1, 2)


def out_hw(in_hw, attrs: dict) -> tuple[int, int]:
    """Output height and width of a conv/pool window over an unpadded [H, W] input."""
    k, s, p, d = geometry(attrs)
    return tuple(window_out(in_hw[i], k[i], s[i], p[i], p[i + 2], d[i]) for i in range(2))


def _tap_slices(padded_hw, attrs: dict):
    """For each kernel tap, the (rows, cols) slices of a padded [.., H, W] array that line up
    with the output positions."""
    k, s, p, d = geometry(attrs)
    ho, wo = out_hw((padded_hw[0] - p[0] - p[2], padded_hw[1] - p[1] - p[3]), attrs)
    for i in range(k[0]):
        for j in range(k[1]):
            yield (slice(i * d[0], i * d[0] + s[0] * (ho - 1) + 1, s[0]),
                   slice(j * d[1], j * d[1] + s[1] * (wo - 1) + 1, s[1]))


def _tap_views(x: np.ndarray, attrs: dict, pad_value):
    """One strided view per kernel tap, each shaped like the output: pooling without window copies."""
    _, _, p, _ = geometry(attrs)
    if any(p):
        x = np.pad(x, [(0, 0), (0, 0), (p[0], p[2]), (p[1], p[3])], constant_values=pad_value)
    for rows, cols in _tap_slices(x.shape[2:], attrs):
        yield x[:, :, rows, cols]


def window_hits(in_hw, attrs: dict) -> np.ndarray:
    """How many kernel windows cover each input position, shape [H, W]: the fan-out of a
    conv/pool input to the output positions."""
    _, _, p, _ = geometry(attrs)
    hits = np.zeros((in_hw[0] + p[0] + p[2], in_hw[1] + p[1] + p[3]), dtype=np.int64)
    for rows, cols in _tap_slices(hits.shape, attrs):
        hits[rows, cols] += 1
    return hits[p[0]:p[0] + in_hw[0], p[1]:p[1] + in_hw[1]]


def sum_pool(x: np.ndarray, attrs: dict) -> np.ndarray:
    taps = _tap_views(x, attrs, 0)
    out = next(taps).copy()
    for v in taps:
        out += v
    return out


def pool_counts(in_hw, attrs: dict) -> np.ndarray:
    """Number of real (non-pad) taps in each output window, shape [H', W']."""
    ones = np.ones((1, 1) + tuple(in_hw))
    return sum_pool(ones, attrs)[0, 0]


def max_pool(x: np.ndarray, attrs: dict) -> np.ndarray:
    fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    taps = _tap_views(x, attrs, fill)
    out = next(taps).copy()
    for v in taps:
        np.maximum(out, v, out=out)
    return out


# ---------------------------------------------------------------- SWS codes
def encode_exact(code: np.ndarray, tc: int, beta: float, theta: float) -> np.ndarray:
    """Greedy MSB-first SWS code of code/theta: binary digits for beta = 2, balanced
    digits otherwise. Exact for every integer level the window can code."""
    r = np.rint(code / theta)
    frames = np.zeros((tc,) + code.shape, dtype=np.int8)
    for k in range(tc):
        wk = beta ** (tc - 1 - k)
        if beta == 2:
            d = (r >= wk).astype(np.int8)
        else:
            d = np.clip(np.floor(r / wk + 0.5), -1, 1).astype(np.int8)
        frames[k] = d
        r = r - d.astype(np.float64) * wk
    return frames


def decode(frames: np.ndarray, beta: float) -> np.ndarray:
    """The value sum_k beta^(Tc-1-k) s(k) of spike frames [Tc, ...]."""
    tc = frames.shape[0]
    weights = np.array([beta ** (tc - 1 - k) for k in range(tc)])
    return np.tensordot(weights, frames.astype(np.float64), axes=1)


def int_code(A: np.ndarray, theta: float) -> np.ndarray:
    """The integer decoder (docs/integer.md): A, or round(theta A) with theta in Q16."""
    A = np.rint(A).astype(np.int64)
    return A if theta == 1.0 else (A * int(round(theta * 65536)) + 2**15) >> 16
