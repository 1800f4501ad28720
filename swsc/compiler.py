"""The Python API: import a quantized ONNX model and compile it to an SWS graph."""
from __future__ import annotations

from pathlib import Path

from .frontend import import_model
from .ir import Graph
from .options import CompileOptions
from .passes import pipeline
from .passmanager import IRPrintOptions, PassManager


def import_onnx(path: str | Path, input_shape: tuple[int, ...] | None = None) -> Graph:
    return import_model(str(path), input_shape=input_shape)


def compile_graph(graph: Graph, options: CompileOptions | None = None, *,
                  print_options: IRPrintOptions | None = None, verify: bool = True,
                  records: list | None = None, integer: bool = False) -> Graph:
    """Run the conversion pipeline on a canonical quantized graph; returns a new graph.

    ``records``, if given, receives one PassRecord (name, seconds, changed) per pass.
    ``integer`` adds lower-to-integer (for the C backend and the integer runtime mode).
    """
    options = (options or CompileOptions()).validate()
    pm = PassManager(pipeline(options, integer=integer), verify=verify, print_options=print_options)
    out = pm.run(graph)
    out.meta["options"] = options.to_json()
    if records is not None:
        records.extend(pm.records)
    return out

