"""Helpers of the command line (swsc/cli.py): option checks that need several options at once,
``swsc run`` on either runtime, and how errors, warnings and a closed stdout end a command."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from .errors import SwscWarning, UsageError
from .options import CompileOptions, check_c_prefix, check_file_stem, default_c_prefix


def help_pointer(argv: list[str], commands) -> str:
    """'swsc <subcommand> --help' for the subcommand on the command line, else 'swsc --help'."""
    sub = next((a for a in argv if not a.startswith("-")), None)
    return f"swsc {sub} --help" if sub in commands else "swsc --help"


def fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"takes a fraction in [0, 1], got {text!r}")
    return v


def compile_names(a, model: Path) -> tuple[str, str | None]:
    """(output file stem, C prefix or None), both checked before anything runs or is written."""
    if a.name is not None:
        check_file_stem(a.name)
    name = a.name if a.name is not None else model.name.removesuffix(".onnx")
    if a.target != "c":
        if a.prefix is not None:
            raise UsageError("--prefix names the C symbols, so it needs --target c")
        if a.name is None:
            with_hint(check_file_stem, name, "the output name from the model file", hint="give --name NAME")
        return name, None
    if a.prefix is not None:
        return name, check_c_prefix(a.prefix)
    return name, default_c_prefix(name)


def with_hint(check, value: str, what: str, *, hint: str) -> str:
    try:
        return check(value, what)
    except UsageError as e:
        raise UsageError(e.message, hint=hint) from None


def check_ir_print_passes(a) -> None:
    """--print-ir-* of a pass that only the C target runs is a mistake, not a silent no-op."""
    if a.target == "c":
        return
    from .passes import PASSES, pipeline
    default = {p.name for p in pipeline(CompileOptions())}
    for name in a.print_ir_after + a.print_ir_before:
        if name in PASSES and name not in default:
            raise UsageError(f"pass '{name}' exists only for --target c (it lowers the network to the integer-only "
                             "arithmetic of the C); add --target c")


def run_outputs(g, x, mode: str, backend: str) -> tuple[dict, dict]:
    """({graph output: float array [N, ...]}, summary) of running ``g`` as ``swsc run`` does."""
    from .progress import Progress
    from .runtime.interpreter import run
    if mode == "int" and g.meta.get("integer") != "1":
        from .passes import LowerToInteger          # a .sws.onnx holds the network before this pass
        from .passmanager import PassManager
        g = PassManager([LowerToInteger()]).run(g)
    if backend == "numpy":
        with Progress(len(x), "swsc run", unit="sample") as bar:
            res = run(g, x, progress=bar, mode=mode)
        return res.outputs, res.totals()
    from .check import output_quant_tensors, run_c
    from .runtime.cbackend import dequantize_output
    c_out, counts, creport = run_c(g, x)
    flat, outputs, start = c_out.reshape(len(x), -1), {}, 0
    for i, (name, qname) in enumerate(zip(g.outputs, output_quant_tensors(g))):   # flat, in graph order
        shape = g.tensors[qname].shape[1:]
        size = int(np.prod(shape, dtype=np.int64))
        v = dequantize_output(g, flat[:, start:start + size].reshape(len(x), *shape), i)
        start += size
        node = g.producer(name)
        if node is not None and node.op == "Softmax":    # the C stops at the decoder; numpy ends the tail
            e = np.exp(v - v.max(axis=node.attrs["axis"], keepdims=True))
            v = (e / e.sum(axis=node.attrs["axis"], keepdims=True)).astype(np.float32)
        outputs[name] = v
    n = max(len(x), 1)
    summary = {"spikes_pos": sum(p for p, _ in counts.values()) / n,
               "spikes_neg": sum(q for _, q in counts.values()) / n,
               "flash_bytes": creport.flash_bytes, "ram_bytes": creport.ram_bytes}
    return outputs, summary


def split_debug(argv: list[str]) -> tuple[list[str], bool]:
    """--debug may stand anywhere before a '--' (errors say "rerun with --debug")."""
    end = argv.index("--") if "--" in argv else len(argv)
    rest = [v for v in argv[:end] if v != "--debug"] + argv[end:]
    return rest, len(rest) != len(argv)


def show_warning(message, category, filename, lineno, file=None, line=None):
    text = str(message) if issubclass(category, SwscWarning) else f"{category.__name__}: {message}"
    print(f"swsc: warning: {text}", file=sys.stderr)


def stdout_gone() -> int:
    """The reader of stdout went away (`swsc ... | head`): end quietly, as a Unix tool does."""
    try:   # later writes, and the interpreter's own flush at exit, must not raise again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141    # 128 + SIGPIPE, what a shell reports for a tool killed by the broken pipe
