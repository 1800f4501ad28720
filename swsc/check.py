"""`swsc check`: run the compiled network and onnxruntime on the same data and compare.

Outputs are compared in the quantized domain: the integer tensor that feeds each
final DequantizeLinear, exposed from onnxruntime by name. Per layer, the SNN's decoded
tensors are compared with the integer reference evaluator (which stands for
onnxruntime layer by layer), so the first layer that diverges is obvious.
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
from .runtime import cbackend, firmware, reference
from .runtime.interpreter import Interpreter, decode, encode_exact, run

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
          limit: int | None = None, target: str = "host") -> dict:
    """The ``swsc check`` report (a JSON-able dict); it records every option that shaped the run."""
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
    ref = reference.evaluate(graph, x, keep=True)
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
        summarize(ref[qnames[0]], "accuracy_ann")
        return report

    sg = compile_graph(graph, options, integer=mode == "int" or backend == "c")
    sg.meta["source"] = Path(model).name
    bar = Progress(len(x), f"swsc numpy {mode}", enabled=progress)
    res = _run_backend(sg, x, mode=mode, backend=backend, progress=bar, report=report, progress_on=progress,
                       target=target)
    bar.close()
    q_snn = res.intermediates[qnames[0]]
    summarize(q_snn, "accuracy_snn")
    report.update({k: v for k, v in res.totals().items()})
    report["options"] = options_record(options)
    stats = {s.name: s for s in res.layers}
    alone = isolated_layers(sg, ref)
    layers = []
    for node in sg.topo_order():
        o = node.outputs[0]
        if o not in res.intermediates or o not in ref:
            continue
        entry = {"name": node.name, "op": node.op, "tensor": o, **compare(res.intermediates[o], ref[o])}
        if node.name in alone:
            entry.update({f"isolated_{k}": v for k, v in alone[node.name].items()})
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
    it = Interpreter(sg)

    def source(name):
        node = sg.producer(name)
        while node is not None and op_of(node).pure_delay:
            name = node.inputs[0]
            node = sg.producer(name)
        return name

    out = {}
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
        out[node.name] = compare(q, ref[node.outputs[0]])
    return out


def _run_backend(sg: Graph, x, *, mode, backend, progress, report, progress_on=None, target="host"):
    res = run(sg, x, intermediate=True, progress=progress, mode="int" if backend == "c" else mode)
    if hasattr(progress, "close"):   # one bar at a time: the C steps follow
        progress.close()
    if backend == "numpy":
        return res
    if target == "cortex-m4":   # the same C as firmware in QEMU (swsc.runtime.firmware)
        c_out, counts, creport, fw_stats, fw_sizes = firmware.run_graph(sg, x)
        report.update(m4_instructions_per_frame=round(fw_stats.instructions_per_frame),
                      m4_flash_bytes=fw_sizes["flash"], m4_ram_bytes=fw_sizes["ram"],
                      m4_stack_bytes=fw_stats.stack_bytes)
    else:
        c_out, counts, creport = run_c(sg, x, progress=progress_on)
    qnames = output_quant_tensors(sg)          # the C writes every output, flat, in graph order
    numpy_q = np.concatenate([res.intermediates[q].reshape(len(x), -1) for q in qnames], axis=1).astype(np.int64)
    c_flat = c_out.reshape(len(x), -1)
    same_out = c_flat.shape == numpy_q.shape and bool(np.array_equal(c_flat, numpy_q))
    same_spikes = all(counts.get(s.name) == (s.spikes_pos, s.spikes_neg) for s in res.layers)
    report.update(backend_identical=same_out and same_spikes and len(counts) == len(res.layers),
                  flash_bytes=creport.flash_bytes, ram_bytes=creport.ram_bytes)
    if c_flat.shape == numpy_q.shape:   # onnxruntime is compared with what the C computed
        start = 0
        for q in qnames:
            shape = res.intermediates[q].shape
            size = int(np.prod(shape[1:], dtype=np.int64))
            res.intermediates[q] = c_flat[:, start:start + size].reshape(shape)
            start += size
    return res


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
