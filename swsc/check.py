"""`swsc check`: run the compiled network and onnxruntime on the same data and compare.

Outputs are compared in the quantized domain: the integer tensor that feeds each
final DequantizeLinear, exposed from onnxruntime by name. Per layer, the SNN's decoded
tensors are compared with the integer reference evaluator (which stands for
onnxruntime layer by layer), so the first layer that diverges is obvious.

Samples stream through the reference and the runtime in chunks sized from the runtime's
memory budget (SWSC_MEMORY_BUDGET, or ``budget=``): each chunk's tensors are compared and
dropped, so memory does not grow with the number of samples.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .compiler import compile_graph, import_onnx
from .data import load_data
from .errors import InvalidModelError, UsageError
from .ir import Graph
from .ops import op_of
from .options import CompileOptions
from .oracle import Oracle
from .progress import Progress
from .runtime import cbackend, firmware, memory, reference
from .runtime.interpreter import BATCH_BYTES, Interpreter, RunResult, decode, encode_exact

#: where --backend c runs: this machine, or Cortex-M4 firmware in QEMU (docs/cbackend.md)
TARGETS = ("host", "cortex-m4")


def output_quant_tensors(graph: Graph) -> list[str]:
    """For each graph output, the integer tensor that its Dequantize/SwsDecode reads: up through
    the float tail (Softmax) to the node that turns a quantized tensor into a float one."""
    def dequantizes(node):
        return graph.tensors[node.inputs[0]].quant is not None and graph.tensors[node.outputs[0]].quant is None

    names = []
    for out in graph.outputs:
        node = graph.producer(out)
        while node is not None and not dequantizes(node):
            node = graph.producer(node.inputs[0])
        if node is None:
            raise InvalidModelError(f"output '{out}' is not computed from a quantized tensor")
        names.append(node.inputs[0])
    return names


def load_model_data(model, data, input_shape: tuple[int, ...] | None = None,
                    limit: int | None = None) -> tuple[Graph, np.ndarray, np.ndarray | None]:
    """(imported model, x, y) of a model and its data file, x and y cut to the first ``limit`` samples."""
    graph = import_onnx(model, input_shape)
    x, y = load_data(data, graph)
    if limit:
        x, y = x[:limit], (y[:limit] if y is not None else None)
    return graph, x, y


def compare(q: np.ndarray, q_ref: np.ndarray) -> dict:
    d = np.abs(np.rint(q).astype(np.int64) - np.rint(q_ref).astype(np.int64))
    return {"exact_fraction": float((d == 0).mean()) if d.size else 1.0,
            "max_abs_lsb": int(d.max()) if d.size else 0}


def _top1(q: np.ndarray) -> np.ndarray:
    return np.argmax(q.reshape(len(q), -1), axis=1)


def resolve_runtime(ann: bool, mode: str | None, backend: str | None) -> tuple[str | None, str | None]:
    """(mode, backend) that ``check`` runs, or a usage error for a combination that cannot apply.

    ``None`` means "not given": the backend defaults to numpy, the mode to float (int for C,
    which is integer only). ``ann`` checks the reference evaluator, which has neither.
    """
    if mode not in (None, "float", "int") or backend not in (None, "numpy", "c"):
        raise UsageError(f"unknown mode/backend {mode}/{backend} (--mode float|int, --backend numpy|c)")
    if ann:
        if mode is not None or backend not in (None, "numpy"):
            given = " ".join(f"--{k} {v}" for k, v in (("mode", mode), ("backend", backend)) if v)
            raise UsageError(f"--ann checks the integer reference evaluator, which has no runtime: drop {given} "
                             "(or drop --ann to check that runtime)")
        return None, None
    backend = backend or "numpy"
    if backend == "c" and mode == "float":
        raise UsageError("--backend c runs the integer-only C code, so --mode float cannot apply "
                         "(drop --mode, or give --mode int)")
    return mode or ("int" if backend == "c" else "float"), backend


def check(model: str | Path, data: str | Path, options: CompileOptions | None = None, *,
          ann: bool = False, mode: str | None = None, backend: str | None = None,
          input_shape: tuple[int, ...] | None = None, progress: bool | None = None,
          limit: int | None = None, target: str = "host", budget: int | str | None = None,
          chunk: int | None = None) -> dict:
    """The ``swsc check`` report (a JSON-able dict); it records every option that shaped the run.

    The samples stream through the reference and the runtime ``chunk`` at a time (default: as
    many as the memory ``budget`` holds, see ``check_chunk``), the per-layer agreement
    accumulated over the chunks, so memory does not grow with the number of samples; only the
    outputs of every sample are kept."""
    mode, backend = resolve_runtime(ann, mode, backend)
    if target not in TARGETS or (target != "host" and backend != "c"):
        raise UsageError(f"--target {target} needs --backend c (targets: {', '.join(TARGETS)})")
    options = (options or CompileOptions()).validate()
    graph, x, y = load_model_data(model, data, input_shape, limit)
    qnames = output_quant_tensors(graph)
    oracle = Oracle(model, {n: graph.tensors[n].dtype for n in qnames})
    bar = Progress(len(x), "onnxruntime", enabled=progress)
    ort_out = oracle.run(x, progress=bar)
    bar.close()
    q_ort = ort_out[qnames[0]].astype(np.int64)
    report: dict = {"model": Path(model).name, "data": Path(data).name, "samples": int(len(x)), "limit": limit,
                    "input_shape": list(input_shape) if input_shape else None,
                    "ann": bool(ann), "mode": mode, "backend": backend, "target": target}

    def summarize(q_model, key):
        c = compare(q_model, q_ort)
        differ = _top1(q_model) != _top1(q_ort)
        report.update(top1_agreement=float(1 - differ.mean()), top1_differing=int(differ.sum()), **c,
                      output_elements=int(q_ort.size),
                      output_elements_differing=int((np.rint(q_model) != q_ort).sum()))
        if y is not None:
            report["accuracy_ref"] = float((_top1(q_ort) == y).mean())
            report[key] = float((_top1(q_model) == y).mean())

    if ann:
        step = chunk or max(1, memory.memory_budget(budget, BATCH_BYTES) // reference_bytes(graph))
        summarize(np.concatenate([reference.evaluate(graph, x[i:i + step], keep=True)[qnames[0]]
                                  for i in range(0, len(x), step)]), "accuracy_ann")
        return report

    sg = compile_graph(graph, options, integer=mode == "int" or backend == "c")
    sg.meta["source"] = Path(model).name
    it = Interpreter(sg, "int" if backend == "c" else mode, budget=budget)
    bar = Progress(len(x), f"swsc numpy {mode}", enabled=progress)
    streamed = _stream(graph, sg, it, x, chunk or check_chunk(it, graph), set(qnames) | set(output_quant_tensors(sg)),
                       bar)
    bar.close()
    res = RunResult({}, list(streamed.stats.values()), len(x), it.t_inf)
    _run_backend(sg, x, res, streamed.outputs, backend=backend, report=report, progress_on=progress, target=target)
    summarize(streamed.outputs[qnames[0]], "accuracy_snn")
    report.update({k: v for k, v in res.totals().items()})
    report["options"] = options_record(options)
    stats = {s.name: s for s in res.layers}
    layers = []
    for node in sg.topo_order():
        o = node.outputs[0]
        if o not in streamed.layers:
            continue
        # the outputs are compared whole, after the C backend (if any) replaced them with its own
        agree = compare(streamed.outputs[o], streamed.ref_outputs[o]) if o in streamed.outputs \
            else streamed.layers[o].result()
        entry = {"name": node.name, "op": node.op, "tensor": o, **agree}
        if node.name in streamed.isolated:
            entry.update({f"isolated_{k}": v for k, v in streamed.isolated[node.name].result().items()})
        s = stats.get(node.name)
        if s is not None:
            n = max(len(x), 1)
            entry.update(spikes_pos=s.spikes_pos / n, spikes_neg=s.spikes_neg / n, ts=s.ts)
            if s.in_range or s.clamped:
                entry.update(residual_abs_mean=s.residual_abs_sum / max(s.in_range, 1),
                             residual_abs_max=s.residual_abs_max,
                             clamped_fraction=s.clamped / (s.in_range + s.clamped))
        layers.append(entry)
    report["layers"] = layers
    return report


class Agreement:
    """``compare`` accumulated over chunks of samples: equal to ``compare`` of the chunks
    concatenated (the exact fraction is a count over a count, as the mean of 0/1 is)."""

    def __init__(self):
        self.exact = self.size = self.max = 0

    def add(self, q: np.ndarray, q_ref: np.ndarray) -> None:
        d = np.abs(np.rint(q).astype(np.int64) - np.rint(q_ref).astype(np.int64))
        self.exact += int(np.count_nonzero(d == 0))
        self.size += int(d.size)
        self.max = max(self.max, int(d.max()) if d.size else 0)

    def result(self) -> dict:
        return {"exact_fraction": self.exact / self.size if self.size else 1.0, "max_abs_lsb": self.max}


def reference_bytes(graph: Graph) -> int:
    """Bytes per sample the reference evaluator keeps with ``keep=True`` (every tensor, counted
    at 8 bytes an element, the widest it holds)."""
    return max(1, sum(8 * int(np.prod(t.shape[1:], dtype=np.int64)) for t in graph.tensors.values()
                      if not t.is_const and t.shape))


def check_chunk(it: Interpreter, graph: Graph) -> int:
    """Samples per chunk of ``check``: what the interpreter's memory budget holds of one sample
    through the runtime with every tensor decoded, plus the reference's tensors of it."""
    return int(max(1, it.budget // (it.sample_bytes(True) + reference_bytes(graph))))


class _Streamed:
    """What ``_stream`` accumulates: the layer statistics, per-tensor and per-isolated-layer
    agreement, and the runtime's and the reference's ``outputs`` (tensors in full)."""

    def __init__(self):
        self.stats: dict = {}
        self.layers: dict[str, Agreement] = {}
        self.isolated: dict[str, Agreement] = {}
        self.outputs: dict[str, list | np.ndarray] = {}
        self.ref_outputs: dict[str, list | np.ndarray] = {}


def _stream(graph: Graph, sg: Graph, it: Interpreter, x: np.ndarray, chunk: int, keep: set[str], bar) -> _Streamed:
    """The reference and the runtime ``it`` on ``x``, ``chunk`` samples at a time: every decoded
    tensor of a chunk is compared with the reference and dropped, except those in ``keep``."""
    out = _Streamed()
    iso = Interpreter(sg)      # teacher forcing runs in float mode whatever the checked mode
    batch = min(it.default_batch(True), chunk)
    for start in range(0, len(x), chunk):
        part = x[start:start + chunk]
        ref = reference.evaluate(graph, part, keep=True)
        res = it.run(part, intermediate=True, batch=batch, stats=out.stats,
                     progress=lambda done, s=start: bar(s + done))
        for name, q in res.intermediates.items():
            if name not in ref:
                continue
            out.layers.setdefault(name, Agreement()).add(q, ref[name])
            if name in keep:
                out.outputs.setdefault(name, []).append(q)
                out.ref_outputs.setdefault(name, []).append(ref[name])
        _isolated(sg, iso, ref, out.isolated)
        del ref, res
    out.outputs = {k: np.concatenate(v) for k, v in out.outputs.items()}
    out.ref_outputs = {k: np.concatenate(v) for k, v in out.ref_outputs.items()}
    return out


def options_record(options: CompileOptions) -> dict:
    """Every conversion option, as the report records it."""
    return {"tc": options.tc, "ts": options.ts, "beta": options.beta, "encoder": options.encoder,
            "encoder_ts": options.encoder_ts, "vth_factor": options.vth_factor, "ts_default": options.ts_default}


def isolated_layers(sg: Graph, ref: dict[str, np.ndarray]) -> dict[str, dict]:
    """Each spiking layer alone, fed with the reference evaluator's input (teacher forcing).

    The reference stands for onnxruntime layer by layer, so this separates what a layer
    itself gets wrong from what it inherits. Needs theta = 1 (every code is exactly
    codable); other layers are left out.
    """
    acc: dict[str, Agreement] = {}
    _isolated(sg, Interpreter(sg), ref, acc)
    return {name: a.result() for name, a in acc.items()}


def _isolated(sg: Graph, it: Interpreter, ref: dict[str, np.ndarray], acc: dict[str, Agreement]) -> None:
    """``isolated_layers`` on one chunk of samples, added to ``acc`` (by layer name)."""
    def source(name):
        node = sg.producer(name)
        while node is not None and op_of(node).pure_delay:
            name = node.inputs[0]
            node = sg.producer(name)
        return name

    for node in it.order:
        d = op_of(node)
        if not (d.spike_inputs and d.spike_output) or d.pure_delay:   # the spiking layers
            continue
        names = [i for i in node.inputs if i and not sg.tensors[i].is_const]
        tensors = [sg.tensors[i] for i in names] + [sg.tensors[node.outputs[0]]]
        if any(t.quant.theta != 1.0 for t in tensors) or any(source(i) not in ref for i in names) \
                or node.outputs[0] not in ref:
            continue
        tc, beta = sg.coding.tc, sg.coding.beta
        env = {i: encode_exact(ref[source(i)].astype(np.float64) - sg.tensors[i].quant.lo, tc, beta, 1.0)
               for i in names}
        frames = it.run_node(node, env, {})
        q = decode(frames, beta) + tensors[-1].quant.lo
        acc.setdefault(node.name, Agreement()).add(q, ref[node.outputs[0]])


def _run_backend(sg: Graph, x, res, outputs: dict, *, backend, report, progress_on=None, target="host"):
    """With the C backend: run the C on ``x``, compare it with the numpy run (``res``'s spike
    counts, the decoded ``outputs``), and put the C's outputs in ``outputs``."""
    if backend == "numpy":
        return
    if target == "cortex-m4":   # the same C as firmware in QEMU (swsc.runtime.firmware)
        c_out, counts, creport, fw_stats, fw_sizes = firmware.run_graph(sg, x)
        report.update(m4_instructions_per_frame=round(fw_stats.instructions_per_frame),
                      m4_flash_bytes=fw_sizes["flash"], m4_ram_bytes=fw_sizes["ram"],
                      m4_stack_bytes=fw_stats.stack_bytes)
    else:
        c_out, counts, creport = run_c(sg, x, progress=progress_on)
    qnames = output_quant_tensors(sg)          # the C writes every output, flat, in graph order
    numpy_q = np.concatenate([outputs[q].reshape(len(x), -1) for q in qnames], axis=1).astype(np.int64)
    c_flat = c_out.reshape(len(x), -1)
    same_out = c_flat.shape == numpy_q.shape and bool(np.array_equal(c_flat, numpy_q))
    same_spikes = all(counts.get(s.name) == (s.spikes_pos, s.spikes_neg) for s in res.layers)
    report.update(backend_identical=same_out and same_spikes and len(counts) == len(res.layers),
                  flash_bytes=creport.flash_bytes, ram_bytes=creport.ram_bytes)
    if c_flat.shape == numpy_q.shape:   # onnxruntime is compared with what the C computed
        start = 0
        for q in qnames:
            shape = outputs[q].shape
            size = int(np.prod(shape[1:], dtype=np.int64))
            outputs[q] = c_flat[:, start:start + size].reshape(shape)
            start += size


def run_c(sg: Graph, x, *, progress: bool | None = None) -> tuple[np.ndarray, dict, object]:
    """Generate C for an integer-lowered graph, build it with the system compiler (``$CC``,
    default gcc), run it on x; ``progress`` shows the three steps (default: on a terminal).

    Returns (quantized outputs [N, ...], {layer: (spikes_pos, spikes_neg)}, the CReport).
    """
    cc = os.environ.get("CC") or "gcc"
    bar = Progress(3, "swsc C", enabled=progress, unit="step", leave=False)
    with tempfile.TemporaryDirectory(prefix="swsc-c-") as d:
        bar.status("generating C")
        creport = cbackend.emit_c(sg, d, prefix="sws", header_info={"model": sg.meta.get("source", sg.name)})
        bar(1)
        bar.status(f"building with {cc}")
        exe = cbackend.build(d, cc=cc)
        bar(2)
        bar.status(f"running {exe.name} on {len(x)} samples")
        out, counts = cbackend.run_binary(exe, cbackend.quantize_input(sg, x))
        bar(3)
    bar.close()
    return out.astype(np.int64), counts, creport


#: CI gates of ``swsc check``: option -> (report key, "min"/"max", what it measures)
GATES = {
    "min_top1": ("top1_agreement", "min", "top-1 agreement with onnxruntime"),
    "min_exact": ("exact_fraction", "min", "fraction of output elements equal to onnxruntime's"),
    "max_lsb": ("max_abs_lsb", "max", "largest output difference from onnxruntime, in LSB"),
}


def gate_failures(report: dict, **limits) -> list[str]:
    """One reason per gate in ``limits`` (keys of GATES; None = not set) that ``report`` fails."""
    out = []
    for opt, limit in limits.items():
        if limit is None:
            continue
        key, kind, what = GATES[opt]
        v = report[key]
        if (v < limit) if kind == "min" else (v > limit):
            flag = "--" + opt.replace("_", "-")
            detail = {"top1_agreement": f" ({report['top1_differing']} of {report['samples']} samples differ)",
                      "exact_fraction": f" ({report['output_elements_differing']} of {report['output_elements']} "
                                        "elements differ)"}.get(key, "")
            out.append(f"{what} is {fraction_text(v) if kind == 'min' else v}{detail}, "
                       f"{'below' if kind == 'min' else 'above'} {flag} {limit:g}")
    return out


def fraction_text(v: float, digits: int = 5) -> str:
    """A fraction in [0, 1] that never rounds a difference away: 0.999996 is '>0.99999', not '1'."""
    if v in (0, 1):
        return str(int(v))
    s = f"{v:.{digits}f}"
    if s == f"{1:.{digits}f}":
        return ">" + f"{1 - 10 ** -digits:.{digits}f}"
    if s == f"{0:.{digits}f}":
        return "<" + f"{10 ** -digits:.{digits}f}"
    return s.rstrip("0")


def _value_text(k: str, v, short: bool = False) -> str:
    if isinstance(v, float) and (k.endswith(("fraction", "agreement")) or k.startswith("accuracy")):
        return fraction_text(v)
    return f"{v:.4g}" if short and isinstance(v, float) else str(v)


def report_lines(report: dict) -> list[str]:
    """The text form of a check report: 'key: value' lines, then one line per layer."""
    lines = [f"{k}: {_value_text(k, v)}" for k, v in report.items() if k != "layers"]
    for layer in report.get("layers", []):
        extra = "".join(f" {k}={_value_text(k, v, short=True)}" for k, v in layer.items()
                        if k not in ("name", "op", "tensor"))
        lines.append(f"  {layer.get('op', ''):12s} {layer.get('name', layer.get('tensor'))}:{extra}")
    return lines
