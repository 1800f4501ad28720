"""The spiking runtime's sequential inner loops, compiled with numba: the TSA neuron scan
(semantics note section 3) and the running-max spike pooling (section 5).

Both are sequential over time steps with a few operations per step; in numpy each
operation is a full pass over the layer's arrays, which made them cost more than the
layer's convolution. numba fuses a neuron's steps into one loop, with the same IEEE
float64 operations in the same order as the numpy expressions they replaced (no
fast-math, so no reassociation or fused multiply-add): the results are bit-identical.

Neurons are laid out ``[N, F]`` (sample, neuron within a frame); constants that do not
vary over samples (bias, multiplier) are passed with a leading axis of 1. Compiled code
is cached beside this file; a cold first call costs a few seconds. To step through the
loops in a debugger, run with ``NUMBA_DISABLE_JIT=1`` (plain Python, very slow).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from swsc import kernels
from swsc.errors import SwscError

#: float-mode membranes closer than this (in units of R) to a threshold count as exact ties
TIE_TOLERANCE = 1e-9


def round_half_even(v: np.ndarray) -> np.ndarray:
    """rint, except that values within TIE_TOLERANCE of a half count as exact ties, so float
    noise in the (exact in theory) bias cannot decide a tie."""
    f = np.floor(v)
    frac = v - f
    tie = np.abs(frac - 0.5) <= TIE_TOLERANCE
    return np.where(tie, f + (f % 2 != 0), np.rint(v))


@njit(inline="always")
def _fire_steps(vn, en, fk, zt, m, b, beta, up, down, wk, hi_norm, clamp_hi, inp):
    """One output step of a sample's neurons: ``H = beta v (+ z m + b where inp)``, the
    firing decision, the reset and the emitted value. Called with ``clamp_hi`` and ``inp`` as
    constants, so each of the four loops is compiled without the other cases' work; the spike
    f in {-1, 0, 1} is a float selected by the compares and stored as int8 (int8 arithmetic on
    the compares made LLVM widen them to int64 lanes and pack: 33 instructions per four neurons
    where this takes 25), the same value the int8 had."""
    for j in range(vn.shape[0]):
        H = vn[j] * beta + zt[j] * m[j] + b[j] if inp else vn[j] * beta
        e = en[j]
        # the upper-clamp rule blocks a spike that would take the output past hi'
        pos = (H >= up) & ((beta * e + 1.0) * wk <= hi_norm) if clamp_hi else H >= up
        neg = (H <= down) & (e > 0)
        f = (1.0 if pos else 0.0) - (1.0 if neg else 0.0)
        fk[j] = np.int8(f)
        vn[j] = H - f
        en[j] = e * beta + f


@njit(cache=True, nogil=True)
def _scan_float(z, zmul, bias, fold_bias, start, ts, tc, beta, vth, hi_norm, clamp_hi, frames, E, v):
    n_samples, size = v.shape
    first = 1 if start > 0 else 0       # z[0] is the folded input of the first `start` steps
    for n in range(n_samples):
        vn, en = v[n], E[n]
        b = bias[n if bias.shape[0] > 1 else 0]
        m = zmul[n if zmul.shape[0] > 1 else 0]
        en[:] = 0.0
        if start > 0:
            z0, b0 = z[0, n], fold_bias[n if fold_bias.shape[0] > 1 else 0]
            for j in range(size):
                vn[j] = z0[j] * m[j] + b0[j]
        else:
            vn[:] = 0.0
        # the phases (silent, firing with input, firing after the input) are separate loops
        # so the per-neuron loop has no step-dependent branches
        for t in range(start, tc + ts):
            k = t - ts
            zt = z[t - start + first, n] if t < tc else z[0, n]     # no input after Tc
            if t < ts:
                if t < tc:
                    for j in range(size):
                        vn[j] = vn[j] * beta + zt[j] * m[j] + b[j]
                else:
                    for j in range(size):
                        vn[j] = vn[j] * beta
                continue
            # a tie (H on the threshold, up to float noise) fires, except at the last step:
            # there it stays, so a value n + 1/2 rounds half to even as onnxruntime's rint does
            edge = -TIE_TOLERANCE if k < tc - 1 else TIE_TOLERANCE
            up, down = vth + edge, -vth - edge
            wk = beta ** (tc - 1 - k)
            fk = frames[k, n]
            if t < tc and clamp_hi:
                _fire_steps(vn, en, fk, zt, m, b, beta, up, down, wk, hi_norm, True, True)
            elif t < tc:
                _fire_steps(vn, en, fk, zt, m, b, beta, up, down, wk, hi_norm, False, True)
            elif clamp_hi:
                _fire_steps(vn, en, fk, zt, m, b, beta, up, down, wk, hi_norm, True, False)
            else:
                _fire_steps(vn, en, fk, zt, m, b, beta, up, down, wk, hi_norm, False, False)


#: positions a fold sums at a time: their float64 sums stay in L1
FOLD_CHUNK = 1024


@njit(inline="always")
def _fold_into(f, m, weights, acc, o):
    """``o = sum_t weights[t] f[t, m]`` over the first j = len(weights) frames of ``f``
    [Tc, M, L], into flat ``o`` [L]: summed in float64 in ``acc`` (``FOLD_CHUNK`` long), a
    chunk at a time with the steps outside the positions, so the loops vectorize (one sum per
    position with the steps inside ran at 5 ns a position). Per position the same float64
    operations in the same order, so the same bits."""
    size = o.shape[0]
    ch = acc.shape[0]
    for i0 in range(0, size, ch):
        n = min(ch, size - i0)
        f0 = f[0, m, i0:i0 + n]
        for i in range(n):
            acc[i] = weights[0] * f0[i]
        for t in range(1, weights.shape[0]):
            ft = f[t, m, i0:i0 + n]
            for i in range(n):
                acc[i] += weights[t] * ft[i]
        oc = o[i0:i0 + n]
        for i in range(n):
            oc[i] = acc[i]


@njit(cache=True, nogil=True)
def _fold_frames(f, weights, out):
    tc, size = f.shape
    j = weights.shape[0]
    if j:
        _fold_into(f.reshape(tc, 1, size), 0, weights, np.empty(FOLD_CHUNK), out[0])
    for t in range(j, tc):
        o, ft = out[t - j + (1 if j else 0)], f[t]
        for i in range(size):
            o[i] = ft[i]


def fold_frames(frames: np.ndarray, weights, out: np.ndarray) -> np.ndarray:
    """A layer's GEMM operand from its int8 input frames ``[Tc, ...]``: with fold ``weights``
    (one per silent step, j = len(weights) > 0) ``out[0] = sum_t weights[t] frames[t]`` over the
    first j frames and ``out[1:]`` the other frames, else ``out = frames``; in out's dtype.

    One pass, where numpy's ``wt * frames`` makes a float64 temporary per silent step (measured
    on MobileNetV2: more time than the neuron scan's own steps). Integer weights on frames in
    {-1, 0, 1} give integer sums, exact in float32 or float64 in any order, so the result
    equals numpy's."""
    tc = frames.shape[0]
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    _fold_frames(np.ascontiguousarray(frames).reshape(tc, -1), w, out.reshape(out.shape[0], -1))
    return out


