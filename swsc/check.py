"""`swsc check`: run the compiled network and onnxruntime on the same data and compare.

Outputs are compared in the quantized domain: the integer tensor that feeds each
final DequantizeLinear, exposed from onnxruntime by name. Per layer, the SNN's decoded
tensors are compared with the integer reference evaluator (which stands for
onnxruntime layer by layer), so the first layer that diverges is obvious.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .compiler import compile_graph, import_onnx
from .errors import InvalidModelError, UsageError
from .ir import Graph
from .options import CompileOptions
from .progress import Progress

#: where --backend c runs: this machine, or Cortex-M4 firmware in QEMU (docs/cbackend.md)
TARGETS = ("host", "cortex-m4")


def load_data(path: str | Path, graph: Graph) -> tuple[np.ndarray, np.ndarray | None]:
    """The data-file contract: an .npz with ``x`` (float32 samples on axis 0, each shaped like
    the graph's one input without its batch axis) and optional integer labels ``y``."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"data file '{path}' does not exist")
    if len(graph.inputs) != 1:
        raise UsageError(f"the model has {len(graph.inputs)} inputs ({', '.join(graph.inputs)}); a data file "
                         "feeds one array 'x'", file=graph.meta.get("source"), hint="run multi-input models "
                         "from Python: swsc.runtime.interpreter.run(graph, {input name: array})")
    frame_shape = tuple(graph.tensors[graph.inputs[0]].shape[1:])
    try:
        with np.load(path, allow_pickle=False) as f:
            if "x" not in f:
                raise InvalidModelError(f"has no array 'x' (keys: {', '.join(f.files) or 'none'})",
                                        file=str(path), hint="save inputs as np.savez(path, x=..., y=...)")
            x = np.asarray(f["x"], dtype=np.float32)
            y = np.asarray(f["y"]).astype(np.int64).reshape(-1) if "y" in f else None
    except (OSError, ValueError) as e:
        raise InvalidModelError(f"cannot read as .npz: {e}", file=str(path)) from e
    if x.shape[1:] != tuple(frame_shape):
        if x.shape == tuple(frame_shape):
            x = x[None]
        else:
            raise InvalidModelError(f"'x' has samples of shape {list(x.shape[1:])}, the model takes "
                                    f"{list(frame_shape)}", file=str(path),
                                    hint="x is [samples, *input shape without batch]")
    if len(x) == 0:
        raise InvalidModelError("'x' has no samples", file=str(path))
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.argmax(bad.reshape(len(x), -1).any(axis=1)))
        raise InvalidModelError(f"'x' has {int(bad.sum())} NaN or infinite values (the first in sample {first})",
                                file=str(path), hint="inputs must be finite numbers")
    if y is not None and len(y) != len(x):
        raise InvalidModelError(f"'y' has {len(y)} labels for {len(x)} samples", file=str(path))
    return x, y


def output_quant_tensors(graph: Graph) -> list[str]:
    """For each graph output, the integer tensor that its Dequantize/SwsDecode reads."""
    names = []
    for out in graph.outputs:
        node = graph.producer(out)
        while node is not None and node.op not in ("Dequantize", "SwsDecode"):
            node = graph.producer(node.inputs[0])
        if node is None:
            raise InvalidModelError(f"output '{out}' is not computed from a quantized tensor")
        names.append(node.inputs[0])
    return names


def compare(q: np.ndarray, q_ref: np.ndarray) -> dict:
    d = np.abs(np.rint(q).astype(np.int64) - np.rint(q_ref).astype(np.int64))
    return {"exact_fraction": float((d == 0).mean()) if d.size else 1.0,
            "max_abs_lsb": int(d.max()) if d.size else 0}


def _top1(q: np.ndarray) -> np.ndarray:
    return np.argmax(q.reshape(len(q), -1), axis=1)


