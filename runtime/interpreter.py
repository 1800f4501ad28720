"""The numpy interpreter for swsc graphs: SWS spiking graphs, and the code-domain
``Affine`` graphs of the middle of the pipeline (so each pass can be checked alone).

Float64 semantics, exactly as ``../shared/design/semantics.md`` defines them, vectorized
layer by layer: a layer's input frames go through its linear map in one batched
conv/matmul (the silent steps folded into one frame by linearity, so ``Tc - Ts + 1``
frames per sample), then the TSA neuron scan (``loops.py``) runs over its ``Tc + Ts``
steps. The GEMMs run in float32, exact for integer frames times integer weights while
every partial sum stays below 2^24 (checked per layer; float64 where it does not hold),
and the real per-channel multiplier is applied in float64 inside the scan.

Values while running:
* integer (code-domain) tensors: float64 ``[N, ...]`` holding codes ``q - lo``;
* spike tensors: int8 ``[Tc, N, ...]`` frames in {-1, 0, +1};
* float tensors: float32 ``[N, ...]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from swsc import kernels
from swsc.errors import SwscError
from swsc.ir import ACTIVATION_DTYPES, Graph, Node, scalar
# tsa_scan and max_pool_spikes are re-exported: tests and passes use them from here
from swsc.loops import (TIE_TOLERANCE, max_pool_spikes, nonzero_counts, spike_counts, tsa_scan,  # noqa: F401
                    tsa_scan_int, tsa_scan_units)

from . import memory
from .memory import FLOAT32_EXACT


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
#: the default memory budget of one batch of the simulation (live tensors plus the working
#: set of the layer being run); SWSC_MEMORY_BUDGET (bytes, or with a K/M/G suffix) overrides it
BATCH_BYTES = 1 << 30
#: most samples in one batch: more gains nothing once the GEMMs are large
MAX_BATCH = 128


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
def linear_map(node: Node, xs: list[np.ndarray], w: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The synaptic map of an Affine/TsaLayer on a batch (no bias); conv and dense write into
    ``out`` where given (float32 operands)."""
    kind = node.attrs["kind"]
    if kind == "conv":
        return kernels.conv2d(xs[0], w, node.attrs, out)
    if kind == "dense":
        return np.matmul(xs[0], w.T, out=out) if out is not None else xs[0] @ w.T
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


def fanout(node: Node, in_shapes, w: np.ndarray) -> list[np.ndarray]:
    """The synapses each input position reaches, one map per input (shaped like one input
    frame): a spike there costs that many synaptic operations."""
    kind = node.attrs["kind"]
    if kind in ("conv", "avgpool"):
        per = w.shape[0] // int(node.attrs.get("group", 1)) if kind == "conv" else 1
        return [np.broadcast_to(kernels.window_hits(in_shapes[0][1:], node.attrs) * per, in_shapes[0])]
    if kind == "dense":
        return [np.full(in_shapes[0], w.shape[0], dtype=np.int64)]
    return [np.ones(s, dtype=np.int64) for s in in_shapes]


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


def decode(frames: np.ndarray, beta: float) -> np.ndarray:
    tc = frames.shape[0]
    weights = np.array([beta ** (tc - 1 - k) for k in range(tc)])
    return np.tensordot(weights, frames.astype(np.float64), axes=1)


def round_half_even(v: np.ndarray) -> np.ndarray:
    """rint, except that values within TIE_TOLERANCE of a half count as exact ties, so float
    noise in the (exact in theory) bias cannot decide a tie."""
    f = np.floor(v)
    frac = v - f
    tie = np.abs(frac - 0.5) <= TIE_TOLERANCE
    return np.where(tie, f + (f % 2 != 0), np.rint(v))


