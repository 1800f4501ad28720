"""Front-end: quantized ONNX (QDQ or QOperator) -> canonical quantized IR.

``import_model(path, input_shape=None)`` runs, in order: ``load`` (read and check
the file), ``lift`` (QOperator -> QDQ), ``shapes`` (static shapes, batch 1),
``fold`` (constant folding), ``match`` (QDQ clusters -> canonical ops) and
``Graph.verify``. See docs/frontend.md.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InvalidModelError, SwscError
from ..ir import Graph
from ..ops import verify
from .fold import fold
from .lift import lift
from .load import read_model, to_ograph
from .match import SUPPORTED, match
from .shapes import batchless, infer, input_shapes, parse_input_shape

__all__ = ["import_model", "parse_input_shape", "SUPPORTED"]


def import_model(path, input_shape=None) -> Graph:
    """Read a quantized ONNX model and return its canonical quantized IR graph."""
    file = Path(path).name
    try:
        model = read_model(path)
        og = to_ograph(model, file)
        del model
        qdq_int8 = _int8_qdq(og)
        lift(og)
        shapes = input_shapes(og, input_shape)
        infer(og, shapes)
        fold(og)
        _unbake_batch(og)
        og.prune()
        infer(og, shapes)
        og.batchless = batchless(og)
        graph = match(og, shapes, qdq_int8)
        graph.meta["source"] = file
        lost = [o for o in og.outputs if o in og.batchless]
        if lost:
            # the IR keeps a batch axis; the model itself gives these outputs without one
            graph.meta["batchless_outputs"] = ",".join(lost)
        if qdq_int8:
            # onnxruntime runs int8 QDQ activations as uint8 (QDQS8ToU8Transformer); the
            # reference evaluator mimics that where it changes float rounding.
            graph.meta["ort_int8_qdq"] = "1"
        verify(graph)
        return graph
    except SwscError as e:
        raise e.with_file(file)
    except RecursionError as e:
        raise InvalidModelError("the graph is too deep or cyclic", file=file) from e
    except Exception as e:  # a malformed model must not end in a traceback (--debug shows it)
        raise InvalidModelError(f"cannot import the model ({type(e).__name__}: {e})".splitlines()[0], file=file,
                                hint="the model may be malformed") from e


def _int8_qdq(og) -> bool:
    """True if int8 activations appear in QDQ form (DequantizeLinear of a non-constant int8)."""
    for n in og.nodes:
        if n.op == "QuantizeLinear" and len(n.inputs) > 2 and n.inputs[2] in og.consts:
            if og.consts[n.inputs[2]].dtype.name == "int8" and n.inputs[0] not in og.consts:
                users = [m for m in og.nodes if n.outputs[0] in m.inputs]
                if any(m.op in ("DequantizeLinear", "Clip", "Cast") for m in users):
                    return True
    return False


def _unbake_batch(og) -> None:
    """A fixed batch B > 1 (e.g. MLPerf's 16) baked into a constant Reshape target
    ``[B, ...]`` becomes ``[1, ...]``, since the IR's batch is 1."""

    batches = {d[0] for d in og.input_dims.values() if d and isinstance(d[0], int) and d[0] > 1}
    for n in og.nodes:
        if n.op == "Reshape" and len(n.inputs) > 1 and n.inputs[1] in og.consts:
            target = np.asarray(og.consts[n.inputs[1]])
            if target.ndim == 1 and target.size and int(target[0]) in batches:
                new = target.copy()
                new[0] = 1
                name = og.fresh(n.inputs[1] + "__batch1")
                og.consts[name] = new
                n.inputs[1] = name
