"""The numpy interpreter for swsc graphs: SWS spiking graphs, and the code-domain
``Affine`` graphs of the middle of the pipeline (so each pass can be checked alone).

Float64 semantics, exactly as ``../shared/design/semantics.md`` defines them, vectorized
layer by layer: a layer's ``Tc`` input frames go through its linear map in one batched
conv/matmul, then the TSA neuron scan runs elementwise over its ``Tc + Ts`` steps.

Values while running:
* integer (code-domain) tensors: float64 ``[N, ...]`` holding codes ``q - lo``;
* spike tensors: int8 ``[Tc, N, ...]`` frames in {-1, 0, +1};
* float tensors: float32 ``[N, ...]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from swsc.errors import SwscError
from swsc.ir import Graph, Node, scalar

from . import kernels


@dataclass
class LayerStats:
    name: str
    op: str
    neurons: int = 0          # per sample
    ts: int = 0
    steps: int = 0            # membrane amplifications per neuron per frame (Tc + Ts; 0 for the exact encoder)
    spikes_pos: int = 0       # totals over the batch
    spikes_neg: int = 0
    synaptic_ops: int = 0     # input spikes x synapses they reach, totals over the batch
    macs: int = 0             # dense ANN multiply-accumulates per sample
    residual_hist: np.ndarray | None = None   # counts over RESIDUAL_BINS, in-range neurons
    residual_abs_sum: float = 0.0
    residual_abs_max: float = 0.0
    in_range: int = 0
    clamped: int = 0


RESIDUAL_BINS = np.linspace(-1.5, 1.5, 61)
#: float-mode membranes closer than this (in units of R) to a threshold count as exact ties
TIE_TOLERANCE = 1e-9


@dataclass
class RunResult:
    outputs: dict[str, np.ndarray]
    layers: list[LayerStats] = field(default_factory=list)
    samples: int = 0
    t_inf: int | None = None
    intermediates: dict[str, np.ndarray] | None = None

    def totals(self) -> dict:
        n = max(self.samples, 1)
        amp = sum(s.steps * s.neurons for s in self.layers)
        syn = sum(s.synaptic_ops for s in self.layers) / n
        return {
            "t_inf": self.t_inf,
            "opf": float(amp + syn),
            "opf_amplification": float(amp),
            "opf_synaptic": float(syn),
            "ann_macs": int(sum(s.macs for s in self.layers)),
            "spikes_pos": float(sum(s.spikes_pos for s in self.layers) / n),
            "spikes_neg": float(sum(s.spikes_neg for s in self.layers) / n),
        }


# ---------------------------------------------------------------- linear maps
def linear_map(node: Node, xs: list[np.ndarray], w: np.ndarray) -> np.ndarray:
    """The synaptic map of an Affine/TsaLayer on a batch (no bias)."""
    kind = node.attrs["kind"]
    if kind == "conv":
        return kernels.conv2d(xs[0], w, node.attrs)
    if kind == "dense":
        return xs[0] @ w.T
    if kind == "avgpool":
        return kernels.sum_pool(xs[0], node.attrs) * w
    if kind == "add":
        return sum(wk * x for wk, x in zip(w, xs))
    raise SwscError(f"unknown layer kind '{kind}'", node=node.name, op=node.op)


def split_weights(graph: Graph, node: Node):
    """Conv/dense weights as integers ``wq`` (float32, exact) and a real multiplier per output
    channel with ``W = wq * mult``, so a frame of spikes goes through an exact float32 GEMM
    (semantics note section 7). (None, None) where the layer has no integer weights."""
    n = node.attrs["n_inputs"]
    if node.attrs["kind"] not in ("conv", "dense") or len(node.inputs) < n + 3:
        return None, None
    W = graph.const(node.inputs[n])
    t = graph.tensors[node.inputs[n + 2]]
    wq = t.data.astype(np.float64)
    if t.quant is not None:
        zp = np.broadcast_to(t.quant.zero_point, (wq.shape[0],))
        wq = wq - zp.reshape((-1,) + (1,) * (wq.ndim - 1))
    m = wq.shape[0]
    num = (W.reshape(m, -1) * wq.reshape(m, -1)).sum(axis=1)
    den = (wq.reshape(m, -1) ** 2).sum(axis=1)
    mult = np.divide(num, den, out=np.zeros(m), where=den > 0)
    shape = (m, 1, 1) if node.attrs["kind"] == "conv" else (m,)
    return wq.astype(np.float32), mult.reshape(shape)


def synaptic_ops(node: Node, counts: list[np.ndarray], w: np.ndarray) -> int:
    """Spike-synapse events: each input spike times the synapses it really reaches."""
    kind = node.attrs["kind"]
    if kind == "conv":
        return int(kernels.conv2d(counts[0][None], np.ones(w.shape), node.attrs).sum())
    if kind == "dense":
        return int(counts[0].sum() * w.shape[0])
    if kind == "avgpool":
        return int(kernels.sum_pool(counts[0][None], node.attrs).sum())
    return int(sum(c.sum() for c in counts))


def dense_macs(node: Node, graph: Graph, w: np.ndarray) -> int:
    out = graph.tensors[node.outputs[0]]
    per_out = {"conv": lambda: int(np.prod(w.shape[1:])), "dense": lambda: w.shape[1],
               "avgpool": lambda: int(np.prod(node.attrs["kernel"])),
               "add": lambda: node.attrs["n_inputs"]}[node.attrs["kind"]]()
    return int(np.prod(out.shape[1:])) * per_out


# ---------------------------------------------------------------- SWS primitives
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


def tsa_scan(z: np.ndarray, bias, *, ts: int, tc: int, beta: float, vth: float, hi_norm: float,
             u0: np.ndarray | None = None, start: int = 0):
    """Run TSA neurons (semantics section 3) on synaptic input ``z[Tc, ...]`` and bias.

    Returns (frames int8 [Tc, ...], emitted value E, final membrane u). ``u0``/``start``:
    the membrane after the first ``start`` silent steps, when the caller integrated them
    in one go (``z[t]`` is then the input of step ``start + t``).
    """
    R = float(beta) ** ts
    frames, E, v = tsa_scan_units(z / R, np.asarray(bias) / R, ts=ts, tc=tc, beta=beta, vth=vth,
                                  hi_norm=hi_norm, v0=None if u0 is None else u0 / R, start=start)
    return frames, E, v * R


def tsa_scan_units(z: np.ndarray, bias, *, ts: int, tc: int, beta: float, vth: float, hi_norm: float,
                   v0: np.ndarray | None = None, start: int = 0):
    """tsa_scan with the membrane counted in units of the reset R = beta^Ts (inputs already
    divided by R): the threshold is ``vth`` and a spike subtracts exactly 1. In-place
    arithmetic throughout: this loop is most of the simulation's time."""
    shape = z.shape[1:]
    beta = float(beta)
    S = sum(beta ** (tc - k) for k in range(1, tc + 1))
    # the upper-clamp rule can only block when hi' is below the codable maximum
    clamp_hi = hi_norm < S
    v = np.zeros(shape) if v0 is None else v0
    H = np.empty(shape)
    # E: the value emitted so far, an integer for integer beta
    e_type = (np.int16 if S * beta < 2**15 else np.int32 if S * beta < 2**31 else np.int64) \
        if beta == int(beta) else np.float64
    E = np.zeros(shape, dtype=e_type)
    frames = np.zeros((tc,) + shape, dtype=np.int8)
    for t in range(start, tc + ts):
        np.multiply(v, beta, out=H)
        if t < tc:
            H += z[t - start]
            H += bias
        if t < ts:
            v, H = H, v
            continue
        k = t - ts
        # a tie (H on the threshold, up to float noise) fires, except at the last step:
        # there it stays, so a value n + 1/2 rounds half to even as onnxruntime's rint does
        edge = -TIE_TOLERANCE if k < tc - 1 else TIE_TOLERANCE
        pos = H >= vth + edge
        if clamp_hi:
            pos &= (beta * E + 1) * beta ** (tc - 1 - k) <= hi_norm
        neg = H <= -vth - edge
        neg &= E > 0
        f = frames[k]
        np.subtract(pos.view(np.int8), neg.view(np.int8), out=f)
        np.subtract(H, f, out=v)
        E *= e_type(beta) if e_type is not np.float64 else beta
        E += f
    return frames, E, v


