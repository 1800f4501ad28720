"""The `swsc` command line.

Exit codes: 0 success, 1 a compile/model/data error, 2 a usage error. Errors are one
line on stderr; ``--debug`` adds the traceback. Outputs are written atomically, so a
failed command leaves no half-written files.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

import numpy as np

from . import __version__, cliutil
from . import raw as _raw
from .errors import SwscError, SwscWarning, UsageError
from .options import ENCODERS, CompileOptions, parse_ts

EPILOG = """examples:
  swsc compile samples/lenet5_mnist_qdq.onnx -o out/         compile to out/lenet5_mnist_qdq.sws.onnx
  swsc compile model.onnx --tc 8 --ts 7 --print-ir-after-all  show the IR after every pass
  swsc dump out/lenet5_mnist_qdq.sws.onnx                      print a compiled graph
  swsc check model.onnx --data test.npz --json                 SNN vs onnxruntime
  swsc run out/model.sws.onnx --data test.npz -o y.npz        run a compiled network
  swsc sweep model.onnx --data test.npz --tc 4..8 --ts 0..3 -o t.json   accuracy/OPF over a grid
  swsc report t.json -o results/                               plots and report.md from sweep tables
  swsc tune model.onnx --data cal.npz -o ts.json               per-layer silent periods for --ts
  swsc raw model.onnx --data test.npz -o in.bin                 samples as the C harness's raw input
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump; main() adds the --help pointer
        raise UsageError(message)


def _add_compile_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("conversion options (semantics: docs/semantics.md)")
    g.add_argument("--tc", type=int, default=8, help="coding steps Tc per spike train (default 8)")
    g.add_argument("--ts", type=parse_ts, default=2,
                   help="silent period of every TSA layer: N, a list 'N,N,...' (one per TSA layer in "
                        "order) or a .json file {layer: N} (default 2)")
    g.add_argument("--beta", type=float, default=2.0, help="amplification factor beta > 1 (default 2)")
    g.add_argument("--encoder", choices=ENCODERS, default="exact",
                   help="input encoder: exact MSB-first code (default) or the paper's TSA encoder")
    g.add_argument("--encoder-ts", type=int, default=None,
                   help="silent period of the tsa encoder (default 1; only with --encoder tsa)")
    g.add_argument("--vth-factor", type=float, default=0.5,
                   help="threshold as a fraction of theta*beta^Ts: 0.5 lowered (default), 1.0 = not lowered")
    g.add_argument("--input-shape", default=None,
                   help="static input shape 'N,C,H,W' for models with symbolic dimensions")
    g.add_argument("--membrane-bits", type=int, default=32,
                   help="integer mode and C: membranes must provably fit this many bits (16-64; default 32, "
                        "int32_t; above 32 the C uses int64_t)")


def _options(a) -> CompileOptions:
    if a.encoder_ts is not None and a.encoder != "tsa":
        raise UsageError(f"--encoder-ts is the silent period of the tsa encoder; --encoder {a.encoder} has none "
                         "(add --encoder tsa, or drop --encoder-ts)")
    return CompileOptions(tc=a.tc, ts=a.ts, beta=a.beta, encoder=a.encoder,
                          encoder_ts=1 if a.encoder_ts is None else a.encoder_ts, vth_factor=a.vth_factor,
                          membrane_bits=getattr(a, "membrane_bits", 32)).validate()


def _input_shape(a):
    if not getattr(a, "input_shape", None):
        return None
    from .frontend import parse_input_shape
    return parse_input_shape(a.input_shape)


