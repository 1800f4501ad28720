"""What each `swsc` command does (the parser and the entry point are swsc/cli.py; `swsc raw` is
swsc/raw.py). Each ``cmd_<name>(args)`` returns the exit code; errors are SwscErrors."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx

from . import cliutil
from .check import check, gate_failures, output_quant_tensors, report_lines, resolve_runtime, run_c
from .cliutil import check_limit, compile_options, input_shape, need_file, produce_atomically, write_atomically
from .compiler import compile_graph, import_onnx
from .data import load_data
from .errors import UsageError
from .ops import inputs_of, op_of
from .pareto import table, tune_model
from .passes import LowerToInteger
from .passmanager import IRPrintOptions, PassManager
from .progress import Progress
from .report import render
from .runtime.cbackend import dequantize_output, emit_c
from .runtime.interpreter import BATCH_BYTES, run
from .runtime.memory import memory_budget
from .serialize import SUFFIX, is_ir_model, load, save
from .sweep import AXES, grid_points, parse_values, sweep, table_kind, write_table
from .text import to_text
from .tune import Target


def cmd_compile(a) -> int:
    model = need_file(a.model)
    opts = compile_options(a)
    name, prefix = cliutil.compile_names(a, model)
    cliutil.check_ir_print_passes(a)
    popts = IRPrintOptions(after_all=a.print_ir_after_all, after=set(a.print_ir_after),
                           before=set(a.print_ir_before), dump_dir=a.dump_ir)
    printing = bool(a.print_ir_after_all or a.print_ir_after or a.print_ir_before)
    totals = None
    # a large model takes a while to import and convert: a bar on a terminal says which step runs
    with Progress(4 if a.data else 3, f"swsc compile {model.name}", unit="step", leave=False,
                  enabled=False if printing else None) as bar:
        bar.status("importing")
        graph = import_onnx(model, input_shape(a))
        bar(1)
        bar.status("converting" + (" (and lowering to integer for C)" if a.target == "c" else ""))
        records = []
        sg = compile_graph(graph, opts, print_options=popts, records=records, integer=a.target == "c")
        sg.meta["source"] = model.name
        bar(2)
        if a.data:   # before anything is written: bad data must leave no output behind
            bar.status("running the data")
            x, _ = load_data(a.data, sg)
            totals = (len(x), run(sg, x).totals())
            bar(3)
        bar.status("writing")
        if a.target == "c":
            written, creport = produce_atomically(Path(a.output), lambda tmp: emit_c(
                sg, tmp, prefix=prefix, header_info={"model": model.name, "options": opts.to_json()}))
        else:
            written = write_atomically(Path(a.output), {name + SUFFIX: lambda p: save(sg, p)})
        bar(bar.total)
    layers = [n for n in sg.nodes if op_of(n).neuron_layer]
    params = sum(int(sg.tensors[i].data.size) for n in layers
                 for i in (inputs_of(n).w, inputs_of(n).b))
    print(f"compiled {model.name}: {len(sg.nodes)} nodes, {len(layers)} TSA layers, "
          f"T_inf = {sg.t_inf} steps (Tc={opts.tc}), {params} parameters")
    print("passes: " + ", ".join(f"{r.name} {r.seconds * 1000:.0f} ms" for r in records))
    if a.target == "c":
        if a.prefix is None:
            print(f"C prefix: {prefix} (from the model's name; --prefix NAME to choose)")
        print(creport.format())
    if totals:
        n, t = totals
        print(f"on {n} samples: OPF {t['opf']:.0f} per frame (ANN MACs {t['ann_macs']}), "
              f"spikes +{t['spikes_pos']:.0f}/-{t['spikes_neg']:.0f} per frame")
    for p in written:
        print(f"wrote {p}")
    return 0


def cmd_dump(a) -> int:
    path = need_file(a.file)
    try:
        is_ir = is_ir_model(onnx.load(str(path), load_external_data=False))
    except Exception:
        is_ir = False
    if is_ir:
        g = load(path)
    else:
        g = import_onnx(path, input_shape(a))
    sys.stdout.write(to_text(g))
    return 0


def cmd_run(a) -> int:
    mode, backend = resolve_runtime(False, a.mode, a.backend)
    g = load(need_file(a.file, "IR"))
    if a.output and Path(a.output).is_dir():
        raise UsageError(f"-o '{a.output}' is a directory; give the .npz file to write, e.g. out.npz")
    x, y = load_data(a.data, g)
    outputs, totals = run_outputs(g, x, mode, backend, budget=memory_budget(a.memory_budget, BATCH_BYTES))
    first = outputs[g.outputs[0]]
    predictions = np.argmax(first.reshape(len(first), -1), axis=1)
    summary = {"samples": int(len(x)), "mode": mode, "backend": backend, **totals}
    if y is not None:
        summary["accuracy"] = float((predictions == y).mean())
    if a.output:
        key = "predictions" if "predictions" not in outputs else "swsc_predictions"
        def write(p):
            with open(p, "wb") as f:    # a file object: np.savez would append .npz to a bare path
                np.savez(f, **outputs, **{key: predictions})
        write_atomically(Path(a.output).parent or Path("."), {Path(a.output).name: write})
    if a.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        for k, v in summary.items():
            print(f"{k}: {v}")
    return 0


def run_outputs(g, x, mode: str, backend: str, budget: int | None = None) -> tuple[dict, dict]:
    """({graph output: float array [N, ...]}, summary) of running ``g`` as ``swsc run`` does."""
    if mode == "int" and not g.integer:   # a .sws.onnx holds the network before this pass
        g = PassManager([LowerToInteger()]).run(g)
    if backend == "numpy":
        with Progress(len(x), "swsc run", unit="sample") as bar:
            res = run(g, x, progress=bar, mode=mode, budget=budget)
        return res.outputs, res.totals()
    c_out, counts, creport = run_c(g, x)
    flat, outputs, start = c_out.reshape(len(x), -1), {}, 0
    for i, (name, qname) in enumerate(zip(g.outputs, output_quant_tensors(g))):   # flat, in graph order
        shape = g.tensors[qname].shape[1:]
        size = int(np.prod(shape, dtype=np.int64))
        v = dequantize_output(g, flat[:, start:start + size].reshape(len(x), *shape), i)
        start += size
        node = g.producer(name)
        if node is not None and node.inputs[0] != qname:   # the C stops at the decoder; numpy runs the float tail
            v = op_of(node).run(None, node, {node.inputs[0]: v}, {})
        outputs[name] = v
    n = max(len(x), 1)
    summary = {"spikes_pos": sum(p for p, _ in counts.values()) / n,
               "spikes_neg": sum(q for _, q in counts.values()) / n,
               "flash_bytes": creport.flash_bytes, "ram_bytes": creport.ram_bytes}
    return outputs, summary


def cmd_check(a) -> int:
    model = need_file(a.model)
    need_file(a.data, "data")
    check_limit(a)
    if a.max_lsb is not None and a.max_lsb < 0:
        raise UsageError(f"--max-lsb must be >= 0, got {a.max_lsb}")
    report = check(model, a.data, compile_options(a), ann=a.ann, mode=a.mode, backend=a.backend,
                   input_shape=input_shape(a), limit=a.limit, target=a.target,
                   budget=memory_budget(a.memory_budget, BATCH_BYTES))
    limits = {"min_top1": a.min_top1, "min_exact": a.min_exact, "max_lsb": a.max_lsb}
    failures = gate_failures(report, **limits)
    report["gates"] = {k: v for k, v in limits.items() if v is not None}
    report["gate_failures"] = failures
    if a.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print("\n".join(report_lines(report)))
    if failures:
        print(f"swsc: check failed: {'; '.join(failures)}", file=sys.stderr)
        return 1
    return 0


def cmd_sweep(a) -> int:
    model = need_file(a.model)
    need_file(a.data, "data")
    kind = table_kind(a.output)
    grid = {axis: parse_values(getattr(a, axis), axis) for axis in AXES}
    points = grid_points(grid)   # every value is checked before the first (slow) point runs
    check_limit(a)
    rows = sweep(model, a.data, points, limit=a.limit, input_shape=input_shape(a), beta=a.beta)
    out = Path(a.output)
    write_atomically(out.parent, {out.name: lambda p: write_table(rows, p, data=a.data, limit=a.limit)})
    if not a.quiet:
        print(f"{'Tc':>3} {'Ts':>3} {'vth':>4} {'encoder':>8} {'T_inf':>5} {'acc_snn':>8} {'acc_ann':>8} "
              f"{'agree':>7} {'exact':>7} {'OPF/MACs':>8}")
        for r in rows:
            enc = r["encoder"] + ("" if r["encoder_ts"] is None else f"/{r['encoder_ts']}")
            acc = lambda v: "-" if v is None else f"{100 * v:.2f}"  # noqa: E731
            print(f"{r['tc']:>3} {r['ts']:>3} {r['vth_factor']:>4g} {enc:>8} {r['t_inf']:>5} "
                  f"{acc(r['accuracy_snn']):>8} {acc(r['accuracy_ann']):>8} {100 * r['top1_agreement']:>7.2f} "
                  f"{r['exact_fraction']:>7.4f} {r['opf'] / max(r['ann_macs'], 1):>8.2f}")
    print(f"wrote {out} ({len(rows)} rows, {kind})")
    return 0


def cmd_report(a) -> int:
    for t in a.tables:
        need_file(t, "table")
    notes = need_file(a.notes, "notes").read_text() if a.notes else None
    files, note = render(a.tables, notes=notes, plots=not a.no_plots)
    written = write_atomically(Path(a.output), files)
    if note:
        print(f"swsc: {note}", file=sys.stderr)
    for p in written:
        print(f"wrote {p}")
    return 0


def cmd_tune(a) -> int:
    model = need_file(a.model)
    need_file(a.data, "data")
    if a.test:
        need_file(a.test, "test data")
    for path, flag in ((a.output, "-o"), (a.report, "--report")):
        if path and Path(path).suffix != ".json":
            raise UsageError(f"{flag} writes JSON: give a .json file, not '{path}'")
    if a.max_evals < 1 or (a.limit is not None and a.limit < 1):
        raise UsageError("--max-evals and --limit must be >= 1")
    agreement = a.agreement if a.agreement is not None or a.exact is not None or a.accuracy_drop is not None \
        else 0.99
    target = Target(agreement=agreement, exact=a.exact, accuracy_drop=a.accuracy_drop, against=a.against).validate()
    opts = compile_options(a)
    log = (lambda m: print(m, file=sys.stderr)) if a.json else print
    doc = tune_model(model, a.data, opts, target, test=a.test, holdout=a.holdout, limit=a.limit,
                     input_shape=input_shape(a), max_evals=a.max_evals, uniform=not a.no_uniform,
                     budget=memory_budget(a.memory_budget, BATCH_BYTES), progress=sys.stderr.isatty(), log=log)
    files = {}
    if a.output and doc["schedule"] is not None:
        files[a.output] = json.dumps(doc["schedule"], indent=1) + "\n"
    if a.report:
        files[a.report] = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    for path, text in files.items():
        out = Path(path)
        write_atomically(out.parent, {out.name: lambda p, t=text: Path(p).write_text(t)})
    if a.json:
        print(json.dumps(doc, sort_keys=True))
    else:
        if doc["schedule"] is None:
            print(f"no schedule met the target on the tuning data ({doc['target']})")
        else:
            print(f"tuned T_inf = {doc['t_inf']} ({doc['evaluations']} evaluations, {doc['seconds']:.0f} s); "
                  f"on the tuning data: top-1 agreement {doc['tuning']['agreement']:.4f}, exact outputs "
                  f"{doc['tuning']['exact_fraction']:.4f}")
            print("schedule: " + ", ".join(f"{k}={v}" for k, v in doc["schedule"].items()))
        print(table(doc["uniform"], f"held-out ({doc['holdout']['source']}), uniform Ts:"))
        print(table(doc["front"], "held-out, tuned front:"))
    for path in files:
        print(f"wrote {path}", file=sys.stderr if a.json else sys.stdout)
    return 0 if doc["schedule"] is not None else 1