def tsa_scan_int(acc, bq, rq, *, acc_mul, ts, tc, beta, vth, hi, limit):
    """The integer TSA neuron of docs/integer.md on exact synaptic sums ``acc[Tc, ...]``."""
    num, den = vth
    shape = acc.shape[1:]
    U = np.zeros(shape, dtype=np.int64)
    E = np.zeros(shape, dtype=np.int64)
    frames = np.zeros((tc,) + shape, dtype=np.int8)
    peak = 0
    for t in range(tc + ts):
        H = beta * U
        if t < tc:
            H = H + acc[t] * acc_mul + bq
        peak = max(peak, int(np.abs(H).max()) * den if H.size else 0)
        if t < ts:
            U = H
            continue
        wk = beta ** (tc - 1 - t + ts)
        last = t - ts == tc - 1      # strict at the last step: ties round half to even
        pos = ((den * H > num * rq) if last else (den * H >= num * rq)) & ((beta * E + 1) * wk <= hi)
        neg = ((den * H < -num * rq) if last else (den * H <= -num * rq)) & (E > 0)
        f = pos.astype(np.int64) - neg.astype(np.int64)
        U = H - f * rq
        E = beta * E + f
        frames[t - ts] = f
    if peak + num * int(np.max(rq)) > limit:
        raise SwscError(f"integer membrane reached {peak}, beyond the proven bound {limit}",
                        hint="this is a swsc bug in lower-to-integer; please report it")
    return frames, E, U