def _need_file(path: str, what: str = "model") -> Path:
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{what} file '{path}' is a directory", hint=f"give the {what} file itself")
    if not p.is_file():
        raise UsageError(f"{what} file '{path}' does not exist")
    return p


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="swsc", description="Stepwise Weighted Spike compiler: quantized ONNX models to "
                "SWS-coded spiking networks (numpy runtime, generated C).", epilog=EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"swsc {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    c = sub.add_parser("compile", help="compile a quantized ONNX model to an SWS network",
                       description="Import a quantized ONNX model (QDQ, QOperator or PyTorch QAT export), "
                       "convert it to an SWS spiking network and write OUT/<name>.sws.onnx.")
    c.add_argument("model", help="quantized .onnx model")
    c.add_argument("-o", "--output", default="out", help="output directory (default ./out)")
    c.add_argument("--name", help="output base name, a plain file name written inside -o (default: the model "
                                  "file's stem)")
    c.add_argument("--target", choices=("numpy", "c"), default="numpy",
                   help="numpy: write <name>.sws.onnx for swsc run/dump (default); c: write integer-only "
                        "C99 for firmware (<prefix>.h/.c, weights, float helpers, main.c, Makefile) "
                        "and print its flash/RAM report")
    c.add_argument("--prefix", help="C symbol prefix (--target c), so several models link into one firmware: "
                                    "a letter, then at most 23 letters, digits or '_', not ending in '_'; used "
                                    "as given, never rewritten (default: --name or the model file's stem)")
    _add_compile_options(c)
    c.add_argument("--data", help="optional .npz (x[, y]) or .npy (x) to report spikes and OPF per frame")
    c.add_argument("--print-ir-after-all", action="store_true", help="print the IR after every pass (stderr)")
    c.add_argument("--print-ir-after", action="append", default=[], metavar="PASS",
                   help="print the IR after PASS (repeatable)")
    c.add_argument("--print-ir-before", action="append", default=[], metavar="PASS",
                   help="print the IR before PASS (repeatable)")
    c.add_argument("--dump-ir", metavar="DIR", help="write the IR after each pass to DIR/NN_<pass>.ir")

    d = sub.add_parser("dump", help="print the text IR of a .sws.onnx file or of an imported model",
                       description="Print the text IR: of a compiled .sws.onnx file, or of a quantized "
                       ".onnx model as the front-end reads it (the canonical quantized graph).")
    d.add_argument("file")
    d.add_argument("--input-shape", default=None, help="static input shape for symbolic dimensions")

    r = sub.add_parser("run", help="run a compiled .sws.onnx network on data",
                       description="Run a compiled network on the samples of an .npz file (x[, y]).")
    r.add_argument("file", help="compiled .sws.onnx file")
    r.add_argument("--data", required=True,
                   help=".npz with x (float32 samples) and optional y (labels), or an .npy of samples")
    r.add_argument("-o", "--output", help="write the outputs (one array per graph output) and 'predictions' "
                                          "(argmax of the first output per sample) to this .npz")
    r.add_argument("--mode", choices=("float", "int"), default=None,
                   help="numpy runtime mode: float (default) or int (the integer arithmetic of the C)")
    r.add_argument("--backend", choices=("numpy", "c"), default=None,
                   help="numpy (default) or c: generate, build ($CC, default gcc) and run the C")
    r.add_argument("--json", action="store_true", help="print one JSON object")

    k = sub.add_parser("check", help="compare the compiled network (or the ANN evaluator) with onnxruntime",
                       description="Compile MODEL, run it and onnxruntime's quantized model on the same "
                       "data, and report agreement, accuracy, latency, OPF and spikes, per layer too.")
    k.add_argument("model", help="quantized .onnx model")
    k.add_argument("--data", required=True,
                   help=".npz with x (float32 samples) and optional y (labels), or an .npy of samples")
    k.add_argument("--ann", action="store_true", help="check the integer reference evaluator instead of the SNN")
    k.add_argument("--mode", choices=("float", "int"), default=None,
                   help="numpy runtime mode (default float; the C is int)")
    k.add_argument("--backend", choices=("numpy", "c"), default=None, help="runtime to check (default numpy)")
    k.add_argument("--target", choices=("host", "cortex-m4"), default="host",
                   help="with --backend c: build for this machine (default) or as Cortex-M4 firmware run in "
                        "qemu-system-arm (mps2-an386), compared bit for bit with the numpy integer mode")
    k.add_argument("--limit", type=int, help="use only the first N samples")
    k.add_argument("--json", action="store_true", help="print exactly one JSON object")
    gates = k.add_argument_group("gates (exit 1 with the reason when one fails; for CI)")
    gates.add_argument("--min-top1", type=cliutil.fraction, metavar="F", help="least top-1 agreement with onnxruntime")
    gates.add_argument("--min-exact", type=cliutil.fraction, metavar="F",
                       help="least fraction of output elements equal to onnxruntime's")
    gates.add_argument("--max-lsb", type=int, metavar="N", help="largest output difference from onnxruntime, in LSB")
    _add_compile_options(k)

    w = sub.add_parser("sweep", help="evaluate a grid of Tc, Ts, threshold and encoder settings",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Compile and run MODEL once per grid point (the cartesian product of the "
                       "lists below) and write one row per point: accuracy of the SNN and of the quantized ANN "
                       "(onnxruntime, run once), top-1 agreement, fraction of exact outputs, T_inf, OPF, ANN "
                       "MACs, spikes. The .json form adds per-layer agreement, residual summaries and residual "
                       "histograms (input for 'swsc report').",
                       epilog="grid values are comma-separated lists; integer axes also take ranges 'a..b'.\n"
                       "example: swsc sweep samples/lenet5_mnist_qat.onnx --data samples/lenet5_mnist_qat_test.npz"
                       " \\\n           --tc 4..8 --ts 0..3 --vth-factor 0.5,1.0 -o lenet.json")
    w.add_argument("model", help="quantized .onnx model")
    w.add_argument("--data", required=True, help=".npz with x (float32 samples) and y (labels, for accuracy)")
    w.add_argument("-o", "--output", required=True,
                   help="table to write: .csv (one row per point) or .json (rows plus per-layer data)")
    w.add_argument("--tc", default="8", metavar="LIST", help="coding steps Tc to try (default 8)")
    w.add_argument("--ts", default="0,1,2,3", metavar="LIST", help="silent periods Ts (the same for every TSA layer) to try "
                   "(default 0,1,2,3)")
    w.add_argument("--vth-factor", default="0.5", metavar="LIST", help="threshold factors to try: 0.5 lowered, 1.0 the paper's "
                   "'not lowered' ablation (default 0.5)")
    w.add_argument("--encoder", default="exact", metavar="LIST", help="input encoders to try: exact, tsa (default exact)")
    w.add_argument("--encoder-ts", default="1", metavar="LIST", help="silent periods of the tsa encoder to try; ignored for "
                   "exact (default 1; 0 is the paper's lossy setting)")
    w.add_argument("--beta", type=float, default=2.0, help="amplification factor beta > 1 (default 2)")
    w.add_argument("--limit", type=int, help="use only the first N samples")
    w.add_argument("--input-shape", default=None, help="static input shape for symbolic dimensions")
    w.add_argument("--quiet", action="store_true", help="do not print the table summary")

    _raw.add_parser(sub, _add_compile_options)

    rp = sub.add_parser("report", help="plots and report.md from sweep tables",
                        description="Read one or more tables written by 'swsc sweep' (.json for per-layer "
                        "residual plots; .csv works without them) and write into DIR: report.md (a Table-2 "
                        "style summary at Tc=8, Ts=2, the measurements against the paper's claims, per-model "
                        "tables) and, with matplotlib installed, PNGs per model: accuracy vs latency (fig. 3), "
                        "accuracy vs OPF over Tc and Ts (fig. 4a), residual density (fig. 5a), ablation (fig. 5b).")
    rp.add_argument("tables", nargs="+", metavar="TABLE", help="sweep tables (.json or .csv)")
    rp.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    rp.add_argument("--notes", metavar="FILE.md", help="markdown to include near the top of report.md")
    rp.add_argument("--no-plots", action="store_true", help="write report.md only")
    _add_tune_parser(sub)
    for sp in sub.choices.values():   # main() takes --debug anywhere on the line; listed for --help
        sp.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return p


# ------------------------------------------------------------------ swsc tune (swsc/tune.py, swsc/pareto.py)
def _add_tune_parser(sub) -> None:
    t = sub.add_parser("tune", help="find per-layer silent periods: smallest T_inf meeting a fidelity target",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Search per-layer silent periods {layer: ts} that minimise T_inf while the SNN "
                       "meets a fidelity target on calibration data (each layer alone first, then end to end), "
                       "and report the Pareto front (T_inf, agreement, OPF) on held-out data beside the "
                       "uniform Ts = 0..Tc-1. See docs/tune.md.",
                       epilog="example: swsc tune samples/lenet5_mnist_qat.onnx --data "
                       "samples/lenet5_mnist_qat_test.npz -o ts.json\n"
                       "         swsc compile samples/lenet5_mnist_qat.onnx --ts ts.json -o out/")
    t.add_argument("model", help="quantized .onnx model")
    t.add_argument("--data", required=True, help="calibration .npz (x[, y]); its last part is held out "
                   "unless --test is given")
    t.add_argument("--test", help="held-out .npz to report on (default: the last --holdout of --data)")
    t.add_argument("--holdout", type=float, default=0.5, help="fraction of --data held out (default 0.5)")
    t.add_argument("-o", "--output", help="write the schedule here: a .json {layer: ts} for --ts")
    t.add_argument("--report", help="write the tune document (front, uniform rows) here, a .json for "
                   "'swsc report'")
    t.add_argument("--agreement", type=float, default=None,
                   help="top-1 agreement required with the reference (default 0.99 when no other target)")
    t.add_argument("--exact", type=float, help="fraction of output elements equal to the reference's")
    t.add_argument("--accuracy-drop", type=float, help="with labels: accuracy may fall at most this below "
                   "the reference's (0 = equal accuracy)")
    t.add_argument("--against", choices=("ann", "ort"), default="ann",
                   help="reference: the exact quantized ANN (default) or onnxruntime")
    t.add_argument("--max-evals", type=int, default=40, help="end-to-end evaluations at most (default 40)")
    t.add_argument("--no-uniform", action="store_true", help="do not measure the uniform schedules")
    t.add_argument("--limit", type=int, help="use only the first N samples of --data")
    t.add_argument("--memory-budget", help="runtime memory budget per batch, e.g. 512M, 2G "
                   "(default $SWSC_MEMORY_BUDGET or 1G)")
    t.add_argument("--json", action="store_true", help="print the tune document as one JSON object")
    t.add_argument("--tc", type=int, default=8, help="coding steps Tc (default 8)")
    t.add_argument("--beta", type=float, default=2.0, help="amplification factor beta > 1 (default 2)")
    t.add_argument("--encoder", choices=ENCODERS, default="exact", help="input encoder (default exact)")
    t.add_argument("--encoder-ts", type=int, default=1, help="silent period of the tsa encoder (default 1)")
    t.add_argument("--vth-factor", type=float, default=0.5, help="threshold factor (default 0.5)")
    t.add_argument("--input-shape", default=None, help="static input shape 'N,C,H,W' for symbolic dimensions")


def cmd_tune(a) -> int:
    from .pareto import table, tune_model
    from .runtime.interpreter import BATCH_BYTES
    from .runtime.memory import memory_budget
    from .tune import Target
    model = _need_file(a.model)
    _need_file(a.data, "data")
    if a.test:
        _need_file(a.test, "test data")
    for path, flag in ((a.output, "-o"), (a.report, "--report")):
        if path and Path(path).suffix != ".json":
            raise UsageError(f"{flag} writes JSON: give a .json file, not '{path}'")
    if a.max_evals < 1 or (a.limit is not None and a.limit < 1):
        raise UsageError("--max-evals and --limit must be >= 1")
    agreement = a.agreement if a.agreement is not None or a.exact is not None or a.accuracy_drop is not None \
        else 0.99
    target = Target(agreement=agreement, exact=a.exact, accuracy_drop=a.accuracy_drop, against=a.against).validate()
    opts = CompileOptions(tc=a.tc, beta=a.beta, encoder=a.encoder, encoder_ts=a.encoder_ts,
                          vth_factor=a.vth_factor).validate()
    log = (lambda m: print(m, file=sys.stderr)) if a.json else print
    doc = tune_model(model, a.data, opts, target, test=a.test, holdout=a.holdout, limit=a.limit,
                     input_shape=_input_shape(a), max_evals=a.max_evals, uniform=not a.no_uniform,
                     budget=memory_budget(a.memory_budget, BATCH_BYTES), progress=sys.stderr.isatty(), log=log)
    files = {}
    if a.output and doc["schedule"] is not None:
        files[a.output] = json.dumps(doc["schedule"], indent=1) + "\n"
    if a.report:
        files[a.report] = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    for path, text in files.items():
        out = Path(path)
        _write_atomically(out.parent, {out.name: lambda p, t=text: Path(p).write_text(t)})
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


def _produce_atomically(out_dir: Path, produce) -> tuple[list[Path], object]:
    """Let ``produce(tmp_dir)`` write its files into a temp dir, then move them all in.

    All or nothing: on any failure no file reaches ``out_dir`` (and the directories this call
    created, parents too, are removed again).
    """
    created = None                     # the outermost directory this call creates, if any
    if not out_dir.exists():
        created = out_dir
        while created.parent != created and not created.parent.exists():
            created = created.parent
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".swsc-", dir=out_dir))
    except OSError as e:
        raise UsageError(f"cannot write to output directory '{out_dir}': {e.strerror or e}",
                         hint="-o names a directory, created if missing") from e
    ok = False
    try:
        result = produce(tmp)
        done = []
        for f in sorted(tmp.iterdir()):
            os.replace(f, out_dir / f.name)
            done.append(out_dir / f.name)
        ok = True
        return done, result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not ok and created is not None:
            shutil.rmtree(created, ignore_errors=True)