#: outputs a depthwise conv sums in one pass over its taps: several rows of a small plane, so
#: the loops are long, while the sums stay in L1
DW_RUN = 1024


def _dw_setup(in_hw, w, attrs):
    """What the depthwise kernels need besides the data: ``geo`` (stride and top/left padding),
    the zero-padded plane's shape ``[sh, sw, rows, cols]``, the taps in blocks of three along a
    kernel row (zero weights past the kernel's edge) ``wts`` [C, blocks, 3] float32, and where
    each tap's inputs for output (0, 0) lie in the flattened plane, ``offs`` [blocks, 3].

    Padded input (Y, X) is stored at ``[Y % sh, X % sw, Y // sh, X // sw]``: then the inputs a
    tap reads for consecutive outputs are adjacent and output rows are ``cols`` apart whatever
    the stride, so a pass over several output rows is one long loop (strided reads do not
    vectorize; short rows spend their time in loop overhead)."""
    (kh, kw), (sh, sw), pads, (dh, dw) = kernels.geometry(attrs)
    ho, wo = kernels.out_hw(in_hw, attrs)
    rows = -(-max(pads[0] + in_hw[0], (ho - 1) * sh + (kh - 1) * dh + 1) // sh)
    cols = -(-max(pads[1] + in_hw[1], (wo - 1) * sw + (kw - 1) * dw + 1) // sw)
    c = w.shape[0]
    wc = np.asarray(w, dtype=np.float32).reshape(c, kh, kw)
    bw = -(-kw // 3)
    wts = np.zeros((c, kh, bw, 3), dtype=np.float32)
    offs = np.zeros((kh, bw, 3), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            wts[:, i, j // 3, j % 3] = wc[:, i, j]
            offs[i, j // 3, j % 3] = (((i * dh) % sh * sw + (j * dw) % sw) * rows + (i * dh) // sh) * cols \
                + (j * dw) // sw
    geo = np.array([pads[0], pads[1]], dtype=np.int64)
    return geo, (sh, sw, rows, cols), wts.reshape(c, kh * bw, 3), offs.reshape(kh * bw, 3), (ho, wo)


@njit(inline="always")
def _dw_pad(xp, pt, pl, P):
    """Plane ``xp`` [H, W] into the interior of the padded plane ``P`` (``_dw_setup``); the
    column strides 1 and 2 as constants, so the copies vectorize."""
    sh, sw = P.shape[0], P.shape[1]
    height, width = xp.shape
    for y in range(height):
        xr = xp[y]
        Y = y + pt
        if sw == 1:
            row = P[Y % sh, 0, Y // sh, pl:pl + width]
            for k in range(width):
                row[k] = xr[k]
            continue
        for q in range(sw):
            # the input columns x with (x + pl) % sw == q, stored from column (x + pl) // sw on
            x0 = (q - pl) % sw
            if x0 >= width:
                continue
            count = (width - x0 + sw - 1) // sw
            row, xs = P[Y % sh, q, Y // sh, (x0 + pl) // sw:], xr[x0:]
            if sw == 2:
                for k in range(count):
                    row[k] = xs[2 * k]
            else:
                for k in range(count):
                    row[k] = xs[k * sw]


@njit(inline="always")
def _dw_taps(P, wts, offs, acc, o):
    """One channel's output plane ``o`` [ho, wo] from its padded plane ``P`` through its tap
    blocks (``_dw_setup``): runs of output rows at the plane's pitch (``DW_RUN`` outputs, the
    columns past wo dropped) summed in ``acc``, one pass per block of three taps. Sums start
    from +0.0 and every partial sum is an integer, so neither the order of the taps nor the zero
    taps change a bit. Element loops throughout: numba's slice assignment cost more than a
    7 x 7 plane's arithmetic."""
    ho, wo = o.shape
    cols = P.shape[3]
    flat = P.reshape(-1)
    per = max(1, DW_RUN // cols)
    for oy0 in range(0, ho, per):
        r = min(per, ho - oy0)
        length = (r - 1) * cols + wo
        a = acc[:length]
        for q in range(length):
            a[q] = 0.0
        for b in range(offs.shape[0]):
            w0, w1, w2 = wts[b, 0], wts[b, 1], wts[b, 2]
            d0, d1, d2 = offs[b, 0] + oy0 * cols, offs[b, 1] + oy0 * cols, offs[b, 2] + oy0 * cols
            s0, s1, s2 = flat[d0:d0 + length], flat[d1:d1 + length], flat[d2:d2 + length]
            for q in range(length):
                a[q] += w0 * s0[q] + w1 * s1[q] + w2 * s2[q]
        for k in range(r):
            orow, ak = o[oy0 + k], a[k * cols:k * cols + wo]
            for x in range(wo):
                orow[x] = ak[x]


@njit(inline="always")
def _dw_acc(P, wo):
    """The sums' work array for ``_dw_taps``."""
    cols = P.shape[3]
    return np.empty((max(1, DW_RUN // cols) - 1) * cols + max(wo, cols), dtype=np.float32)


@njit(cache=True, nogil=True)
def _depthwise(x, geo, pshape, wts, offs, out):
    n_images, channels = x.shape[:2]
    P = np.zeros(pshape, dtype=np.float32)
    acc = _dw_acc(P, out.shape[3])
    for n in range(n_images):
        for c in range(channels):
            _dw_pad(x[n, c], geo[0], geo[1], P)
            _dw_taps(P, wts[c], offs, acc, out[n, c])


@njit(cache=True, nogil=True)
def _depthwise_frames(f, fold, geo, pshape, wts, offs, out):
    tc, n_samples, channels, height, width = f.shape
    steps = out.shape[0]
    j = fold.shape[0]
    P = np.zeros(pshape, dtype=np.float32)
    acc = _dw_acc(P, out.shape[4])
    xp = np.empty((height, width), dtype=np.float32)
    xf = xp.reshape(-1)
    planes = f.reshape(tc, n_samples * channels, height * width)
    fold_acc = np.empty(FOLD_CHUNK)
    for s in range(steps):
        for n in range(n_samples):
            for c in range(channels):
                # the step's input plane: the silent steps' frames folded (as fold_frames), or a frame
                if j and s == 0:
                    _fold_into(planes, n * channels + c, fold, fold_acc, xf)
                else:
                    src = planes[s - 1 + j if j else s, n * channels + c]
                    for i in range(height * width):
                        xf[i] = src[i]
                _dw_pad(xp, geo[0], geo[1], P)
                _dw_taps(P, wts[c], offs, acc, out[s, n, c])


def depthwise_conv(x: np.ndarray, w: np.ndarray, attrs: dict, out: np.ndarray | None = None) -> np.ndarray:
    """A depthwise convolution (one input channel per output channel, ``w`` [C, 1, kh, kw]) of
    float32 [N, C, H, W] as shifted multiply-adds, zero padded, into ``out`` if given.

    For the SWS runtime's integer frames times integer weights, where every partial sum is an
    integer below 2^24: exact in float32 in any order, so equal to onnxruntime's Conv, which
    runs a grouped conv as one im2col and GEMM per channel (measured on MobileNetV2: the 17
    depthwise convs took as long as the 35 pointwise ones, for 3% of the MACs)."""
    n, c, h, wd = x.shape
    geo, pshape, wts, offs, (ho, wo) = _dw_setup((h, wd), w, attrs)
    if out is None:
        out = np.empty((n, c, ho, wo), dtype=np.float32)
    _depthwise(np.ascontiguousarray(x, dtype=np.float32), geo, pshape, wts, offs, out)
    return out


def depthwise_conv_frames(frames: np.ndarray, fold, w: np.ndarray, attrs: dict, out: np.ndarray) -> np.ndarray:
    """``depthwise_conv`` of the GEMM operand ``fold_frames`` would build from int8 spike frames
    ``[Tc, N, C, H, W]`` (``fold``: the silent steps' weights, or none), one plane at a time,
    into ``out`` ``[steps * N, C, ho, wo]``: the layer's folded operand is never stored (on
    MobileNetV2 the depthwise convs' inputs are half of every layer's inputs)."""
    tc, n = frames.shape[:2]
    geo, pshape, wts, offs, _ = _dw_setup(frames.shape[3:], w, attrs)
    fw = np.asarray(fold, dtype=np.float64).reshape(-1)
    steps = tc - len(fw) + (1 if len(fw) else 0)
    _depthwise_frames(np.ascontiguousarray(frames), fw, geo, pshape, wts, offs,
                      out.reshape((steps, n) + out.shape[1:]))
    return out


def _per_neuron(a, shape, dtype=np.float64) -> np.ndarray:
    """``a`` broadcast to ``shape`` = (N, ...) as a 2-D [1 or N, F] array, without copying
    N times what does not vary over samples."""
    b = np.broadcast_to(np.asarray(a, dtype=dtype), shape)
    if b.ndim and b.strides[0] == 0:
        b = b[:1]
    # contiguous and writable, so numba compiles one specialization, not one per layout
    return np.require(b, requirements=["C", "W"]).reshape(b.shape[0], -1)


def tsa_scan(z: np.ndarray, bias, *, ts: int, tc: int, beta: float, vth: float, hi_norm: float):
    """Run TSA neurons (semantics section 3) on synaptic input ``z[Tc, ...]`` and bias.

    Returns (frames int8 [Tc, ...], emitted value E, final membrane u).
    """
    R = float(beta) ** ts
    frames, E, v = tsa_scan_units(z / R, np.asarray(bias) / R, ts=ts, tc=tc, beta=beta, vth=vth, hi_norm=hi_norm)
    return frames, E, v * R


def tsa_scan_units(z: np.ndarray, bias, *, ts: int, tc: int, beta: float, vth: float, hi_norm: float,
                   zmul=None, start: int = 0, fold_bias=None, E=None, v=None):
    """tsa_scan with the membrane counted in units of the reset R = beta^Ts (inputs already
    divided by R): the threshold is ``vth`` and a spike subtracts exactly 1.

    The synaptic input of a step is ``z[i] * zmul`` (``zmul`` broadcasts against one step,
    default 1), so a float32 GEMM result and its real per-channel multiplier need no
    float64 product array. With ``start > 0`` the caller has folded the first ``start``
    (silent) steps into one by linearity: ``z[0]`` is their beta-weighted input and
    ``fold_bias`` their bias, the membrane starts at ``z[0] * zmul + fold_bias``, and
    ``z[1 + t - start]`` is the input of step t.

    ``E`` and ``v`` may be given as C-contiguous float64 arrays shaped like one step (reused
    work arrays); they are overwritten.

    Returns (frames int8 [Tc, ...], E float64, v float64).
    """
    z = np.asarray(z)
    if z.ndim < 2:
        raise SwscError("the TSA scan needs inputs shaped [steps, neurons, ...]")
    shape = tuple(z.shape[1:])
    beta = float(beta)
    S = sum(beta ** (tc - k) for k in range(1, tc + 1))
    n = shape[0]
    size = int(np.prod(shape[1:], dtype=np.int64))
    frames = np.zeros((tc, n, size), dtype=np.int8)
    E = np.empty((n, size)) if E is None else E.reshape(n, size)
    v = np.empty((n, size)) if v is None else v.reshape(n, size)
    if z.dtype not in (np.float32, np.float64):
        z = z.astype(np.float64)
    _scan_float(np.ascontiguousarray(z).reshape(z.shape[0], n, size),
                _per_neuron(1.0 if zmul is None else zmul, shape), _per_neuron(bias, shape),
                _per_neuron(0.0 if fold_bias is None else fold_bias, shape), int(start), int(ts), int(tc), beta,
                float(vth), float(hi_norm), bool(hi_norm < S), frames, E, v)
    return frames.reshape((tc,) + shape), E.reshape(shape), v.reshape(shape)


#: rows a byte counter takes before it is added to the int64 totals (it holds up to 255)
_COUNT_ROWS = 255


@njit(cache=True, nogil=True)
def _nonzero_counts(frames):
    rows, size = frames.shape
    counts = np.zeros(size, dtype=np.int64)
    # byte counters over up to 255 rows at a time: int8 compares and byte adds vectorize 32
    # to a register, where adding each compare into int64 ran at memory-copy speed / 4
    part = np.empty(size, dtype=np.uint8)
    for r0 in range(0, rows, _COUNT_ROWS):
        part[:] = 0
        for i in range(r0, min(r0 + _COUNT_ROWS, rows)):
            fi = frames[i]
            for j in range(size):
                part[j] += np.uint8(fi[j] != 0)
        for j in range(size):
            counts[j] += part[j]
    return counts


#: spikes summed in int32 before they are added to the totals
_COUNT_CHUNK = 1 << 20


@njit(cache=True, nogil=True)
def _spike_counts(flat):
    pos = neg = 0
    # the sum s = pos - neg and the count a = pos + neg (the low bit of +-1 is set) in int32
    # over a chunk: eight lanes a register, where two int64 sums of compares ran at half speed
    for i0 in range(0, flat.size, _COUNT_CHUNK):
        s = a = np.int32(0)
        for i in range(i0, min(i0 + _COUNT_CHUNK, flat.size)):
            x = np.int32(flat[i])
            s += x
            a += x & 1
        pos += (a + s) // 2
        neg += (a - s) // 2
    return pos, neg


def spike_counts(frames: np.ndarray) -> tuple[int, int]:
    """(+1 spikes, -1 spikes) in a spike tensor (entries in {-1, 0, 1})."""
    pos, neg = _spike_counts(np.ascontiguousarray(frames).reshape(-1))
    return int(pos), int(neg)


def nonzero_counts(frames: np.ndarray) -> np.ndarray:
    """Spikes per position of a ``[Tc, N, ...]`` spike tensor, summed over steps and samples."""
    counts = _nonzero_counts(np.ascontiguousarray(frames).reshape(frames.shape[0] * frames.shape[1], -1))
    return counts.reshape(frames.shape[2:])


@njit(cache=True, nogil=True)
def _spike_max_pool(frames, kh, kw, sh, sw, pt, pl, dh, dw, beta, out):
    tc, n_samples, channels, height, width = frames.shape
    ho, wo = out.shape[3], out.shape[4]
    # P with a border of -inf where the window reaches into padding: padding never wins
    P = np.empty((pt + height + kh * dh, pl + width + kw * dw))
    M_prev = np.empty((ho, wo))
    for n in range(n_samples):
        for c in range(channels):
            P[:, :] = -np.inf
            P[pt:pt + height, pl:pl + width] = 0.0
            M_prev[:, :] = 0.0
            for k in range(tc):
                for y in range(height):
                    for x in range(width):
                        P[pt + y, pl + x] = beta * P[pt + y, pl + x] + frames[k, n, c, y, x]
                for oy in range(ho):
                    for ox in range(wo):
                        M = P[oy * sh, ox * sw]
                        for i in range(kh):
                            for j in range(kw):
                                M = max(M, P[oy * sh + i * dh, ox * sw + j * dw])
                        # round() is half-even like rint, and much faster than np.rint here
                        out[k, n, c, oy, ox] = np.int8(round(M - beta * M_prev[oy, ox]))
                        M_prev[oy, ox] = M


def max_pool_spikes(frames: np.ndarray, attrs: dict, beta: float) -> np.ndarray:
    """Exact running max (semantics section 5) of spike frames ``[Tc, N, C, H, W]``:
    P(k) = beta P(k-1) + s(k) per input, M(k) = max of P(k) over the window,
    o(k) = M(k) - beta M(k-1)."""
    (kh, kw), (sh, sw), pads, (dh, dw) = kernels.geometry(attrs)
    tc, n, c, h, w = frames.shape
    ho, wo = kernels.out_hw((h, w), attrs)
    out = np.empty((tc, n, c, ho, wo), dtype=np.int8)
    _spike_max_pool(np.ascontiguousarray(frames, dtype=np.int8), kh, kw, sh, sw, pads[0], pads[1], dh, dw,
                    float(beta), out)
    return out


@njit(cache=True, nogil=True)
def _scan_int(acc, acc_mul, bq, bd, rq, ts, tc, beta, num, den, hi, sat, frames, E, U):
    n_samples, size = U.shape
    peak = 0
    for n in range(n_samples):
        un, en = U[n], E[n]
        b = bq[n if bq.shape[0] > 1 else 0]
        d = bd[n if bd.shape[0] > 1 else 0]
        r = rq[0]
        un[:] = 0
        en[:] = 0
        for t in range(tc + ts):
            k = t - ts
            last = k == tc - 1      # strict at the last step: ties round half to even
            wk = beta ** (tc - 1 - k) if k >= 0 else 0
            for j in range(size):
                H = beta * un[j]
                if t < tc:
                    H += acc[t, n, j] * acc_mul + b[j] + ((d[j] >> t) & 1)
                u = H
                if t >= ts:
                    # den*H >= num*r is H >= ceil(num*r/den); den*H > num*r is H >= floor(num*r/den) + 1
                    thr = num * r[j] // den + 1 if last else (num * r[j] + den - 1) // den
                    e = en[j]
                    pos = H >= thr and (beta * e + 1) * wk <= hi
                    neg = H <= -thr and e > 0
                    f = int(pos) - int(neg)
                    frames[k, n, j] = f
                    u = H - f * r[j]
                    en[j] = beta * e + f
                peak = max(peak, abs(H), abs(u))
                if sat > 0:     # saturation changes no spike (lower_to_integer.saturation_level)
                    u = min(max(u, -sat), sat)
                un[j] = u
    return peak


def tsa_scan_int(acc, bq, rq, *, bd=0, acc_mul, ts, tc, beta, vth, hi, sat, bound):
    """The integer TSA neuron of docs/integer.md on exact synaptic sums ``acc[Tc, N, ...]``;
    ``bq``, ``rq`` and the bias dither ``bd`` (bit t adds 1 at input step t) broadcast
    against one step; ``sat`` > 0 clamps the membrane ``U`` to ``[-sat, sat]`` after every step. Raises if a membrane passes ``bound`` (what lower_to_integer's
    ``membrane_bound`` proved), which would be a swsc bug."""
    num, den = vth
    shape = tuple(acc.shape[1:])
    n = shape[0]
    size = int(np.prod(shape[1:], dtype=np.int64))
    frames = np.zeros((tc, n, size), dtype=np.int8)
    E, U = np.empty((n, size), dtype=np.int64), np.empty((n, size), dtype=np.int64)
    rq2 = _per_neuron(rq, shape, np.int64)
    if rq2.shape[0] > 1:
        raise SwscError("the integer reset must not vary over samples")
    peak = _scan_int(np.ascontiguousarray(acc, dtype=np.int64).reshape(tc, n, size), int(acc_mul),
                     _per_neuron(bq, shape, np.int64), _per_neuron(bd, shape, np.int64), rq2, int(ts), int(tc),
                     int(beta), int(num), int(den), int(hi), int(sat), frames, E, U)
    if max(int(peak), num * int(np.max(rq)) + den) > bound:
        raise SwscError(f"integer membrane reached {max(int(peak), num * int(np.max(rq)) + den)}, beyond the proven "
                        f"bound {bound}", hint="this is a swsc bug in lower-to-integer; please report it")
    return frames.reshape((tc,) + shape), E.reshape(shape), U.reshape(shape)