def check(model: str | Path, data: str | Path, options: CompileOptions | None = None, *,
          ann: bool = False, mode: str = "float", backend: str = "numpy",
          input_shape: tuple[int, ...] | None = None, progress: bool | None = None,
          limit: int | None = None, target: str = "host") -> dict:
    from swsc.oracle import Oracle
    from swsc.runtime import reference

    graph = import_onnx(model, input_shape)
    x, y = load_data(data, graph)
    if limit:
        x, y = x[:limit], (y[:limit] if y is not None else None)
    qnames = output_quant_tensors(graph)
    oracle = Oracle(model, {n: graph.tensors[n].dtype for n in qnames})
    bar = Progress(len(x), "onnxruntime", enabled=progress)
    ort_out = oracle.run(x, progress=bar)
    bar.close()
    ref = reference.evaluate(graph, x, keep=True)
    q_ort = ort_out[qnames[0]].astype(np.int64)
    report: dict = {"model": Path(model).name, "samples": int(len(x))}

    def summarize(q_model, key):
        c = compare(q_model, q_ort)
        report.update(top1_agreement=float((_top1(q_model) == _top1(q_ort)).mean()), **c)
        if y is not None:
            report["accuracy_ref"] = float((_top1(q_ort) == y).mean())
            report[key] = float((_top1(q_model) == y).mean())

    if ann:
        summarize(ref[qnames[0]], "accuracy_ann")
        return report

    options = (options or CompileOptions()).validate()
    if mode not in ("float", "int") or backend not in ("numpy", "c"):
        raise UsageError(f"unknown mode/backend {mode}/{backend} (float|int, numpy|c)")
    if target not in TARGETS or (target != "host" and backend != "c"):
        raise UsageError(f"--target {target} needs --backend c (targets: {', '.join(TARGETS)})")
    sg = compile_graph(graph, options, integer=mode == "int" or backend == "c")
    sg.meta["source"] = Path(model).name
    bar = Progress(len(x), f"swsc {backend} {mode}", enabled=progress)
    res = _run_backend(sg, x, mode=mode, backend=backend, progress=bar, report=report, target=target)
    bar.close()
    q_snn = res.intermediates[qnames[0]]
    summarize(q_snn, "accuracy_snn")
    report.update({k: v for k, v in res.totals().items()})
    report["options"] = {"tc": options.tc, "ts": options.ts, "beta": options.beta, "encoder": options.encoder,
                         "vth_factor": options.vth_factor}
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


def isolated_layers(sg: Graph, ref: dict[str, np.ndarray]) -> dict[str, dict]:
    """Each spiking layer alone, fed with the reference evaluator's input (teacher forcing).

    The reference stands for onnxruntime layer by layer, so this separates what a layer
    itself gets wrong from what it inherits. Needs theta = 1 (every code is exactly
    codable); other layers are left out.
    """
    from swsc.runtime.interpreter import Interpreter, decode, encode_exact
    it = Interpreter(sg)

    def source(name):
        node = sg.producer(name)
        while node is not None and node.op == "SpikeDelay":
            name = node.inputs[0]
            node = sg.producer(name)
        return name

    out = {}
    for node in it.order:
        if node.op not in ("TsaLayer", "SpikeMaxPool"):
            continue
        n = node.attrs.get("n_inputs", 1)
        names = node.inputs[:n]
        tensors = [sg.tensors[i] for i in names] + [sg.tensors[node.outputs[0]]]
        if any(t.quant.theta != 1.0 for t in tensors) or any(source(i) not in ref for i in names) \
                or node.outputs[0] not in ref:
            continue
        tc, beta = tensors[0].window[1], it._beta()
        env = {i: encode_exact(ref[source(i)].astype(np.float64) - sg.tensors[i].quant.lo, tc, beta, 1.0)
               for i in names}
        frames = getattr(it, "_op_" + node.op)(node, env, {})
        q = decode(frames, beta) + tensors[-1].quant.lo
        out[node.name] = compare(q, ref[node.outputs[0]])
    return out


def _run_backend(sg: Graph, x, *, mode, backend, progress, report, target="host"):
    from swsc.runtime.interpreter import run
    res = run(sg, x, intermediate=True, progress=progress, mode="int" if backend == "c" else mode)
    if backend == "numpy":
        return res
    if target == "cortex-m4":   # the same C as firmware in QEMU (swsc.runtime.firmware)
        from swsc.runtime import firmware
        c_out, counts, creport, fw_stats, fw_sizes = firmware.run_graph(sg, x)
        report.update(target=target, m4_instructions_per_frame=round(fw_stats.instructions_per_frame),
                      m4_flash_bytes=fw_sizes["flash"], m4_ram_bytes=fw_sizes["ram"],
                      m4_stack_bytes=fw_stats.stack_bytes)
    else:
        c_out, counts, creport = run_c(sg, x)
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


def run_c(sg: Graph, x) -> tuple[np.ndarray, dict, object]:
    """Generate C for an integer-lowered graph, build it with the system compiler, run it on x.

    Returns (quantized outputs [N, ...], {layer: (spikes_pos, spikes_neg)}, the CReport).
    """
    import tempfile

    from swsc.runtime import cbackend
    with tempfile.TemporaryDirectory(prefix="swsc-c-") as d:
        creport = cbackend.emit_c(sg, d, prefix="sws", header_info={"model": sg.meta.get("source", sg.name)})
        exe = cbackend.build(d, cc=os.environ.get("CC") or "gcc")
        out, counts = cbackend.run_binary(exe, cbackend.quantize_input(sg, x))
    return out.astype(np.int64), counts, creport