def _write_atomically(out_dir: Path, files: dict[str, callable]) -> list[Path]:
    """Write the named files (name -> writer(path)) all or nothing."""
    def produce(tmp):
        for name, write in files.items():
            if Path(name).name != name or name in ("", ".", ".."):    # each file lands inside out_dir
                raise SwscError(f"refusing to write '{name}': not a plain file name inside '{out_dir}'")
            write(tmp / name)
    return _produce_atomically(out_dir, produce)[0]


def cmd_compile(a) -> int:
    from .compiler import compile_graph, import_onnx
    from .passmanager import IRPrintOptions
    from .progress import Progress
    from .serialize import SUFFIX, save
    model = _need_file(a.model)
    opts = _options(a)
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
        graph = import_onnx(model, _input_shape(a))
        bar(1)
        bar.status("converting" + (" (and lowering to integer for C)" if a.target == "c" else ""))
        records = []
        sg = compile_graph(graph, opts, print_options=popts, records=records, integer=a.target == "c")
        sg.meta["source"] = model.name
        bar(2)
        if a.data:   # before anything is written: bad data must leave no output behind
            from .check import load_data
            from .runtime.interpreter import run
            bar.status("running the data")
            x, _ = load_data(a.data, sg)
            totals = (len(x), run(sg, x).totals())
            bar(3)
        bar.status("writing")
        if a.target == "c":
            from .runtime.cbackend import emit_c
            written, creport = _produce_atomically(Path(a.output), lambda tmp: emit_c(
                sg, tmp, prefix=prefix, header_info={"model": model.name, "options": opts.to_json()}))
        else:
            written = _write_atomically(Path(a.output), {name + SUFFIX: lambda p: save(sg, p)})
        bar(bar.total)
    layers = [n for n in sg.nodes if n.op == "TsaLayer"]
    params = sum(int(sg.tensors[i].data.size) for n in layers
                 for i in n.inputs[n.attrs["n_inputs"]:n.attrs["n_inputs"] + 2])   # W and b
    print(f"compiled {model.name}: {len(sg.nodes)} nodes, {len(layers)} TSA layers, "
          f"T_inf = {sg.meta['t_inf']} steps (Tc={opts.tc}), {params} parameters")
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
    import onnx

    from .serialize import is_ir_model, load
    from .text import to_text
    path = _need_file(a.file)
    try:
        is_ir = is_ir_model(onnx.load(str(path), load_external_data=False))
    except Exception:
        is_ir = False
    if is_ir:
        g = load(path)
    else:
        from .compiler import import_onnx
        g = import_onnx(path, _input_shape(a))
    sys.stdout.write(to_text(g))
    return 0


