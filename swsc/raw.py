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

from .check import load_model_data
from .cliutil import add_compile_options, check_limit, compile_options, input_shape, need_file
from .compiler import compile_graph
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
    need_file(a.model)
    need_file(a.data, "data")
    check_limit(a)
    graph, x, _ = load_model_data(a.model, a.data, shape, a.limit)
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
