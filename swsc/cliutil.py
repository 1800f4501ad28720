"""Helpers of the command line (swsc/cli.py, swsc/cli_commands.py, swsc/raw.py): the conversion
options every compiling command shares, option checks that need several options at once, input
files, all-or-nothing output, and how errors, warnings and a closed stdout end a command."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from .errors import SwscError, SwscWarning, UsageError
from .frontend import parse_input_shape
from .options import ENCODERS, CompileOptions, check_c_prefix, check_file_stem, default_c_prefix, parse_ts
from .passes import PASSES, pipeline


def add_compile_options(p: argparse.ArgumentParser, *, ts: bool = True) -> None:
    """The conversion options of compile, check, raw and tune (``ts=False``: tune finds --ts itself)."""
    g = p.add_argument_group("conversion options (semantics: docs/semantics.md)")
    g.add_argument("--tc", type=int, default=8, help="coding steps Tc per spike train (default 8)")
    if ts:
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


def compile_options(a) -> CompileOptions:
    """The CompileOptions of the options that add_compile_options defines, validated."""
    if a.encoder_ts is not None and a.encoder != "tsa":
        raise UsageError(f"--encoder-ts is the silent period of the tsa encoder; --encoder {a.encoder} has none "
                         "(add --encoder tsa, or drop --encoder-ts)")
    return CompileOptions(tc=a.tc, ts=getattr(a, "ts", CompileOptions.ts), beta=a.beta, encoder=a.encoder,
                          encoder_ts=1 if a.encoder_ts is None else a.encoder_ts, vth_factor=a.vth_factor,
                          membrane_bits=a.membrane_bits).validate()


def input_shape(a):
    if not getattr(a, "input_shape", None):
        return None
    return parse_input_shape(a.input_shape)


def need_file(path: str, what: str = "model") -> Path:
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{what} file '{path}' is a directory", hint=f"give the {what} file itself")
    if not p.is_file():
        raise UsageError(f"{what} file '{path}' does not exist")
    return p


def check_limit(a) -> None:
    """--limit N (the first N samples) takes N >= 1."""
    if a.limit is not None and a.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {a.limit}")


def help_pointer(argv: list[str], commands) -> str:
    """'swsc <subcommand> --help' for the subcommand on the command line, else 'swsc --help'."""
    sub = next((a for a in argv if not a.startswith("-")), None)
    return f"swsc {sub} --help" if sub in commands else "swsc --help"


def fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0 <= v <= 1:   # argparse's protocol for a type: _Parser.error makes it a UsageError
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
    default = {p.name for p in pipeline(CompileOptions())}
    for name in a.print_ir_after + a.print_ir_before:
        if name in PASSES and name not in default:
            raise UsageError(f"pass '{name}' exists only for --target c (it lowers the network to the integer-only "
                             "arithmetic of the C); add --target c")


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


def produce_atomically(out_dir: Path, produce) -> tuple[list[Path], object]:
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


def write_atomically(out_dir: Path, files: dict[str, callable]) -> list[Path]:
    """Write the named files (name -> writer(path)) all or nothing."""
    def produce(tmp):
        for name, write in files.items():
            if Path(name).name != name or name in ("", ".", ".."):    # each file lands inside out_dir
                raise SwscError(f"refusing to write '{name}': not a plain file name inside '{out_dir}'")
            write(tmp / name)
    return produce_atomically(out_dir, produce)[0]