def cmd_run(a) -> int:
    from .check import load_data, resolve_runtime
    from .serialize import load
    mode, backend = resolve_runtime(False, a.mode, a.backend)
    g = load(_need_file(a.file, "IR"))
    if a.output and Path(a.output).is_dir():
        raise UsageError(f"-o '{a.output}' is a directory; give the .npz file to write, e.g. out.npz")
    x, y = load_data(a.data, g)
    outputs, totals = cliutil.run_outputs(g, x, mode, backend)
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
        _write_atomically(Path(a.output).parent or Path("."), {Path(a.output).name: write})
    if a.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        for k, v in summary.items():
            print(f"{k}: {v}")
    return 0


def cmd_check(a) -> int:
    from .check import check, gate_failures, report_lines
    model = _need_file(a.model)
    _need_file(a.data, "data")
    if a.limit is not None and a.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {a.limit}")
    if a.max_lsb is not None and a.max_lsb < 0:
        raise UsageError(f"--max-lsb must be >= 0, got {a.max_lsb}")
    report = check(model, a.data, _options(a), ann=a.ann, mode=a.mode, backend=a.backend,
                   input_shape=_input_shape(a), limit=a.limit, target=a.target)
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
    from .sweep import AXES, grid_points, parse_values, sweep, table_kind, write_table
    model = _need_file(a.model)
    _need_file(a.data, "data")
    kind = table_kind(a.output)
    grid = {axis: parse_values(getattr(a, axis), axis) for axis in AXES}
    points = grid_points(grid)   # every value is checked before the first (slow) point runs
    if a.limit is not None and a.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {a.limit}")
    rows = sweep(model, a.data, points, limit=a.limit, input_shape=_input_shape(a), beta=a.beta)
    out = Path(a.output)
    _write_atomically(out.parent, {out.name: lambda p: write_table(rows, p, data=a.data, limit=a.limit)})
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
    from .report import render
    for t in a.tables:
        _need_file(t, "table")
    notes = _need_file(a.notes, "notes").read_text() if a.notes else None
    files, note = render(a.tables, notes=notes, plots=not a.no_plots)
    written = _write_atomically(Path(a.output), files)
    if note:
        print(f"swsc: {note}", file=sys.stderr)
    for p in written:
        print(f"wrote {p}")
    return 0