def decode(frames: np.ndarray, beta: float) -> np.ndarray:
    tc = frames.shape[0]
    weights = np.array([beta ** (tc - 1 - k) for k in range(tc)])
    return np.tensordot(weights, frames.astype(np.float64), axes=1)


def max_pool_spikes(frames: np.ndarray, attrs: dict, beta: float) -> np.ndarray:
    """Exact running max: P(k) = beta P(k-1) + s(k), M(k) = max P(k), o(k) = M(k) - beta M(k-1)."""
    tc, n = frames.shape[:2]
    beta = float(beta)
    exact32 = beta == int(beta) and beta ** tc < 2**24     # then every P is exact in float32
    partial = np.empty(frames.shape, dtype=np.float32 if exact32 else np.float64)
    partial[0] = frames[0]
    for k in range(1, tc):
        np.multiply(partial[k - 1], beta, out=partial[k])
        partial[k] += frames[k]
    M = kernels.max_pool(partial.reshape((tc * n,) + frames.shape[2:]), attrs)
    M = M.reshape((tc, n) + M.shape[1:])
    diff = M.copy()
    diff[1:] -= beta * M[:-1]
    return (diff if exact32 else np.rint(diff)).astype(np.int8)


def round_half_even(v: np.ndarray) -> np.ndarray:
    """rint, except that values within TIE_TOLERANCE of a half count as exact ties, so float
    noise in the (exact in theory) bias cannot decide a tie."""
    f = np.floor(v)
    frac = v - f
    tie = np.abs(frac - 0.5) <= TIE_TOLERANCE
    return np.where(tie, f + (f % 2 != 0), np.rint(v))


def _count_spikes(s: LayerStats, frames: np.ndarray) -> None:
    nonzero = np.count_nonzero(frames)
    pos = int(frames.sum(dtype=np.int64) + nonzero) // 2
    s.spikes_pos += pos
    s.spikes_neg += nonzero - pos


def _residuals(s: LayerStats, E: np.ndarray, r: np.ndarray, hi_norm: float) -> None:
    """Residual (final membrane in output LSBs) of the neurons whose exact value is in range;
    clamped neurons keep their out-of-range value in u by design and are counted apart."""
    value = E + r
    inside = (value >= -0.5) & (value <= hi_norm + 0.5)
    ri = r[inside]
    idx = np.clip(np.floor((ri - RESIDUAL_BINS[0]) / (RESIDUAL_BINS[1] - RESIDUAL_BINS[0])), 0,
                  len(RESIDUAL_BINS) - 2).astype(np.int64)
    h = np.bincount(idx, minlength=len(RESIDUAL_BINS) - 1)
    s.residual_hist = h if s.residual_hist is None else s.residual_hist + h
    s.in_range += int(ri.size)
    s.clamped += int(r.size - ri.size)
    if ri.size:
        a = np.abs(ri)
        s.residual_abs_sum += float(a.sum())
        s.residual_abs_max = max(s.residual_abs_max, float(a.max()))


