"""The `swsc` command line.

Exit codes: 0 success, 1 a compile/model/data error, 2 a usage error. Errors are one
line on stderr; ``--debug`` adds the traceback. Outputs are written atomically, so a
failed command leaves no half-written files.
"""
from __future__ import annotations

import argparse
import re
import json
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

from . import __version__
from .errors import SwscError, UsageError
from .options import ENCODERS, CompileOptions, parse_ts

EPILOG = """examples:
  swsc compile samples/lenet5_mnist_qdq.onnx -o out/         compile to out/lenet5_mnist_qdq.sws.onnx
  swsc compile model.onnx --tc 8 --ts 7 --print-ir-after-all  show the IR after every pass
  swsc dump out/lenet5_mnist_qdq.sws.onnx                      print a compiled graph
  swsc check model.onnx --data test.npz --json                 SNN vs onnxruntime
  swsc run out/model.sws.onnx --data test.npz -o y.npz        run a compiled network
  swsc sweep model.onnx --data test.npz --tc 4..8 --ts 0..3 -o t.json   accuracy/OPF over a grid
  swsc report t.json -o results/                               plots and report.md from sweep tables
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _add_compile_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("conversion options (semantics: docs/semantics.md)")
    g.add_argument("--tc", type=int, default=8, help="coding steps Tc per spike train (default 8)")
    g.add_argument("--ts", type=parse_ts, default=2,
                   help="silent period of every TSA layer: N, a list 'N,N,...' (one per TSA layer in "
                        "order) or a .json file {layer: N} (default 2)")
    g.add_argument("--beta", type=float, default=2.0, help="amplification factor beta > 1 (default 2)")
    g.add_argument("--encoder", choices=ENCODERS, default="exact",
                   help="input encoder: exact MSB-first code (default) or the paper's TSA encoder")
    g.add_argument("--encoder-ts", type=int, default=1, help="silent period of the tsa encoder (default 1)")
    g.add_argument("--vth-factor", type=float, default=0.5,
                   help="threshold as a fraction of theta*beta^Ts: 0.5 lowered (default), 1.0 = not lowered")
    g.add_argument("--input-shape", default=None,
                   help="static input shape 'N,C,H,W' for models with symbolic dimensions")
    g.add_argument("--membrane-bits", type=int, default=32,
                   help="integer mode and C: membranes must provably fit this many bits (16-64; default 32, "
                        "int32_t; above 32 the C uses int64_t)")


def _options(a) -> CompileOptions:
    return CompileOptions(tc=a.tc, ts=a.ts, beta=a.beta, encoder=a.encoder, encoder_ts=a.encoder_ts,
                          vth_factor=a.vth_factor, membrane_bits=getattr(a, "membrane_bits", 32)).validate()


def _input_shape(a):
    if not getattr(a, "input_shape", None):
        return None
    from .frontend import parse_input_shape
    return parse_input_shape(a.input_shape)


def _need_file(path: str, what: str = "model") -> Path:
    p = Path(path)
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
    c.add_argument("--name", help="output base name (default: the model file's stem)")
    c.add_argument("--target", choices=("numpy", "c"), default="numpy",
                   help="numpy: write <name>.sws.onnx for swsc run/dump (default); c: write integer-only "
                        "C99 for firmware (<prefix>.h/.c, weights, float helpers, main.c, Makefile) "
                        "and print its flash/RAM report")
    c.add_argument("--prefix", help="C symbol prefix, so several models link into one firmware "
                                    "(default: from --name or the model file name)")
    _add_compile_options(c)
    c.add_argument("--data", help="optional .npz (x[, y]) to report spikes and OPF per frame")
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
    r.add_argument("--data", required=True, help=".npz with x (float32 samples) and optional y (labels)")
    r.add_argument("-o", "--output", help="write outputs to this .npz")
    r.add_argument("--json", action="store_true", help="print one JSON object")

    k = sub.add_parser("check", help="compare the compiled network (or the ANN evaluator) with onnxruntime",
                       description="Compile MODEL, run it and onnxruntime's quantized model on the same "
                       "data, and report agreement, accuracy, latency, OPF and spikes, per layer too.")
    k.add_argument("model", help="quantized .onnx model")
    k.add_argument("--data", required=True, help=".npz with x (float32 samples) and optional y (labels)")
    k.add_argument("--ann", action="store_true", help="check the integer reference evaluator instead of the SNN")
    k.add_argument("--mode", choices=("float", "int"), default="float", help="numpy runtime mode")
    k.add_argument("--backend", choices=("numpy", "c"), default="numpy", help="runtime to check")
    k.add_argument("--limit", type=int, help="use only the first N samples")
    k.add_argument("--json", action="store_true", help="print exactly one JSON object")
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
    return p


def _produce_atomically(out_dir: Path, produce) -> tuple[list[Path], object]:
    """Let ``produce(tmp_dir)`` write its files into a temp dir, then move them all in.

    All or nothing: on any failure no file reaches ``out_dir`` (and a directory this call
    created is removed again).
    """
    created = not out_dir.exists()
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
        if not ok and created:
            shutil.rmtree(out_dir, ignore_errors=True)


def _write_atomically(out_dir: Path, files: dict[str, callable]) -> list[Path]:
    """Write the named files (name -> writer(path)) all or nothing."""
    def produce(tmp):
        for name, write in files.items():
            write(tmp / name)
    return _produce_atomically(out_dir, produce)[0]


def cmd_compile(a) -> int:
    from .compiler import compile_graph, import_onnx
    from .passmanager import IRPrintOptions
    from .serialize import SUFFIX, save
    model = _need_file(a.model)
    opts = _options(a)
    prefix = _c_prefix(a.prefix or a.name or model.name.removesuffix(".onnx"))
    popts = IRPrintOptions(after_all=a.print_ir_after_all, after=set(a.print_ir_after),
                           before=set(a.print_ir_before), dump_dir=a.dump_ir)
    graph = import_onnx(model, _input_shape(a))
    records = []
    sg = compile_graph(graph, opts, print_options=popts, records=records, integer=a.target == "c")
    sg.meta["source"] = model.name
    name = a.name or model.name.removesuffix(".onnx")
    totals = None
    if a.data:   # before anything is written: bad data must leave no output behind
        from .check import load_data
        from .runtime.interpreter import run
        x, _ = load_data(a.data, sg)
        totals = (len(x), run(sg, x).totals())
    if a.target == "c":
        from .runtime.cbackend import emit_c
        written, creport = _produce_atomically(Path(a.output), lambda tmp: emit_c(
            sg, tmp, prefix=prefix, header_info={"model": model.name, "options": opts.to_json()}))
    else:
        written = _write_atomically(Path(a.output), {name + SUFFIX: lambda p: save(sg, p)})
    layers = [n for n in sg.nodes if n.op == "TsaLayer"]
    params = sum(int(sg.tensors[i].data.size) for n in layers
                 for i in n.inputs[n.attrs["n_inputs"]:n.attrs["n_inputs"] + 2])   # W and b
    print(f"compiled {model.name}: {len(sg.nodes)} nodes, {len(layers)} TSA layers, "
          f"T_inf = {sg.meta['t_inf']} steps (Tc={opts.tc}), {params} parameters")
    print("passes: " + ", ".join(f"{r.name} {r.seconds * 1000:.0f} ms" for r in records))
    if a.target == "c":
        print(creport.format())
    if totals:
        n, t = totals
        print(f"on {n} samples: OPF {t['opf']:.0f} per frame (ANN MACs {t['ann_macs']}), "
              f"spikes +{t['spikes_pos']:.0f}/-{t['spikes_neg']:.0f} per frame")
    for p in written:
        print(f"wrote {p}")
    return 0


def _c_prefix(text: str) -> str:
    """A C symbol prefix from a user option or a file name: [a-z0-9_], not starting with a digit."""
    p = re.sub(r"[^A-Za-z0-9_]", "_", text).strip("_").lower() or "sws"
    return ("m_" + p if p[0].isdigit() else p)[:24]


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
    import numpy as np

    from .check import load_data
    from .progress import Progress
    from .runtime.interpreter import run
    from .serialize import load
    g = load(_need_file(a.file, "IR"))
    x, y = load_data(a.data, g)
    if a.output and Path(a.output).is_dir():
        raise UsageError(f"-o '{a.output}' is a directory; give the .npz file to write, e.g. out.npz")
    bar = Progress(len(x), "swsc run")
    res = run(g, x, progress=bar)
    bar.close()
    summary = {"samples": int(len(x)), **res.totals()}
    out = res.outputs[g.outputs[0]]
    if y is not None:
        summary["accuracy"] = float((np.argmax(out.reshape(len(out), -1), 1) == y).mean())
    if a.output:
        def write(p):
            with open(p, "wb") as f:    # a file object: np.savez would append .npz to a bare path
                np.savez(f, **res.outputs)
        _write_atomically(Path(a.output).parent or Path("."), {Path(a.output).name: write})
    if a.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        for k, v in summary.items():
            print(f"{k}: {v}")
    return 0


def cmd_check(a) -> int:
    from .check import check
    model = _need_file(a.model)
    _need_file(a.data, "data")
    if a.limit is not None and a.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {a.limit}")
    report = check(model, a.data, _options(a), ann=a.ann, mode=a.mode, backend=a.backend,
                   input_shape=_input_shape(a), limit=a.limit)
    if a.json:
        print(json.dumps(report, sort_keys=True))
        return 0
    for k, v in report.items():
        if k != "layers":
            print(f"{k}: {v}")
    for layer in report.get("layers", []):
        extra = "".join(f" {k}={v:.3g}" if isinstance(v, float) else f" {k}={v}" for k, v in layer.items()
                        if k not in ("name", "op", "tensor"))
        print(f"  {layer.get('op', ''):12s} {layer.get('name', layer.get('tensor'))}:{extra}")
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
    from .report import write_report
    for t in a.tables:
        _need_file(t, "table")
    notes = _need_file(a.notes, "notes").read_text() if a.notes else None
    written, note = write_report(a.tables, Path(a.output), notes=notes, plots=not a.no_plots)
    if note:
        print(f"swsc: {note}", file=sys.stderr)
    for p in written:
        print(f"wrote {p}")
    return 0


COMMANDS = {"compile": cmd_compile, "dump": cmd_dump, "run": cmd_run, "check": cmd_check, "sweep": cmd_sweep,
            "report": cmd_report}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        a = build_parser().parse_args(argv)
        if not a.command:
            build_parser().print_help()
            return 2
        return COMMANDS[a.command](a)
    except SwscError as e:
        if debug:
            traceback.print_exc()
        print(f"swsc: error: {e}", file=sys.stderr)
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
