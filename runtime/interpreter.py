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

Each op runs through its ``run(rt, node, env, stats)`` hook (``swsc/ops/<op>.py``, the
``# -- numpy runtime`` section), with this Interpreter as ``rt``: it offers the mode, the
graph, scratch buffers, the layer statistics and the SWS decoding; the TSA neuron scan
shared by every layer kind is runtime/neurons.py.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np

from swsc.errors import SwscError
from swsc.ir import ACTIVATION_DTYPES, Graph, Node

# decode, encode_exact, tsa_scan and max_pool_spikes are re-exported: tests,
# passes and tools use them from here
from swsc.kernels import decode, encode_exact, int_code  # noqa: F401
from swsc.loops import max_pool_spikes, spike_counts, tsa_scan  # noqa: F401
from swsc.ops import op_of, synapse_of

from . import memory, neurons


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

    def count_spikes(self, frames: np.ndarray) -> None:
        pos, neg = spike_counts(frames)
        self.spikes_pos += pos
        self.spikes_neg += neg

    def add_residuals(self, E: np.ndarray, r: np.ndarray, hi_norm: float) -> None:
        """Residual (final membrane in output LSBs) of the neurons whose exact value is in range;
        clamped neurons keep their out-of-range value in u by design and are counted apart."""
        value = E + r
        inside = (value >= -0.5) & (value <= hi_norm + 0.5)
        ri = r[inside]
        idx = np.clip(np.floor((ri - RESIDUAL_BINS[0]) / (RESIDUAL_BINS[1] - RESIDUAL_BINS[0])), 0,
                      len(RESIDUAL_BINS) - 2).astype(np.int64)
        h = np.bincount(idx, minlength=len(RESIDUAL_BINS) - 1)
        self.residual_hist = h if self.residual_hist is None else self.residual_hist + h
        self.in_range += int(ri.size)
        self.clamped += int(r.size - ri.size)
        if ri.size:
            a = np.abs(ri)
            self.residual_abs_sum += float(a.sum())
            self.residual_abs_max = max(self.residual_abs_max, float(a.max()))


RESIDUAL_BINS = np.linspace(-1.5, 1.5, 61)
#: the default memory budget of one batch of the simulation (live tensors plus the working
#: set of the layer being run); SWSC_MEMORY_BUDGET (bytes, or with a K/M/G suffix) overrides it
BATCH_BYTES = 1 << 30
#: most samples in one batch: more gains nothing once the GEMMs are large
MAX_BATCH = 128
#: each layer's split weights and row norm (``Interpreter._split``) across interpreters: every
#: run() builds one, and on MobileNetV2 splitting the weights anew cost ~20 ms a frame in runs
#: of 8 frames; an entry holds the weight arrays it was computed from, to recognize them
_SPLITS: dict = {}
#: each graph's scratch buffers (``Interpreter.scratch``) between runs: every run() builds an
#: interpreter, and layer-sized work arrays made afresh cost their page faults again on every run
#: (measured on MobileNetV2, 8 frames: 303 -> 251 ms a frame with them kept). A run takes its
#: graph's buffers and puts them back when it ends, so runs in parallel never share one; they are
#: held while the graph lives (up to the largest layer's working set) and freed with it
_POOLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


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


# ---------------------------------------------------------------- the interpreter
class Interpreter:
    """Runs a graph. ``mode="int"`` executes the integer constants of lower-to-integer
    (docs/integer.md) exactly as the generated C does.

    What an op's ``run(rt, node, env, stats)`` hook may use: ``mode``, ``g`` (the graph),
    ``residuals``, ``scratch``, ``stat``, ``lead``, ``spike_code``, and for fused layers
    ``weights``, ``fanout`` and ``tsa`` (the neuron scan)."""

    def __init__(self, graph: Graph, mode: str = "float", residuals: bool = True,
                 budget: int | str | None = None):
        if mode not in ("float", "int"):
            raise SwscError(f"unknown runtime mode '{mode}' (float or int)")
        if mode == "int" and not graph.integer:
            raise SwscError("integer mode needs a graph compiled with lower-to-integer",
                            hint="compile with integer=True or --target c")
        if graph.coding is None and any(t.dtype == "spike" for t in graph.tensors.values()):
            raise SwscError("a spiking graph without its coding (Tc, beta)",
                            hint="graph.coding is set by the rescale pass; compile the graph with swsc")
        self.mode = mode
        self.residuals = residuals
        self.g = graph
        self._tsa = neurons.tsa_int if mode == "int" else neurons.tsa_float
        self._weights: dict[str, tuple] = {}
        self._row_l1: dict[str, float | None] = {}
        self._fanout: dict[str, list[np.ndarray]] = {}
        self.order = graph.topo_order()
        # each node's run hook, looked up once (None: the op has no numpy execution)
        self._hooks = [getattr(op_of(n), "run", None) for n in self.order]
        self.t_inf = graph.t_inf
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
        return memory.sample_bytes(self, intermediate)

    def default_batch(self, intermediate: bool = False) -> int:
        """Samples per batch: up to MAX_BATCH, fewer where a batch would pass the memory budget
        (``sample_bytes`` per sample; at least one sample)."""
        return int(min(MAX_BATCH, max(1, self.budget // self.sample_bytes(intermediate))))

    def run(self, x, *, intermediate=False, batch: int | None = None, progress=None,
            stats: dict | None = None) -> RunResult:
        """``intermediate``: False, True (every tensor decoded to q) or a collection of tensor
        names to decode (the others are freed as usual). ``stats``: a dict of LayerStats by
        layer name to add this run's counts to (so a caller streaming its samples through
        several runs gets totals over all of them); a fresh one by default."""
        feeds = x if isinstance(x, dict) else {self.g.inputs[0]: x}
        n = len(next(iter(feeds.values())))
        wanted = None if intermediate is True or intermediate is False else set(intermediate)
        batch = batch or self.default_batch(intermediate is True)
        outs: dict[str, list] = {o: [] for o in self.g.outputs}
        inter: dict[str, list] = {}
        stats = {} if stats is None else stats
        self._pool = _POOLS.pop(self.g, None) or self._pool
        try:
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
        finally:
            # back for the graph's next run, unless a parallel run put its own back first
            _POOLS.setdefault(self.g, self._pool)
            self._pool = {}
        res = RunResult({k: np.concatenate(v) for k, v in outs.items()}, list(stats.values()), n, self.t_inf,
                        {k: np.concatenate(v) for k, v in inter.items()} if intermediate is not False else None)
        return res

    def _decode_one(self, name: str, v: np.ndarray) -> np.ndarray | None:
        t = self.g.tensors.get(name)
        if t is None or t.quant is None or t.is_const:
            return None
        if t.dtype == "spike":
            code = self.spike_code(v, t.quant.theta or 1.0)
        elif t.dtype in ACTIVATION_DTYPES:
            code = v
        else:
            return None
        return code + t.quant.lo

    def spike_code(self, frames: np.ndarray, theta: float) -> np.ndarray:
        """The code (q - lo) spike frames carry: decoded in float64 times theta, or by the
        integer decoder of docs/integer.md in integer mode."""
        if self.mode == "int":
            return int_code(decode(frames, self.g.coding.beta), theta)
        return decode(frames, self.g.coding.beta) * theta

    def run_node(self, node: Node, env: dict, stats: dict) -> np.ndarray:
        """Run one node on the values in ``env``; returns its output."""
        hook = getattr(op_of(node), "run", None)
        if hook is None:
            raise SwscError("the interpreter cannot run this op", node=node.name, op=node.op)
        return hook(self, node, env, stats)

    def _run_batch(self, feeds, stats, keep_all, decoded: dict | None = None, wanted: set | None = None) -> dict:
        """Run one batch. With ``keep_all`` the returned env holds every value (raw frames);
        otherwise each value is freed after its last reader, so the env ends with the graph
        outputs, and ``decoded`` (if given) collects every tensor (or those in ``wanted``)
        as its quantized integer q."""
        env = dict(feeds)
        for i, node in enumerate(self.order):
            hook = self._hooks[i]
            if hook is None:
                raise SwscError("the interpreter cannot run this op", node=node.name, op=node.op)
            out = node.outputs[0]
            env[out] = hook(self, node, env, stats)
            if decoded is not None and (wanted is None or out in wanted) and \
                    (q := self._decode_one(out, env[out])) is not None:
                decoded[out] = q
            if not keep_all:
                for name in self._dead_after[i]:
                    env.pop(name, None)
        return env

    # -- what the run hooks use
    def scratch(self, key: str, shape, dtype) -> np.ndarray:
        """A work array reused from layer to layer, batch to batch and run to run (``_POOLS``):
        fresh arrays of layer size cost more in page faults (the kernel zeroing new pages)
        than the neuron scan itself (measured on MobileNetV2: system time 0.3-0.4 s per frame).
        Valid until the next call with the same key."""
        dt = np.dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64))
        buf = self._pool.get((key, dt))
        if buf is None or buf.size < n:
            self._pool.pop((key, dt), None)
            buf = self._pool[(key, dt)] = np.empty(n, dt)
        return buf[:n].reshape(shape)

    def stat(self, stats, node, **kw) -> LayerStats:
        """The node's LayerStats in ``stats`` (created with ``kw`` on its first batch)."""
        s = stats.get(node.name)
        if s is None:
            s = stats[node.name] = LayerStats(node.name, node.op, **kw)
        return s

    def lead(self, name) -> int:
        """Leading axes of a runtime value before its batch axis: spike frames carry Tc first."""
        return 1 if self.g.tensors[name].dtype == "spike" else 0

    def weights(self, node) -> tuple:
        """(wq, mult) of a fused layer: its integer weights (float32) and the real multiplier
        per output channel (``Synapse.split_weights``), or (None, None); computed once."""
        w = self._weights.get(node.name)
        if w is None:
            w = self._weights[node.name] = self._split(node)[0]
        return w

    def row_l1(self, node) -> float | None:
        """The largest L1 norm of a row of the layer's integer weights (None without them):
        it bounds every partial sum of a GEMM of its frames."""
        if node.name not in self._row_l1:
            self._row_l1[node.name] = self._split(node)[1]
        return self._row_l1[node.name]

    def _split(self, node) -> tuple:
        """((wq, mult), row_l1) of a layer, from ``_SPLITS`` while the layer's weight tensors
        are the very arrays (and quantization) they were computed from: passes replace a
        tensor's data rather than write into it."""
        tensors = [self.g.tensors[i] for i in node.inputs[1:] if i and i in self.g.tensors]
        token = tuple((t.data, t.quant) for t in tensors if t.is_const)
        key = (node.name, tuple(id(x) for pair in token for x in pair))
        hit = _SPLITS.get(key)
        if hit is not None and all(a is b and q is p for (a, q), (b, p) in zip(hit[0], token)) \
                and len(hit[0]) == len(token):
            return hit[1]
        wq, mult = synapse_of(node).split_weights(self.g, node)
        l1 = None if wq is None else float(np.abs(wq.reshape(len(wq), -1)).sum(axis=1).max())
        if len(_SPLITS) > 4096:
            _SPLITS.clear()
        _SPLITS[key] = (token, ((wq, mult), l1))
        return (wq, mult), l1

    def tsa(self, node, flat, tc, nb):
        """The TSA neuron scan of a fused layer in this mode (runtime/neurons.py)."""
        return self._tsa(self, node, flat, tc, nb)

    def fanout(self, node, in_shapes, w) -> list[np.ndarray]:
        """The synapses each input position reaches (``Synapse.fanout``), computed once."""
        fo = self._fanout.get(node.name)
        if fo is None:
            fo = self._fanout[node.name] = synapse_of(node).fanout(node, in_shapes, w)
        return fo


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
