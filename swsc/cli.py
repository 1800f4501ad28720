"""The `swsc` command line.

Exit codes: 0 success, 1 a compile/model/data error, 2 a usage error. Errors are one
line on stderr; ``--debug`` adds the traceback. Outputs are written atomically, so a
failed command leaves no half-written files. This module defines the arguments and the entry
point; what the commands do is in swsc/cli_commands.py (``swsc raw`` in swsc/raw.py).
"""
from __future__ import annotations

import argparse
import sys
import traceback
import warnings

from . import __version__, cliutil, raw
from .cli_commands import cmd_check, cmd_compile, cmd_dump, cmd_report, cmd_run, cmd_sweep, cmd_tune
from .cliutil import add_compile_options
from .errors import SwscError, SwscWarning, UsageError

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
    add_compile_options(c)
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
    add_memory_budget(r)

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
    add_memory_budget(k)
    gates = k.add_argument_group("gates (exit 1 with the reason when one fails; for CI)")
    gates.add_argument("--min-top1", type=cliutil.fraction, metavar="F", help="least top-1 agreement with onnxruntime")
    gates.add_argument("--min-exact", type=cliutil.fraction, metavar="F",
                       help="least fraction of output elements equal to onnxruntime's")
    gates.add_argument("--max-lsb", type=int, metavar="N", help="largest output difference from onnxruntime, in LSB")
    add_compile_options(k)

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

    raw.add_parser(sub)

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
    add_memory_budget(t)
    t.add_argument("--json", action="store_true", help="print the tune document as one JSON object")
    add_compile_options(t, ts=False)


def add_memory_budget(p) -> None:
    """The numpy runtime's working-memory bound (runtime/memory.py), shared by run, check and tune."""
    p.add_argument("--memory-budget", metavar="SIZE", help="numpy runtime memory per batch, e.g. 512M, 2G "
                   "(default $SWSC_MEMORY_BUDGET or 1G); peak memory stays near it at any number of samples")


COMMANDS = {"compile": cmd_compile, "dump": cmd_dump, "run": cmd_run, "check": cmd_check, "sweep": cmd_sweep,
            "report": cmd_report, "tune": cmd_tune, "raw": raw.cmd}


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