# ---------------------------------------------------------------- the interpreter
class Interpreter:
    """Runs a graph. ``mode="int"`` executes the integer constants of lower-to-integer
    (docs/integer.md) exactly as the generated C does."""

    def __init__(self, graph: Graph, mode: str = "float", residuals: bool = True):
        if mode not in ("float", "int"):
            raise SwscError(f"unknown runtime mode '{mode}' (float or int)")
        if mode == "int" and graph.meta.get("integer") != "1":
            raise SwscError("integer mode needs a graph compiled with lower-to-integer",
                            hint="compile with integer=True or --target c")
        self.mode = mode
        self.residuals = residuals
        self.g = graph
        self._split = {n.name: split_weights(graph, n) for n in graph.nodes if n.op == "TsaLayer"}
        self.order = graph.topo_order()
        self.t_inf = int(graph.meta["t_inf"]) if "t_inf" in graph.meta else None

    def run(self, x, *, intermediate: bool = False, batch: int = 128, progress=None) -> RunResult:
        feeds = x if isinstance(x, dict) else {self.g.inputs[0]: x}
        n = len(next(iter(feeds.values())))
        outs: dict[str, list] = {o: [] for o in self.g.outputs}
        inter: dict[str, list] = {}
        stats: dict[str, LayerStats] = {}
        for start in range(0, n, batch):
            part = {k: np.asarray(v)[start:start + batch] for k, v in feeds.items()}
            env = self._run_batch(part, stats, intermediate)
            for o in self.g.outputs:
                outs[o].append(env[o])
            if intermediate:
                for name, v in self._decoded(env).items():
                    inter.setdefault(name, []).append(v)
            if progress:
                progress(min(start + batch, n))
        res = RunResult({k: np.concatenate(v) for k, v in outs.items()}, list(stats.values()), n, self.t_inf,
                        {k: np.concatenate(v) for k, v in inter.items()} if intermediate else None)
        return res

    def _decoded(self, env) -> dict[str, np.ndarray]:
        """Every integer/spike tensor as its quantized integer q (for layer-by-layer checks)."""
        out = {}
        for name, v in env.items():
            t = self.g.tensors.get(name)
            if t is None or t.quant is None or t.is_const:
                continue
            if t.dtype == "spike" and self.mode == "int":
                code = self._int_code(decode(v, self._beta()), t.quant.theta or 1.0)
            elif t.dtype == "spike":
                code = decode(v, self._beta()) * (t.quant.theta or 1.0)
            elif t.dtype in ("uint8", "int8"):
                code = v
            else:
                continue
            out[name] = code + t.quant.lo
        return out

    @staticmethod
    def _int_code(A: np.ndarray, theta: float) -> np.ndarray:
        """The integer decoder (docs/integer.md): A, or round(theta A) with theta in Q16."""
        A = np.rint(A).astype(np.int64)
        return A if theta == 1.0 else (A * int(round(theta * 65536)) + 2**15) >> 16

    def _beta(self) -> float:
        for n in self.g.nodes:
            if "beta" in n.attrs:
                return float(n.attrs["beta"])
        return 2.0

    def _run_batch(self, feeds, stats, intermediate) -> dict:
        env = dict(feeds)
        for node in self.order:
            fn = getattr(self, "_op_" + node.op, None)
            if fn is None:
                raise SwscError("the interpreter cannot run this op", node=node.name, op=node.op)
            env[node.outputs[0]] = fn(node, env, stats)
        if not intermediate:
            return {k: env[k] for k in self.g.outputs} | env
        return env

    # -- helpers
    def _t(self, name):
        return self.g.tensors[name]

    def _stat(self, stats, node, **kw) -> LayerStats:
        s = stats.get(node.name)
        if s is None:
            s = stats[node.name] = LayerStats(node.name, node.op, **kw)
        return s

    # -- code-domain (ANN) ops
    def _op_Quantize(self, node, env, stats):
        q = self._t(node.outputs[0]).quant
        x = np.asarray(env[node.inputs[0]], dtype=np.float32)
        v = np.rint(x / np.float32(scalar(q.scale))) + scalar(q.zero_point)
        return np.clip(v, q.lo, q.hi).astype(np.float64) - q.lo

    def _op_Affine(self, node, env, stats):
        n = node.attrs["n_inputs"]
        out = self._t(node.outputs[0]).quant
        w, b = self.g.const(node.inputs[n]), self.g.const(node.inputs[n + 1])
        ins = [env[i] / (self._t(i).quant.theta or 1.0) for i in node.inputs[:n]]
        acc = linear_map(node, ins, w) + node.attrs.get("code_sum", 1.0) * b
        theta = out.theta or 1.0
        return np.clip(round_half_even(theta * acc), 0, out.hi - out.lo)

    def _op_MaxPool(self, node, env, stats):
        return kernels.max_pool(env[node.inputs[0]], node.attrs)

    def _op_Dequantize(self, node, env, stats):
        q = self._t(node.inputs[0]).quant
        return (scalar(q.scale) * (env[node.inputs[0]] + q.lo - scalar(q.zero_point))).astype(np.float32)

    # -- structural ops: frames carry a leading Tc axis
    def _lead(self, name) -> int:
        return 1 if self._t(name).dtype == "spike" else 0

    def _op_Reshape(self, node, env, stats):
        x = env[node.inputs[0]]
        lead = self._lead(node.inputs[0])
        return x.reshape(x.shape[:lead + 1] + tuple(node.attrs["shape"][1:]))

    def _op_Transpose(self, node, env, stats):
        lead = self._lead(node.inputs[0])
        perm = list(range(lead)) + [p + lead for p in node.attrs["perm"]]
        return np.ascontiguousarray(env[node.inputs[0]].transpose(perm))

    def _op_Concat(self, node, env, stats):
        lead = self._lead(node.inputs[0])
        return np.concatenate([env[i] for i in node.inputs], axis=node.attrs["axis"] + lead)

    def _op_Softmax(self, node, env, stats):
        x = env[node.inputs[0]].astype(np.float32)
        e = np.exp(x - x.max(axis=node.attrs["axis"], keepdims=True))
        return e / e.sum(axis=node.attrs["axis"], keepdims=True)

    # -- SWS ops
    def _op_SwsEncode(self, node, env, stats):
        a = node.attrs
        q = self._t(node.outputs[0]).quant
        code = self._op_Quantize(node, env, stats)
        theta = q.theta or 1.0
        s = self._stat(stats, node, neurons=int(np.prod(code.shape[1:])), ts=a["ts"],
                       steps=a["tc"] + a["ts"] if a["encoder"] == "tsa" else 0)
        if self.mode == "int":
            lut = self.g.const(node.inputs[1])
            frames = np.moveaxis(lut[code.astype(np.int64)], -1, 0)
        elif a["encoder"] == "exact":
            frames = encode_exact(code, a["tc"], a["beta"], theta)
        else:
            S = sum(a["beta"] ** (a["tc"] - k) for k in range(1, a["tc"] + 1))
            z = np.zeros((a["tc"],) + code.shape)
            frames, _, _ = tsa_scan(z, code / theta / S, ts=a["ts"], tc=a["tc"], beta=a["beta"], vth=0.5,
                                    hi_norm=(q.hi - q.lo) / theta)
        _count_spikes(s, frames)
        return frames

    def _op_TsaLayer(self, node, env, stats):
        a = node.attrs
        n = a["n_inputs"]
        w, b = self.g.const(node.inputs[n]), self.g.const(node.inputs[n + 1])
        ins = [env[i] for i in node.inputs[:n]]
        tc, nb = ins[0].shape[:2]
        out_frame = self._t(node.outputs[0]).shape[1:]
        flat = [f.reshape((tc * nb,) + f.shape[2:]) for f in ins]
        if self.mode == "int":
            frames, E, u = self._tsa_int(node, flat, tc, nb)
        else:
            beta = float(a["beta"])
            wq, mult = self._split[node.name]

            R = beta ** a["ts"]    # the scan counts the membrane in units of the reset

            def synaptic(frames_list):
                if wq is not None:   # exact integer sums in a float32 GEMM, the real multiplier after
                    return np.multiply(linear_map(node, [f.astype(np.float32) for f in frames_list], wq), mult / R)
                # small integer window sums are exact in float32 too
                exact32 = node.attrs["kind"] == "avgpool" and beta == int(beta)
                return linear_map(node, [f.astype(np.float32 if exact32 else np.float64) for f in frames_list],
                                  w / R)

            # Silent steps only integrate: by linearity one map of their beta-weighted frames
            # gives the same membrane as one map per step (exact for integer beta).
            j = min(a["ts"], tc) if beta == int(beta) else 0
            u0 = None
            if j > 1:
                weights = [beta ** (j - 1 - t) for t in range(j)]
                fold = [sum(wt * f[t * nb:(t + 1) * nb].astype(np.float32) for t, wt in enumerate(weights))
                        for f in flat]
                u0 = np.broadcast_to(synaptic(fold) + b / R * sum(weights), (nb,) + out_frame).copy()
                flat = [f[j * nb:] for f in flat]
            else:
                j = 0
            z = synaptic(flat).reshape((tc - j, nb) + out_frame) if tc > j else np.zeros((0, nb) + out_frame)
            frames, E, v = tsa_scan_units(z, b / R, ts=a["ts"], tc=tc, beta=beta, vth=a["vth"],
                                          hi_norm=a["hi_norm"], v0=u0, start=j)
            u = v * R
        out = self._t(node.outputs[0])
        s = self._stat(stats, node, neurons=int(np.prod(out.shape[1:])), ts=a["ts"], steps=a["tc"] + a["ts"],
                       macs=dense_macs(node, self.g, w))
        _count_spikes(s, frames)
        counts = [np.count_nonzero(f, axis=(0, 1)) for f in ins]
        s.synaptic_ops += synaptic_ops(node, counts, w)
        if self.residuals:
            _residuals(s, E, u / (a["beta"] ** a["ts"]), a["hi_norm"])
        return frames

    def _tsa_int(self, node, flat, tc, nb):
        """docs/integer.md, step for step; returns frames, E, and u in float-mode units."""
        a = node.attrs
        n = a["n_inputs"]
        wq_name, bq, rq = node.inputs[n + 2], self.g.const(node.inputs[n + 3]), self.g.const(node.inputs[n + 4])
        wq = self.g.const(wq_name) if wq_name else np.ones(1)
        acc = np.rint(linear_map(node, [f.astype(np.float64) for f in flat], wq.astype(np.float64))).astype(np.int64)
        acc = acc.reshape((tc, nb) + acc.shape[1:])
        frames, E, U = tsa_scan_int(acc, bq, rq, acc_mul=a["int_acc_mul"], ts=a["ts"], tc=tc, beta=int(a["beta"]),
                                    vth=tuple(a["int_vth"]), hi=a["int_hi"],
                                    limit=2**31 - 1 if a["int_membrane"] == "int32" else 2**63 - 1)
        return frames, E, U * (a["beta"] ** a["ts"]) / rq

    def _op_SpikeMaxPool(self, node, env, stats):
        return max_pool_spikes(env[node.inputs[0]], node.attrs, self._beta())

    def _op_SpikeDelay(self, node, env, stats):
        return env[node.inputs[0]]

    def _op_SwsDecode(self, node, env, stats):
        q = self._t(node.inputs[0]).quant
        if self.mode == "int":
            code = self._int_code(decode(env[node.inputs[0]], self._beta()), q.theta or 1.0)
        else:
            code = decode(env[node.inputs[0]], self._beta()) * (q.theta or 1.0)
        return (scalar(q.scale) * (code + q.lo - scalar(q.zero_point))).astype(np.float32)


def run(graph: Graph, x, *, intermediate: bool = False, batch: int = 128, progress=None,
        mode: str = "float", residuals: bool = True) -> RunResult:
    """Run ``graph`` on inputs ``x`` (array for the single input, or {name: array}).

    Samples go through in chunks of ``batch``; ``progress(done)`` is called after each.
    ``residuals=False`` skips the per-layer residual histograms (a diagnostic).
    """
    return Interpreter(graph, mode, residuals).run(x, intermediate=intermediate, batch=batch, progress=progress)