def _count_spikes(s: LayerStats, frames: np.ndarray) -> None:
    pos, neg = spike_counts(frames)
    s.spikes_pos += pos
    s.spikes_neg += neg


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

    def __init__(self, graph: Graph, mode: str = "float", residuals: bool = True,
                 budget: int | str | None = None):
        if mode not in ("float", "int"):
            raise SwscError(f"unknown runtime mode '{mode}' (float or int)")
        if mode == "int" and graph.meta.get("integer") != "1":
            raise SwscError("integer mode needs a graph compiled with lower-to-integer",
                            hint="compile with integer=True or --target c")
        self.mode = mode
        self.residuals = residuals
        self.g = graph
        self._split = {n.name: split_weights(graph, n) for n in graph.nodes if n.op == "TsaLayer"}
        # the largest L1 norm of a weight row: bounds every partial sum of a GEMM of frames
        self._row_l1 = {k: float(np.abs(wq.reshape(len(wq), -1)).sum(axis=1).max())
                        for k, (wq, _) in self._split.items() if wq is not None}
        self._fanout: dict[str, list[np.ndarray]] = {}
        self.order = graph.topo_order()
        self.t_inf = int(graph.meta["t_inf"]) if "t_inf" in graph.meta else None
        self.budget = memory.memory_budget(budget, BATCH_BYTES)
        memory.return_freed_memory()
        self._pool: dict = {}
        # tensors no later node reads: freed after node i runs (graph outputs stay)
        last: dict[str, int] = {}
        for i, node in enumerate(self.order):
            for name in node.inputs:
                last[name] = i
        keep = set(graph.outputs)
        self._dead_after: list[list[str]] = [[] for _ in self.order]
        for name, i in last.items():
            if name not in keep and not (name in graph.tensors and graph.tensors[name].is_const):
                self._dead_after[i].append(name)

    def sample_bytes(self, intermediate: bool = False) -> int:
        """Peak bytes per sample of one batch (``memory.sample_bytes``)."""
        return memory.sample_bytes(self.g, self.order, self._dead_after, self._row_l1, self.residuals,
                                   intermediate)

    def default_batch(self, intermediate: bool = False) -> int:
        """Samples per batch: up to MAX_BATCH, fewer where a batch would pass the memory budget
        (``sample_bytes`` per sample; at least one sample)."""
        return int(min(MAX_BATCH, max(1, self.budget // self.sample_bytes(intermediate))))

    def run(self, x, *, intermediate=False, batch: int | None = None, progress=None) -> RunResult:
        """``intermediate``: False, True (every tensor decoded to q) or a collection of tensor
        names to decode (the others are freed as usual)."""
        feeds = x if isinstance(x, dict) else {self.g.inputs[0]: x}
        n = len(next(iter(feeds.values())))
        wanted = None if intermediate is True or intermediate is False else set(intermediate)
        batch = batch or self.default_batch(intermediate is True)
        outs: dict[str, list] = {o: [] for o in self.g.outputs}
        inter: dict[str, list] = {}
        stats: dict[str, LayerStats] = {}
        for start in range(0, n, batch):
            part = {k: np.asarray(v)[start:start + batch] for k, v in feeds.items()}
            decoded: dict[str, np.ndarray] | None = {} if intermediate is not False else None
            env = self._run_batch(part, stats, False, decoded, wanted)
            for o in self.g.outputs:
                outs[o].append(env[o])
            for name, v in (decoded or {}).items():
                inter.setdefault(name, []).append(v)
            del env, decoded
            if progress:
                progress(min(start + batch, n))
        res = RunResult({k: np.concatenate(v) for k, v in outs.items()}, list(stats.values()), n, self.t_inf,
                        {k: np.concatenate(v) for k, v in inter.items()} if intermediate is not False else None)
        return res

    def _decoded(self, env) -> dict[str, np.ndarray]:
        """Every integer/spike tensor as its quantized integer q (for layer-by-layer checks)."""
        out = {}
        for name, v in env.items():
            q = self._decode_one(name, v)
            if q is not None:
                out[name] = q
        return out

    def _decode_one(self, name: str, v: np.ndarray) -> np.ndarray | None:
        t = self.g.tensors.get(name)
        if t is None or t.quant is None or t.is_const:
            return None
        if t.dtype == "spike" and self.mode == "int":
            code = self._int_code(decode(v, self._beta()), t.quant.theta or 1.0)
        elif t.dtype == "spike":
            code = decode(v, self._beta()) * (t.quant.theta or 1.0)
        elif t.dtype in ACTIVATION_DTYPES:
            code = v
        else:
            return None
        return code + t.quant.lo

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

    def _run_batch(self, feeds, stats, keep_all, decoded: dict | None = None, wanted: set | None = None) -> dict:
        """Run one batch. With ``keep_all`` the returned env holds every value (raw frames);
        otherwise each value is freed after its last reader, so the env ends with the graph
        outputs, and ``decoded`` (if given) collects every tensor (or those in ``wanted``)
        as its quantized integer q."""
        env = dict(feeds)
        for i, node in enumerate(self.order):
            fn = getattr(self, "_op_" + node.op, None)
            if fn is None:
                raise SwscError("the interpreter cannot run this op", node=node.name, op=node.op)
            out = node.outputs[0]
            env[out] = fn(node, env, stats)
            if decoded is not None and (wanted is None or out in wanted) and \
                    (q := self._decode_one(out, env[out])) is not None:
                decoded[out] = q
            if not keep_all:
                for name in self._dead_after[i]:
                    env.pop(name, None)
        return env

    # -- helpers
    def _scratch(self, key: str, shape, dtype) -> np.ndarray:
        """A work array reused from layer to layer and batch to batch: fresh arrays of layer
        size cost more in page faults (the kernel zeroing new pages) than the neuron scan
        itself (measured on MobileNetV2: system time 0.3-0.4 s per frame). Valid until the
        next call with the same key."""
        dt = np.dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64))
        buf = self._pool.get((key, dt))
        if buf is None or buf.size < n:
            self._pool.pop((key, dt), None)
            buf = self._pool[(key, dt)] = np.empty(n, dt)
        return buf[:n].reshape(shape)

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

    def _op_FloatArith(self, node, env, stats):
        return kernels.float_arith(env[node.inputs[0]], self.g.const(node.inputs[1]), node.attrs["op"],
                                   node.attrs.get("reverse", False))

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
        w = self.g.const(node.inputs[n])
        ins = [env[i] for i in node.inputs[:n]]
        tc, nb = ins[0].shape[:2]
        flat = [f.reshape((tc * nb,) + f.shape[2:]) for f in ins]
        tsa = self._tsa_int if self.mode == "int" else self._tsa_float
        frames, E, v = tsa(node, flat, tc, nb)
        out = self._t(node.outputs[0])
        s = self._stat(stats, node, neurons=int(np.prod(out.shape[1:])), ts=a["ts"], steps=a["tc"] + a["ts"],
                       macs=dense_macs(node, self.g, w))
        _count_spikes(s, frames)
        if node.name not in self._fanout:
            self._fanout[node.name] = fanout(node, [f.shape[2:] for f in ins], w)
        s.synaptic_ops += sum(int(np.dot(nonzero_counts(f).ravel(), fo.ravel()))
                              for f, fo in zip(ins, self._fanout[node.name]))
        if self.residuals:
            _residuals(s, E, v, a["hi_norm"])
        return frames

    def _tsa_float(self, node, flat, tc, nb):
        """Semantics section 3 in float64; returns frames, E, and the membrane in units of R."""
        a = node.attrs
        n = a["n_inputs"]
        w, b = self.g.const(node.inputs[n]), self.g.const(node.inputs[n + 1])
        beta = float(a["beta"])
        wq, mult = self._split[node.name]
        R = beta ** a["ts"]    # the scan counts the membrane in units of the reset
        # Silent steps only integrate: by linearity one map of their beta-weighted frames
        # gives the same membrane as one map per step (exact for integer beta). The fold
        # goes through the same GEMM call as the other steps, as its first block.
        j = min(a["ts"], tc) if beta == int(beta) else 0
        j = j if j > 1 else 0
        steps = tc - j + (1 if j else 0)
        fold_weights = [beta ** (j - 1 - t) for t in range(j)]
        # Integer frames times integer weights (or summed over a pooling window) are exact in a
        # float32 GEMM, in any summation order, while every partial sum stays below 2^24: a
        # frame's entries are at most the fold's weight sum (1 without a fold). Wider layers
        # take the (slower) float64 path.
        largest = sum(fold_weights) if j else 1.0
        if wq is not None:
            exact32 = self._row_l1[node.name] * largest < FLOAT32_EXACT
        else:
            exact32 = a["kind"] == "avgpool" and beta == int(beta) and \
                float(np.prod(a["kernel"])) * largest < FLOAT32_EXACT
        xs = []
        for i, f in enumerate(flat):
            x = self._scratch(f"x{i}", (steps * nb,) + f.shape[1:], np.float32 if exact32 else np.float64)
            if j:
                np.multiply(f[:nb], fold_weights[0], out=x[:nb])
                for t, wt in enumerate(fold_weights[1:], 1):
                    x[:nb] += wt * f[t * nb:(t + 1) * nb]
            x[nb if j else 0:] = f[j * nb:]
            xs.append(x)
        out_frame = self._t(node.outputs[0]).shape[1:]
        if wq is not None:   # exact integer sums in a float32 GEMM, the real multiplier in the scan
            z = self._scratch("z", (steps * nb,) + tuple(out_frame), np.float32) if exact32 else None
            z, mul = linear_map(node, xs, wq, z), mult / R
        elif a["kind"] == "avgpool":
            z, mul = kernels.sum_pool(xs[0], a), w / R
        else:
            z, mul = linear_map(node, xs, w / R), None
        size = (nb,) + tuple(out_frame)
        return tsa_scan_units(z.reshape((steps,) + size), b / R, ts=a["ts"], tc=tc, beta=beta,
                              vth=a["vth"], hi_norm=a["hi_norm"], zmul=mul, start=j, fold_bias=b / R * sum(fold_weights),
                              E=self._scratch("E", size, np.float64), v=self._scratch("v", size, np.float64))

    def _tsa_int(self, node, flat, tc, nb):
        """docs/integer.md, step for step; returns frames, E, and the membrane in units of R."""
        a = node.attrs
        n = a["n_inputs"]
        wq_name, bq, rq = node.inputs[n + 2], self.g.const(node.inputs[n + 3]), self.g.const(node.inputs[n + 4])
        wq = self.g.const(wq_name) if wq_name else np.ones(1)
        acc = np.rint(linear_map(node, [f.astype(np.float64) for f in flat], wq.astype(np.float64))).astype(np.int64)
        acc = acc.reshape((tc, nb) + acc.shape[1:])
        bd = self.g.const(node.inputs[n + 5]) if len(node.inputs) > n + 5 and node.inputs[n + 5] else np.zeros(1)
        frames, E, U = tsa_scan_int(acc, bq, rq, bd=bd, acc_mul=a["int_acc_mul"], ts=a["ts"], tc=tc,
                                    beta=int(a["beta"]),
                                    vth=tuple(a["int_vth"]), hi=a["int_hi"], sat=a.get("int_sat", 0),
                                    bound=a.get("int_bound", 2**31 - 1 if a["int_membrane"] == "int32" else 2**63 - 1))
        return frames, E, U / rq

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


def run(graph: Graph, x, *, intermediate=False, batch: int | None = None, progress=None,
        mode: str = "float", residuals: bool = True, budget: int | str | None = None) -> RunResult:
    """Run ``graph`` on inputs ``x`` (array for the single input, or {name: array}).

    Samples go through in chunks of ``batch`` (default: up to 128, fewer where a batch would
    pass the memory ``budget``, see ``Interpreter.default_batch`` and ``memory.memory_budget``);
    ``progress(done)`` is called after each. ``residuals=False`` skips the per-layer residual
    histograms (a diagnostic). ``intermediate`` keeps every tensor (True) or the named ones
    decoded to q, for all samples: that part of the memory grows with the number of samples.
    """
    return Interpreter(graph, mode, residuals, budget).run(x, intermediate=intermediate, batch=batch,
                                                           progress=progress)