def cmd_raw(a) -> int:
    return _raw.cmd(a, {"compile": _options(a), "input_shape": _input_shape(a)})


COMMANDS = {"compile": cmd_compile, "dump": cmd_dump, "run": cmd_run, "check": cmd_check, "sweep": cmd_sweep,
            "report": cmd_report, "tune": cmd_tune, "raw": cmd_raw}


def main(argv: list[str] | None = None) -> int:
    argv, debug = cliutil.split_debug(sys.argv[1:] if argv is None else list(argv))
    try:
        with warnings.catch_warnings():
            warnings.showwarning = cliutil.show_warning
            warnings.simplefilter("default", SwscWarning)
            a = build_parser().parse_args(argv)
            if not a.command:
                build_parser().print_help()
                return 2
            rc = COMMANDS[a.command](a)
            sys.stdout.flush()     # a closed pipe shows here, inside the handler below
            return rc
    except BrokenPipeError:
        return cliutil.stdout_gone()
    except SwscError as e:
        if debug:
            traceback.print_exc()
        text = str(e)
        if isinstance(e, UsageError) and "--help" not in text:
            text += f" (see '{cliutil.help_pointer(argv, COMMANDS)}')"
        print(f"swsc: error: {text}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("swsc: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: still one line unless --debug
        if debug:
            traceback.print_exc()
        print(f"swsc: internal error: {type(e).__name__}: {e} (rerun with --debug and report it)",
              file=sys.stderr)
        return 1
