"""lower-to-integer: integer-only neuron constants for firmware (docs/integer.md).

Per TSA layer the real multiplier ``M`` per output channel (``W = wq * M``) is moved
into the neuron: the membrane is kept in units of ``M / (S 2^F)``, with
``S = sum_k beta^(Tc-k)``. The factor ``S`` makes the per-step bias ``b~ / S`` of eq. 19
an integer wherever the ANN's own bias is one in units of ``M`` (AvgPool, Add of equal
scales), so exact rounding ties of the ANN stay exact ties here. Conv and dense layers
use the model's integer weights ``w - z_w`` (``M = s_i s_w theta_i / (s_o theta_o)``);
an add layer gets fixed-point weights ``round(W_k 2^G)`` (``M = 2^-G``); an avgpool
layer sums its window (``M`` = its factor, per position where count_include_pad=0 divides
border windows by fewer taps; ``bq`` and ``rq`` are then per-position maps). Then::

    acc_mul = S 2^F     bq = round(b S 2^F / M)     rq = round(beta^Ts S 2^F / M)
    fire +1 when den*H >= num*rq (strictly > at the last step), -1 symmetrically

The rounding of ``bq`` and ``rq`` costs at most ``0.5 M / 2^F`` LSB per window. The
membrane is int32 when the largest ``F`` that keeps the bound of docs/integer.md inside
int32 also keeps that error below 2^-14 LSB (then that ``F`` is used); else int64 with
16 more bits of precision. The encoder gets its lookup table of spike trains per
input code; the decoder, theta in Q16.

Requires: schedule-latencies; an integer beta.
Guarantees: every TsaLayer has ``wq`` (except avgpool: a window sum), ``bq``, ``rq`` and
the ``int_*`` attributes; every SwsEncode has ``lut``.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from swsc.errors import OptionError, UnsupportedOpError
from swsc.ir import Graph, Node, scalar
from swsc.passmanager import Pass
from swsc.runtime.interpreter import encode_exact, tsa_scan

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
ADD_WEIGHT_BITS = 30     # |round(W_k 2^G)| < 2^30: exact enough that only true ties are ties
PRECISION_LSB = 2.0 ** -14   # worst-case constant rounding error per neuron and window
#: what to tell a user whose layer's integer membrane bound does not fit
WINDOW_HINT = "the membrane bound grows with --tc, --ts and a layer's fan-in, so a shorter window may fit"


def _code_sum(tc: int, beta: int) -> int:
    return sum(beta ** (tc - k) for k in range(1, tc + 1))


class LowerToInteger(Pass):
    name = "lower-to-integer"
    __doc__ = __doc__

    def run(self, graph: Graph) -> bool:
        bad, window_bound = [], False
        for node in graph.nodes:
            beta = node.attrs.get("beta")
            if beta is not None and float(beta) != int(beta):
                raise OptionError(f"integer mode needs an integer --beta, got {beta}",
                                  hint="use --beta 2 or 3, or the float numpy runtime")
            try:
                if node.op == "TsaLayer":
                    self._layer(graph, node)
                elif node.op == "SwsEncode":
                    self._encoder(graph, node)
                elif node.op == "SwsDecode":
                    theta = graph.tensors[node.inputs[0]].quant.theta or 1.0
                    if theta != 1.0:
                        node.attrs["int_theta_q16"] = int(round(theta * 65536))
            except UnsupportedOpError as e:
                bad += e.nodes
                window_bound = window_bound or e.hint == WINDOW_HINT
        if bad:
            raise UnsupportedOpError(bad, hint="integer mode (--target c, --mode int) cannot represent these "
                                     "layers; " + (WINDOW_HINT + "; " if window_bound else "")
                                     + "the float numpy runtime runs them (docs/integer.md)")
        graph.remove_unused_tensors()
        graph.meta["integer"] = "1"
        return True

    def _encoder(self, graph: Graph, node: Node) -> None:
        a = node.attrs
        q = graph.tensors[node.outputs[0]].quant
        hi = q.hi - q.lo
        codes = np.arange(hi + 1, dtype=np.float64)
        theta = q.theta or 1.0
        if a["encoder"] == "exact":
            frames = encode_exact(codes, a["tc"], a["beta"], theta)
        else:
            S = _code_sum(a["tc"], int(a["beta"]))
            z = np.zeros((a["tc"], len(codes)))
            frames, _, _ = tsa_scan(z, codes / theta / S, ts=a["ts"], tc=a["tc"], beta=a["beta"], vth=0.5,
                                    hi_norm=hi / theta)
        lut = graph.add_const(f"{node.name}.lut", np.ascontiguousarray(frames.T.astype(np.int8)))
        node.inputs = [node.inputs[0], lut.name]

    def _layer(self, graph: Graph, node: Node) -> None:
        a = node.attrs
        n, kind = a["n_inputs"], a["kind"]
        beta, tc, ts = int(a["beta"]), a["tc"], a["ts"]
        W, b = graph.const(node.inputs[n]), graph.const(node.inputs[n + 1])
        out = graph.tensors[node.outputs[0]]
        if kind in ("conv", "dense"):
            wt = graph.tensors[node.inputs[n + 2]]
            m = wt.shape[0]
            zw = np.broadcast_to(wt.quant.zero_point, (m,)).reshape((m,) + (1,) * (wt.data.ndim - 1))
            wq = wt.data.astype(np.int64) - zw
            x = graph.tensors[node.inputs[0]]
            s_w = np.broadcast_to(wt.quant.scale, (m,)).astype(np.float64)
            M = (scalar(x.quant.scale) * s_w / scalar(out.quant.scale)) * (x.quant.theta / out.quant.theta)
            M = M.reshape((m,) + (1,) * (b.ndim - 1)) if b.ndim > 1 else M
            fan_in = np.abs(wq).reshape(m, -1).sum(axis=1).max()
        elif kind == "add":
            G = ADD_WEIGHT_BITS - max(0, math.ceil(math.log2(max(np.abs(W).max(), 1e-30))))
            wq = np.rint(W * 2.0 ** G).astype(np.int64)
            M = np.array([2.0 ** -G])
            fan_in = int(np.abs(wq).sum())
        else:  # avgpool: a plain window sum; its factor may vary by position (count_include_pad=0
            # at padded borders), and then so do bq and rq, as per-position constants
            wq = None
            M = np.asarray(W, np.float64)
            fan_in = int(np.prod(a["kernel"]))
        if np.any(M <= 0):
            raise UnsupportedOpError([(node.name, "TsaLayer", "a non-positive per-channel multiplier "
                                       "(negative folded BatchNorm scale) is not supported in integer mode")])
        S = _code_sum(tc, beta)
        vth = Fraction(a["vth"]).limit_denominator(64)

        fan_in = float(fan_in)
        b_over_m = float(np.max(np.abs(b) / M)) * S
        r_over_m = float(beta ** ts / np.min(M)) * S

        def bound(F):
            """The largest integer the neuron computes (docs/integer.md), over-estimated in float:
            den * (beta * (|H| + rq) + one step's input) + num * rq, with |H| bounded by the whole
            window's input plus the emitted resets."""
            r, step = r_over_m * 2.0 ** F + 1, (fan_in * S + b_over_m) * 2.0 ** F + 1
            h = beta ** ts * S * step + S * r * beta
            return vth.denominator * (beta * (h + r) + step) + vth.numerator * r

        def widest(limit):
            if bound(0) > limit:
                return None
            F = 0
            while F < 62 and bound(F + 1) <= limit:
                F += 1
            return F

        # rounding bq and rq costs at most 0.5 M / 2^F LSB per neuron and window
        need = max(0, math.ceil(math.log2(0.5 * float(M.max()) / PRECISION_LSB)))
        f32 = widest(INT32_MAX)
        if f32 is not None and f32 >= need:
            F, membrane = f32, "int32"   # the widest F int32 allows: precision for free
        else:
            f64 = widest(INT64_MAX)
            if f64 is None:
                raise UnsupportedOpError([(node.name, "TsaLayer", "membrane bound exceeds int64")], hint=WINDOW_HINT)
            F, membrane = min(f64, need + 16), "int64"
        unit = S * 2.0 ** F      # the membrane counts M / (S 2^F): a tie in the ANN is a tie here
        bq = np.rint(b * unit / M).astype(np.int64)
        rq = np.rint(float(beta ** ts) * unit / M).astype(np.int64)
        rq = np.broadcast_to(rq, np.broadcast_shapes(rq.shape, (1,))).copy()
        if rq.min() < 1:
            raise UnsupportedOpError([(node.name, "TsaLayer", "its multiplier is too large for an integer "
                                       "reset (rq < 1) within int64")], hint=WINDOW_HINT)
        extra = []
        if wq is not None:
            extra.append(graph.add_const(f"{node.name}.wq", wq.astype(np.int32)).name)
        else:
            extra.append("")
        extra.append(graph.add_const(f"{node.name}.bq", bq).name)
        extra.append(graph.add_const(f"{node.name}.rq", rq).name)
        node.inputs = node.inputs[:n + 2] + extra
        a.update(int_acc_mul=S * 2 ** F, int_vth=[vth.numerator, vth.denominator], int_hi=int(math.floor(a["hi_norm"])),
                 int_membrane=membrane)
