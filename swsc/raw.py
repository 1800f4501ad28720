"""`swsc raw`: an .npz data file as the generated C harness's raw input.

The harness (``<prefix>_main``, on the host or as Cortex-M4 firmware) reads samples of
``<PREFIX>_INPUT_SIZE`` values of the model's quantized input type, back to back. This
quantizes ``x`` with the model's own QuantizeLinear, bit-identical with
``<prefix>_quantize_input``, and writes them:

    swsc raw model.onnx --data test.npz -o input.bin [--limit N]
    ./out/model_main input.bin output.bin
"""
from __future__ import annotations

import sys
from pathlib import Path

from .cliutil import add_compile_options, compile_options, input_shape
from .compiler import compile_graph, import_onnx
from .data import load_data
from .errors import UsageError
from .runtime import cbackend


def add_parser(sub) -> None:
    r = sub.add_parser("raw", help="write an .npz's samples as the C harness's raw input",
                       description="Quantize the samples x of an .npz with the model's input quantizer and "
                       "write them as raw values of its input type, the input of the generated C harness "
                       "(<prefix>_main INPUT OUTPUT, or make TARGET=cortex-m4 run IN=INPUT).")
    r.add_argument("model", help="the quantized .onnx model the C was generated from")
    r.add_argument("--data", required=True, help=".npz with x [samples, *input shape]")
    r.add_argument("-o", "--output", required=True, help="raw file to write ('-': stdout)")
    r.add_argument("--limit", type=int, default=None, help="only the first N samples")
    add_compile_options(r)


def cmd(a) -> int:
    options, shape = compile_options(a), input_shape(a)
    for path, what in ((a.model, "model"), (a.data, "data")):
        if not Path(path).is_file():
            raise UsageError(f"{what} file '{path}' does not exist")
    if a.limit is not None and a.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {a.limit}")
    graph = import_onnx(a.model, shape)
    x, _ = load_data(a.data, graph)
    x = x[:a.limit] if a.limit else x
    sg = compile_graph(graph, options, integer=True)
    q = cbackend.quantize_input(sg, x)
    data = q.tobytes()
    if a.output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return 0
    out = Path(a.output)
    if out.is_dir():
        raise UsageError(f"output '{out}' is a directory")
    out.write_bytes(data)
    per = q.size // max(len(q), 1)
    print(f"wrote {out} ({len(q)} samples of {per} {q.dtype} values, {len(data)} bytes)", file=sys.stderr)
    return 0
