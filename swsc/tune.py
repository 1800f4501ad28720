"""`swsc tune`: per-layer silent periods that minimise T_inf under a fidelity target.

The paper gives every TSA layer one silent period ``Ts``, so ``T_inf = Tc + L Ts`` grows
with depth while most layers need no silence at all. The tuner searches per-layer
``{layer: ts}`` schedules on calibration data, cheapest evidence first:

1. **Isolated errors.** Each TSA layer runs alone on the exact quantized ANN's input
   (teacher forcing), once per ``ts`` in ``0..Tc-1``; the fraction of its outputs that
   differ from the ANN's is its own error at that ``ts`` (no end-to-end run needed).
2. **Uniform schedules**, bisected end to end: the smallest uniform ``Ts`` that meets
   the target bounds the answer.
3. **A one-parameter family.** For a tolerance ``tau`` every layer takes the smallest
   ``ts`` whose isolated error is at most ``tau`` (at most the uniform bound); a layer off
   the critical path of ``T_inf`` (a residual shortcut's layer beside its branch) then
   takes the slack its path leaves, since that costs no latency. A bisection over
   ``tau``, run end to end, finds the loosest family member that meets the target.
4. **Greedy repair.** From the best schedule met so far, lower layers by one step where
   that shortens ``T_inf``, least isolated damage first: the ``k`` cheapest together
   (``k`` halving), then single layers; keep each step that still meets the target,
   until a budget of end-to-end evaluations is spent.

The target holds against a reference: the exact quantized ANN (``ann``, the code-domain
graph of the ``rescale`` pass, which the SNN at ``Ts >= Tc - 1`` equals on every element)
or onnxruntime (``ort``). Every candidate's ``T_inf``, fidelity and OPF are kept; among
schedules that meet the target the shortest wins, OPF breaks ties. ``tune`` never
returns a schedule that misses its target on the tuning data (if none does, it says so).
The Pareto front over (``T_inf``, agreement, OPF) and the uniform schedules are then
measured on held-out data (``swsc.pareto``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
from tqdm import tqdm

from .check import output_quant_tensors
from .compiler import compile_graph
from .errors import UsageError
from .ir import Graph
from .ops import inputs_of, op_of
from .options import CompileOptions
from .passes import FoldZeroPoints, Rescale
from .passmanager import PassManager
from .runtime.interpreter import Interpreter, decode, encode_exact

REFERENCES = ("ann", "ort")


@dataclass
class Target:
    """What a schedule must reach on the tuning data (each given bound must hold)."""

    agreement: float | None = 0.99      # top-1 agreement with the reference
    exact: float | None = None          # fraction of output elements equal to the reference's
    accuracy_drop: float | None = None  # with labels: accuracy >= the reference's - this
    against: str = "ann"

    def validate(self) -> "Target":
        if self.against not in REFERENCES:
            raise UsageError(f"--against must be one of {', '.join(REFERENCES)}, got {self.against!r}")
        for name in ("agreement", "exact"):
            v = getattr(self, name)
            if v is not None and not 0 <= v <= 1:
                raise UsageError(f"--{name} must be a fraction in [0, 1], got {v!r}")
        if self.accuracy_drop is not None and not 0 <= self.accuracy_drop <= 1:
            raise UsageError(f"--accuracy-drop must be in [0, 1], got {self.accuracy_drop!r}")
        if self.agreement is None and self.exact is None and self.accuracy_drop is None:
            raise UsageError("give at least one target: --agreement, --exact or --accuracy-drop")
        return self

    def met(self, m: dict) -> bool:
        if self.agreement is not None and m["agreement"] < self.agreement - 1e-12:
            return False
        if self.exact is not None and m["exact_fraction"] < self.exact - 1e-12:
            return False
        if self.accuracy_drop is not None:
            if m.get("accuracy") is None:
                raise UsageError("--accuracy-drop needs labels (y) in the data")
            if m["accuracy"] < m["accuracy_ref"] - self.accuracy_drop - 1e-12:
                return False
        return True

    def describe(self) -> str:
        parts = []
        if self.agreement is not None:
            parts.append(f"top-1 agreement >= {self.agreement:g}")
        if self.exact is not None:
            parts.append(f"exact outputs >= {self.exact:g}")
        if self.accuracy_drop is not None:
            parts.append(f"accuracy >= reference - {self.accuracy_drop:g}")
        return " and ".join(parts) + f" vs {'the exact quantized ANN' if self.against == 'ann' else 'onnxruntime'}"


def exact_ann(graph: Graph, options: CompileOptions) -> Graph:
    """The exact quantized ANN: the code-domain graph after fold-zero-points and rescale."""
    return PassManager([FoldZeroPoints(), Rescale(options)]).run(graph)


def tsa_layers(sg: Graph) -> list[str]:
    return [n.name for n in sg.topo_order() if op_of(n).neuron_layer]


def t_inf(sg: Graph, schedule: dict[str, int]) -> int:
    """T_inf of ``sg`` under ``schedule`` (semantics section 6, as schedule-latencies computes
    it): outputs start where the longest path of silent periods ends."""
    t0: dict[str, int] = {}
    ends = []
    for node in sg.topo_order():
        spikes = [o for o in node.outputs if sg.tensors[o].dtype == "spike"]
        starts = [t0[i] for i in node.inputs if i in t0]
        if not starts:      # the encoder: its trains start where the graph says
            t0.update((o, sg.tensors[o].t0) for o in spikes)
            continue
        start = max(starts)
        if not spikes:      # a decoder: an output ends here
            ends.append(start)
        d = op_of(node)
        # delays are left out (the schedule's own delays replace them); a table layer waits its window
        shift = schedule[node.name] if d.neuron_layer else 0 if d.pure_delay else d.latency(node)
        for o in spikes:
            t0[o] = start + shift
    return sg.coding.tc + max(ends, default=0)


def fill_slack(sg: Graph, schedule: dict[str, int], limit: int) -> dict[str, int]:
    """Raise layers off the critical path as far as T_inf allows (at most ``limit``): a
    shortcut's layer beside a longer branch gets the branch's latency for free."""
    s = dict(schedule)
    base = t_inf(sg, s)
    for name in tsa_layers(sg):
        while s[name] < limit:
            s[name] += 1
            if t_inf(sg, s) > base:
                s[name] -= 1
                break
    return s


@dataclass
class Evaluation:
    schedule: dict[str, int]
    t_inf: int
    metrics: dict
    label: str

    @property
    def opf(self) -> float:
        return self.metrics["opf"]


def metrics_of(q: np.ndarray, q_ref: np.ndarray, y=None) -> dict:
    """Top-1 agreement, exact fraction and max error (LSB) of outputs q against q_ref."""
    top, top_ref = q.reshape(len(q), -1).argmax(1), q_ref.reshape(len(q), -1).argmax(1)
    d = np.abs(np.rint(q).astype(np.int64) - np.rint(q_ref).astype(np.int64))
    m = {"agreement": float((top == top_ref).mean()), "exact_fraction": float((d == 0).mean()),
         "max_abs_lsb": int(d.max()) if d.size else 0}
    if y is not None:
        m.update(accuracy=float((top == y).mean()), accuracy_ref=float((top_ref == y).mean()))
    return m


class Evaluator:
    """One compiled SNN whose silent periods are set per evaluation (SpikeDelay is the
    identity in the interpreter, so one graph serves every schedule), and the reference
    outputs of a data set."""

    def __init__(self, sg: Graph, qname: str, budget=None):
        self.sg, self.qname = sg, qname
        self.it = Interpreter(sg, residuals=False, budget=budget)
        self.nodes = {n.name: n for n in sg.nodes if op_of(n).neuron_layer}

    def outputs(self, schedule: dict[str, int], x) -> tuple[np.ndarray, dict]:
        for name, ts in schedule.items():
            self.nodes[name].attrs["ts"] = int(ts)
        res = self.it.run(x, intermediate={self.qname})
        return res.intermediates[self.qname], res.totals()


def isolated_errors(sg: Graph, ann: Graph, x, *, budget=None, progress=True) -> dict[str, np.ndarray]:
    """For each TSA layer the fraction of its outputs that differ from the exact ANN's when it
    runs alone on the ANN's input, for every ts in 0..Tc-1 (array indexed by ts)."""
    it = Interpreter(sg, residuals=False, budget=budget)
    ann_it = Interpreter(ann, budget=budget)
    layers = [n for n in it.order if op_of(n).neuron_layer]
    tc = sg.coding.tc
    beta = sg.coding.beta
    wrong = {n.name: np.zeros(tc) for n in layers}
    total = {n.name: 0 for n in layers}
    # one batch holds the ANN's every tensor and one SNN layer's working set: half the budget each
    batch = max(1, min(ann_it.default_batch(True), it.default_batch()) // 2)
    saved = {n.name: n.attrs["ts"] for n in layers}
    bar = tqdm(total=len(x) * len(layers), desc="isolated layers", unit="layer-frame", disable=not progress,
               leave=False)
    try:
        for start in range(0, len(x), batch):
            xb = x[start:start + batch]
            ref = ann_it.run(xb, intermediate=True).intermediates
            for node in layers:
                env = {}
                for i in inputs_of(node).x:
                    q = sg.tensors[i].quant
                    env[i] = encode_exact(ref[i] - q.lo, tc, beta, q.theta or 1.0)
                out = sg.tensors[node.outputs[0]].quant
                for ts in range(tc):
                    node.attrs["ts"] = ts
                    frames = it.run_node(node, env, {})
                    q = decode(frames, beta) * (out.theta or 1.0) + out.lo
                    bad = np.count_nonzero(np.rint(q) != np.rint(ref[node.outputs[0]]))
                    wrong[node.name][ts] += bad
                    if bad == 0:
                        # a layer exact at ts sees its whole input no later at ts + 1: taken as
                        # exact from here (end-to-end runs confirm every schedule anyway)
                        break
                total[node.name] += ref[node.outputs[0]].size
                bar.update(len(xb))
            del ref
    finally:
        for n in layers:
            n.attrs["ts"] = saved[n.name]
        bar.close()
    return {k: wrong[k] / max(total[k], 1) for k in wrong}


def family(errors: dict[str, np.ndarray], tau: float) -> dict[str, int]:
    """Each layer's smallest ts whose isolated error is at most tau (Tc - 1 if none is)."""
    out = {}
    for name, e in errors.items():
        ok = np.nonzero(e <= tau + 1e-15)[0]
        out[name] = int(ok[0]) if len(ok) else len(e) - 1
    return out


@dataclass
class TuneResult:
    best: Evaluation | None
    evaluations: list[Evaluation]
    errors: dict[str, np.ndarray]
    target: Target
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


class Tuner:
    def __init__(self, graph: Graph, x, y, options: CompileOptions, target: Target, *, q_ort=None,
                 budget=None, progress=True):
        self.options = options.validate()
        self.target = target.validate()
        self.x, self.y = x, y
        self.progress = progress
        self.qname = output_quant_tensors(graph)[0]
        self.sg = compile_graph(graph, replace(self.options, ts=0))
        self.ann = exact_ann(graph, self.options)
        self.layers = tsa_layers(self.sg)
        self.tc = self.options.tc
        self.budget = budget
        self.ev = Evaluator(self.sg, self.qname, budget)
        q_ann = Interpreter(self.ann, budget=budget).run(x, intermediate={self.qname}).intermediates[self.qname]
        if target.against == "ort":
            if q_ort is None:
                raise UsageError("--against ort needs onnxruntime's outputs")
            self.q_ref = q_ort
        else:
            self.q_ref = q_ann
        self.cache: dict[tuple, Evaluation] = {}

    def key(self, schedule) -> tuple:
        return tuple(int(schedule[n]) for n in self.layers)

    def evaluate(self, schedule: dict[str, int], label: str) -> Evaluation:
        k = self.key(schedule)
        if k not in self.cache:
            q, totals = self.ev.outputs(schedule, self.x)
            m = metrics_of(q, self.q_ref, self.y)
            m["opf"] = totals["opf"]
            self.cache[k] = Evaluation(dict(schedule), t_inf(self.sg, schedule), m, label)
        return self.cache[k]

    def better(self, a: Evaluation | None, b: Evaluation) -> bool:
        """Is b a better answer than a: meets the target, shorter, then fewer operations."""
        if not self.target.met(b.metrics):
            return False
        return a is None or (b.t_inf, b.opf) < (a.t_inf, a.opf)

    def run(self, max_evals: int = 40) -> TuneResult:
        t_start = time.perf_counter()
        errors = isolated_errors(self.sg, self.ann, self.x, budget=self.budget, progress=self.progress)
        bar = tqdm(total=max_evals, desc="tune (end to end)", unit="eval", disable=not self.progress, leave=False)
        best: Evaluation | None = None

        def consider(schedule, label) -> Evaluation:
            nonlocal best
            before = len(self.cache)
            e = self.evaluate(schedule, label)
            if self.better(best, e):
                best = e
            if len(self.cache) > before:
                bar.update(1)
                bar.set_postfix(T_inf=best.t_inf if best else "-")
            return e

        def improves(schedule, label) -> bool:
            """Evaluate; did it become the best answer?"""
            prev = best
            consider(schedule, label)
            return best is not prev

        def spent():
            return len(self.cache) >= max_evals

        # uniform schedules: bisect for the smallest uniform Ts that meets the target
        lo, hi = 0, self.tc - 1
        uniform = lambda ts: {n: ts for n in self.layers}  # noqa: E731
        while lo < hi and not spent():
            mid = (lo + hi) // 2
            if self.target.met(consider(uniform(mid), f"uniform Ts={mid}").metrics):
                hi = mid
            else:
                lo = mid + 1
        consider(uniform(hi), f"uniform Ts={hi}")
        # the tolerance family, capped at the best uniform Ts (so every member is at most as
        # long), bisected over its distinct schedules (loose to strict)
        cap = hi if best is not None else self.tc - 1
        taus = sorted({float(v) for e in errors.values() for v in e}, reverse=True)
        members, seen = [], set()
        for tau in taus:
            s = {n: min(ts, cap) for n, ts in family(errors, tau).items()}
            s = fill_slack(self.sg, s, self.tc - 1)
            if self.key(s) not in seen:
                seen.add(self.key(s))
                members.append((tau, s))
        lo, hi = 0, len(members) - 1
        while lo < hi and not spent():
            mid = (lo + hi) // 2
            tau, s = members[mid]
            if self.target.met(consider(s, f"family tau={tau:.3g}").metrics):
                hi = mid
            else:
                lo = mid + 1
        if members and not spent():
            consider(members[hi][1], f"family tau={members[hi][0]:.3g}")
        # greedy: lower layers by one step, least isolated damage first: the k cheapest
        # together (k halving from all of them, as deep networks have many layers to lower),
        # then the others one at a time
        improved = best is not None
        while improved and not spent():
            improved = False
            cur = best.schedule
            moves = []
            for n in self.layers:
                if cur[n] == 0:
                    continue
                s = dict(cur)
                s[n] -= 1
                if t_inf(self.sg, s) < best.t_inf:
                    moves.append((errors[n][s[n]] - errors[n][cur[n]], n))
            moves.sort()
            k = len(moves)
            while k > 1 and not improved and not spent():
                s = dict(cur)
                for _, n in moves[:k]:
                    s[n] -= 1
                improved = improves(s, f"greedy {k} layers -1")
                k //= 2
            for _, n in moves:
                if improved or spent():
                    break
                s = dict(cur)
                s[n] -= 1
                improved = improves(s, f"greedy {n}={s[n]}")
        bar.close()
        notes = []
        if best is None:
            notes.append(f"no schedule met the target ({self.target.describe()}) on the tuning data")
        return TuneResult(best, list(self.cache.values()), errors, self.target,
                          time.perf_counter() - t_start, notes)
