"""Static shapes: fix the input shape (batch 1) and run onnx shape inference."""
from __future__ import annotations

import onnx

from ..errors import InvalidModelError, UsageError
from .onnxgraph import OGraph


def parse_input_shape(s) -> tuple[int, ...]:
    """'1,3,32,32' (or 'N,3,32,32', '1x3x32x32') -> (1, 3, 32, 32); UsageError on bad text."""
    if isinstance(s, (tuple, list)):
        parts = list(s)
    else:
        text = str(s).strip().strip("[]()")
        parts = [p.strip() for p in text.replace("x", ",").split(",")] if text else []
    out = []
    for i, p in enumerate(parts):
        if i == 0 and isinstance(p, str) and p in ("N", "n", "?", "-1", "batch"):
            out.append(1)
            continue
        try:
            v = int(p)
        except (TypeError, ValueError):
            what = "an empty dimension" if p == "" else f"'{p}', not a positive integer"
            raise UsageError(f"bad input shape {s!r}: {what}", hint="write it like 1,3,32,32 or 1x3x32x32") from None
        if v < 1:
            raise UsageError(f"bad input shape {s!r}: dimension {v} must be >= 1", hint="write it like 1,3,32,32")
        out.append(v)
    if not out:
        raise UsageError(f"bad input shape {s!r}: empty", hint="write it like 1,3,32,32")
    return tuple(out)


def input_shapes(og: OGraph, input_shape=None) -> dict[str, tuple]:
    """Static shape of every graph input, batch forced to 1."""
    res = {}
    given = parse_input_shape(input_shape) if input_shape is not None else None
    for name in og.inputs:
        if og.elem.get(name, onnx.TensorProto.FLOAT) != onnx.TensorProto.FLOAT:
            raise InvalidModelError(f"input '{name}' has element type "
                                    f"{onnx.TensorProto.DataType.Name(og.elem[name])}; a float32 input is needed",
                                    file=og.file)
        dims = og.input_dims.get(name)
        if given is not None and len(og.inputs) == 1:
            if dims is not None and len(dims) != len(given):
                raise InvalidModelError(f"input_shape {list(given)} has rank {len(given)} but input '{name}' "
                                        f"has rank {len(dims)} ({dims})", file=og.file)
            if dims is not None:
                for k, (d, g) in enumerate(zip(dims, given)):
                    if k > 0 and isinstance(d, int) and d > 0 and d != g:
                        raise InvalidModelError(f"input_shape {list(given)} disagrees with input '{name}' "
                                                f"shape {dims} at axis {k}", file=og.file)
            res[name] = (1,) + tuple(given[1:])
            continue
        if dims is None:
            raise InvalidModelError(f"input '{name}' has no shape", file=og.file,
                                    hint="pass input_shape (e.g. --input-shape 1,3,32,32)")
        bad = [k for k, d in enumerate(dims) if k > 0 and not (isinstance(d, int) and d > 0)]
        if bad:
            raise InvalidModelError(f"input '{name}' has dynamic dimension(s) {[dims[k] for k in bad]} "
                                    f"in shape {dims}", file=og.file,
                                    hint="pass input_shape (e.g. --input-shape 1,3,32,32)")
        res[name] = (1,) + tuple(int(d) for d in dims[1:])
    return res


def infer(og: OGraph, in_shapes: dict[str, tuple]) -> None:
    """Fill og.shapes / og.types from onnx shape inference (only fully static shapes kept)."""
    model = og.to_model(in_shapes)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:
        inferred = model
    og.shapes = {k: tuple(v) for k, v in in_shapes.items()}
    og.types = {k: og.elem.get(k, onnx.TensorProto.FLOAT) for k in in_shapes}
    g = inferred.graph
    for vi in list(g.value_info) + list(g.output):
        tt = vi.type.tensor_type
        if tt.elem_type:
            og.types[vi.name] = tt.elem_type
        if not tt.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if all(d is not None for d in dims):
            og.shapes[vi.name] = tuple(int(d) for d in dims)


#: ops that may drop the batch axis of a batch-1 tensor (or give it back)
_RESHAPING = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")


def batchless(og: OGraph) -> set[str]:
    """Tensors of a batch-1 graph that have lost the batch axis (``x.flatten(0)``, ``Squeeze``
    before the classifier: output ``[10]``, not ``[1, 10]``).

    The IR keeps a leading batch axis everywhere, so these get ``1`` prepended in
    ``og.shapes``; matcher handlers shift their axis attributes by one for them. A reshaping
    op whose output starts with 1 again counts as restoring the batch axis.
    """
    lost: set[str] = set()
    og.topo_sort()
    for n in og.nodes:
        ins = [i for i in n.inputs if i and i not in og.consts]
        outs = [o for o in n.outputs if o and og.shapes.get(o) is not None]
        if not ins or not outs:
            continue
        src = og.shapes.get(ins[0])
        if n.op in _RESHAPING:
            for o in outs:
                shp = og.shapes[o]
                if (ins[0] in lost or (src and src[0] == 1)) and (not shp or shp[0] != 1):
                    lost.add(o)
        elif any(i in lost for i in ins):
            lost.update(outs)
    for t in lost:
        og.shapes[t] = (1,) + tuple(og.shapes[t])
    return lost
