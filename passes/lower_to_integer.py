"""lower-to-integer: integer-only neuron constants for firmware (docs/integer.md).

Per TSA layer the real multiplier ``M`` per output channel (``W = wq * M``) is moved
into the neuron: the membrane is kept in units of ``M / acc_mul``. With
``acc_mul = S 2^F`` (``S = sum_k beta^(Tc-k)``) the per-step bias ``b~ / S`` of eq. 19 is
an integer wherever the ANN's own bias is one in units of ``M`` (AvgPool, Add of equal
scales), so exact rounding ties of the ANN stay exact ties here. Conv and dense layers
use the model's integer weights ``w - z_w`` (``M = s_i s_w theta_i / (s_o theta_o)``);
an add layer gets fixed-point weights ``round(W_k L)`` (``M = 1 / L``; ``L = 2^G`` where
that makes them exact, else the scale near the widest that fits whose weights round best);
an avgpool layer sums its window (``M`` = its factor, per position where
count_include_pad=0 divides border windows by fewer taps; ``bq`` and ``rq`` are then
per-position maps). Then::

    bq + bd_t = the bias b acc_mul / M, dithered over the input steps (beta = 2)
    rq = round(beta^Ts acc_mul / M)
    fire +1 when H >= ceil(num rq / den) (H > num rq / den at the last step), -1 symmetrically

The constants are the most precise candidates whose membrane provably fits
``--membrane-bits`` (32 by default): exactly (``membrane_bound``), or saturating at
``saturation_level``, which changes no spike. Each layer records the bound, the
saturation level and the rounding error in output LSB per window (``int_bound``,
``int_sat``, ``int_error``). The encoder gets its lookup table of spike trains per input
code; the decoder, theta in Q16.

Requires: schedule-latencies; an integer beta.
Guarantees: every TsaLayer has ``wq`` (except avgpool: a window sum), ``bq``, ``rq``
(and ``bd`` where the bias is dithered) and the ``int_*`` attributes; every SwsEncode has
``lut``.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from swsc.errors import IRVerifyError, OptionError, UnsupportedOpError
from swsc.ir import Coding, Graph, Node
from swsc.ops import op_of
from swsc.passmanager import Pass

INT32_MAX = 2**31 - 1
MAX_ERROR_LSB = 0.1      # coarser constants than this would make the layer's integer outputs meaningless
#: what to tell a user whose layer's integer membrane bound does not fit
WINDOW_HINT = "the membrane bound grows with --tc, --ts and a layer's fan-in, so a shorter window may fit"


@dataclass
class NeuronConstants:
    """The integer constants of one TSA layer (docs/integer.md) and what they were proven to need."""
    wq: np.ndarray | None     # integer weights (None: a window sum)
    acc_mul: int              # the membrane unit is M / acc_mul
    bq: np.ndarray
    rq: np.ndarray
    bd: np.ndarray            # bias dither bits (all 0: none)
    num: int                  # vth = num / den
    den: int
    sat: int                  # saturation level (0: exact)
    bound: int                # membrane_bound of these constants
    membrane: str             # the narrowest C type holding the bound
    err: float                # rounding error, output LSB per window


class LowerToInteger(Pass):
    name = "lower-to-integer"
    __doc__ = __doc__

    def __init__(self, options=None):
        self.membrane_bits = int(getattr(options, "membrane_bits", 32))

    def run(self, graph: Graph) -> bool:
        if graph.coding is None:
            raise IRVerifyError("lower-to-integer needs a spiking graph (no coding: rescale has not run)")
        beta = graph.coding.beta
        if float(beta) != int(beta):
            raise OptionError(f"integer mode needs an integer --beta, got {beta}",
                              hint="use --beta 2 or 3, or the float numpy runtime")
        bad, window_bound, changed = [], False, not graph.integer
        for node in graph.nodes:
            try:
                # each op's ``lower_int``: the encoder's lookup table, the TSA layers' constants
                # (through ``constants`` below), the decoder's theta
                changed = op_of(node).lower_int(graph, node, self) or changed
            except UnsupportedOpError as e:
                bad += e.nodes
                window_bound = window_bound or e.hint == WINDOW_HINT
        if bad:
            raise UnsupportedOpError(bad, hint="integer mode (--target c, --mode int) cannot represent these "
                                     "layers; " + (WINDOW_HINT + "; " if window_bound else "")
                                     + "the float numpy runtime runs them (docs/integer.md)")
        graph.remove_unused_tensors()
        graph.integer = True
        return changed

    def constants(self, graph: Graph, node: Node, synapse, W, b, wq, M, fan) -> NeuronConstants:
        """The most precise constants of TSA layer ``node`` whose membrane provably fits
        ``--membrane-bits``: ``W``, ``b`` its weights and per-step bias, ``wq``, ``M``, ``fan``
        its synapse's integer weights (``synapse.int_weights``)."""
        coding, a = graph.coding, node.attrs
        beta, tc, ts = int(coding.beta), coding.tc, a["ts"]
        S = coding.int_code_sum
        vth = Fraction(a["vth"]).limit_denominator(64)
        num, den = vth.numerator, vth.denominator
        bits = self.membrane_bits
        limit = 2 ** (bits - 1) - 1
        # rounding error per unit M / acc_mul of the constants, in output LSB: the bias (0.5 per
        # step, S per window undithered; 0.5 per window dithered) and the reset (0.5 over the
        # largest output hi, relative to beta^Ts)
        unit_err = 0.5 * ((1 if dithers(beta, tc) else S) + a["hi_norm"] / beta ** ts)
        fixed, sweep = synapse.int_candidates(W, wq, M, fan, S=S, beta=beta, ts=ts, unit_err=unit_err)
        cands = sorted(fixed + (_acc_mul_sweep(*sweep, S, unit_err) if sweep else []), key=lambda c: c[4])
        plan = _choose(cands, b, beta, tc, ts, num, den, limit)
        if plan is None:
            more = " (--membrane-bits 64 gives more)" if bits < 64 else ""
            raise UnsupportedOpError([(node.name, node.op, f"no constants within {MAX_ERROR_LSB} LSB keep the "
                                       f"membrane bound inside {bits} bits{more}")], hint=WINDOW_HINT)
        wq, M, A, bq, rq, bd, sat, bound, err = plan
        return NeuronConstants(wq, A, bq, rq, bd, num, den, sat, bound,
                               "int32" if bound <= INT32_MAX else "int64", err)


# ---------------------------------------------------------------- the membrane bound
def saturation_level(*, z_max: int, rq_max: int, beta: int) -> int:
    """The level ``X`` at which the membrane ``U`` may saturate without changing any spike.

    With ``(beta - 1) X >= z_max + rq`` (``z_max`` bounds one step's input
    ``|acc * acc_mul + bq|``), a neuron with ``U >= X`` gets ``H = beta U + z >= X + rq``,
    above either threshold, so it fires ``+1`` or nothing (as its ``E`` allows) and keeps
    ``U = H - fire * rq >= X``: every later comparison is already decided. Symmetrically
    below ``-X``. Clamping ``U`` to ``[-X, X]`` after every step therefore gives the same
    spikes and the same ``E`` as the exact unbounded membrane (a saturated neuron's final
    residual is the only difference)."""
    return max(1, -(-(z_max + rq_max) // (beta - 1)))


def membrane_bound(*, fan: int, acc_mul: int, bq_max: int, rq_max: int, beta: int, tc: int, ts: int,
                   num: int, den: int, sat: int = 0) -> int:
    """The largest magnitude of any membrane-typed integer the neuron of docs/integer.md
    computes (``H``, ``beta * U``, ``U = H - fire * rq`` before saturation, and the
    thresholds from ``num * rq + den``): the one proof of no overflow, used by
    lower-to-integer to choose the constants, by the integer runtime to check every run
    against, and by the C backend to choose its types. ``fan`` bounds ``|acc|`` (the largest
    ``sum |wq|`` of a neuron).

    Without saturation (``sat = 0``): ``|H| <= B = beta^Ts S Z + S rq beta`` at every step
    (``S = sum_k beta^(Tc-k)``, ``Z`` = one step's input), ``|beta U| <= B + Z`` and
    ``|U| <= B + rq``. With saturation at ``sat = X`` (``saturation_level``): ``|U| <= X``
    after the clamp, so ``|H| <= beta X + Z`` and ``|H - fire * rq| <= beta X + Z + rq``."""
    z = fan * acc_mul + bq_max
    thresholds = num * rq_max + den
    if sat:
        return max(beta * sat + z + rq_max, thresholds)
    S = Coding(tc, beta).int_code_sum
    B = beta ** ts * S * z + S * rq_max * beta
    return max(B + z + rq_max, thresholds)


def membrane_bits(bound: int) -> int:
    """Bits of a two's-complement register that holds every value up to ``bound`` in magnitude."""
    return int(bound).bit_length() + 1


def _acc_mul_sweep(wq, M, fan, S, unit_err) -> list:
    """Candidates (wq, M, fan, acc_mul, error) for exact weights: the membrane unit is
    ``M / acc_mul``; ``error`` bounds the constants' rounding in output LSB per window.
    ``acc_mul = S 2^F`` keeps exact ties exact (module docstring); below ``F = 0`` it is any
    integer down to 1, for layers whose constants would not fit otherwise."""
    out = []
    m = float(M.max())
    A = S
    while A < 2**62 and m * unit_err / A > 2.0 ** -30:
        A *= 2
    while A >= S:
        out.append((wq, M, int(fan), A, m * unit_err / A))
        A //= 2
    A = S // 2
    while A >= 1:
        out.append((wq, M, int(fan), A, m * unit_err / A))
        A //= 2
    return out


def _fit(cand, b, beta, tc, ts, num, den, limit, sat: bool):
    """The integer constants of one candidate and their bound, or None where it exceeds ``limit``."""
    wq, M, fan, A, err = cand
    peak = float(np.max(np.abs(b) / M)) * A + beta ** ts * A / float(np.min(M)) + fan * A
    if peak > 2.0 ** 62:    # a quick float over-estimate keeps int64 below from overflowing
        return None
    bq, bd = _bias(b * A / M, beta, tc)
    rq = np.rint(float(beta ** ts) * A / M).astype(np.int64)
    rq = np.broadcast_to(rq, np.broadcast_shapes(rq.shape, (1,))).copy()
    if rq.min() < 1:
        return None
    bq_max, rq_max = int(np.abs(bq).max()) + int(bd.max() > 0), int(rq.max())
    X = saturation_level(z_max=fan * A + bq_max, rq_max=rq_max, beta=beta) if sat else 0
    bound = membrane_bound(fan=fan, acc_mul=A, bq_max=bq_max, rq_max=rq_max, beta=beta, tc=tc, ts=ts,
                           num=num, den=den, sat=X)
    if bound > limit or fan > INT32_MAX:
        return None
    return wq, M, A, bq, rq, bd, X, bound, err


def dithers(beta: int, tc: int) -> bool:
    """Whether the bias is dithered over the input steps (beta = 2: its digits are bits)."""
    return beta == 2 and tc <= 30


def _bias(v, beta, tc):
    """The per-step bias ``v`` (real, in membrane units) as integers ``bq + d_t``, ``d_t`` the
    bits of ``bd`` (bit t for input step t): the window's total ``sum_t beta^(Tc-1-t) (bq + d_t)``
    is ``round(v S)``, so the bias costs 0.5 unit per window instead of 0.5 S. A whole ``v``
    (the exact-tie case) gives ``bd = 0``: the same constants as plain rounding."""
    if not dithers(beta, tc):
        return np.rint(v).astype(np.int64), np.zeros(np.shape(v), np.int64)
    S = Coding(tc, beta).int_code_sum
    base = np.floor(v)
    R = np.rint((v - base) * S).astype(np.int64)
    base = base.astype(np.int64) + (R == S)
    R = np.where(R == S, 0, R)
    # R's binary digits, most significant first, land on steps t = 0 .. Tc-1: bit t of bd is
    # bit Tc-1-t of R
    bd = np.zeros_like(R)
    for t in range(tc):
        bd |= ((R >> (tc - 1 - t)) & 1) << t
    return base, bd


def _choose(cands, b, beta, tc, ts, num, den, limit):
    """The most precise constants that fit, without saturation where that fits too (no clamp
    to pay), else saturating; None where only constants coarser than MAX_ERROR_LSB would."""
    for c in cands:
        if c[4] > MAX_ERROR_LSB:
            break      # sorted by error: the rest are coarser still
        plan = _fit(c, b, beta, tc, ts, num, den, limit, False) or _fit(c, b, beta, tc, ts, num, den, limit, True)
        if plan is not None:
            return plan
    return None
