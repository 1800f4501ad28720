"""Read an ONNX file safely and turn it into the front-end's working graph.

Checks done here: the file exists and parses, external data stays inside the
model's directory, the default-domain opset is one the front-end knows, and the
graph has exactly the pieces the later steps rely on. Every problem is an
``InvalidModelError`` naming the file; nothing here raises a bare exception.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.external_data_helper import load_external_data_for_model

from ..errors import InvalidModelError
from ..ir import fresh_name
from ..ops import DOMAIN as SWS_DOMAIN
from .onnxgraph import OGraph, ONode

#: default-domain opsets the front-end understands (QuantizeLinear exists since 10)
MIN_OPSET, MAX_OPSET = 10, 23


def _check_external_data(model: onnx.ModelProto, base: Path, file: str) -> bool:
    """True if some tensor keeps its data outside the file; raise if it points outside base."""
    base = base.resolve()
    found = False
    tensors = list(model.graph.initializer)
    for n in model.graph.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                tensors.append(a.t)
    for t in tensors:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        found = True
        loc = next((e.value for e in t.external_data if e.key == "location"), None)
        if not loc:
            raise InvalidModelError(f"initializer '{t.name}' has external data without a location", file=file)
        target = (base / loc).resolve()
        if os.path.isabs(loc) or base not in target.parents:
            raise InvalidModelError(
                f"initializer '{t.name}' points to external data '{loc}' outside the model's directory",
                file=file, hint="external data files must sit next to the model")
        if not target.is_file():
            raise InvalidModelError(f"external data file '{loc}' of initializer '{t.name}' is missing", file=file)
    return found


def read_model(path) -> onnx.ModelProto:
    path = Path(path)
    file = path.name
    if path.is_dir():
        raise InvalidModelError(f"{path} is a directory, not an ONNX model file", file=file)
    if not path.is_file():
        raise InvalidModelError(f"no such file: {path}", file=file)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf DecodeError and friends
        raise InvalidModelError(f"not a readable ONNX model ({type(e).__name__}: {str(e)[:200]})", file=file,
                                hint="the file may be truncated or not ONNX") from None
    if not model.HasField("graph") or (not model.graph.node and not model.graph.output):
        raise InvalidModelError("the file holds no ONNX graph (empty or truncated)", file=file)
    check_model_kind(model, file)
    if _check_external_data(model, path.parent, file):
        try:
            load_external_data_for_model(model, str(path.parent))
        except Exception as e:
            raise InvalidModelError(f"cannot read external data ({e})", file=file) from None
    return model


#: integer ops whose activation zero point (input 2) must be a constant for static quantization
_INTEGER_OPS = ("MatMulInteger", "ConvInteger")


def check_model_kind(model: onnx.ModelProto, file: str) -> None:
    """Refuse, with the right advice, models that are ONNX but not what the front-end compiles:
    a network swsc already compiled, and dynamically quantized models (their scales are
    computed at run time, so there is no fixed integer network to convert)."""
    if any(o.domain == SWS_DOMAIN for o in model.opset_import):
        raise InvalidModelError("is already a compiled swsc network", file=file,
                                hint="run it with 'swsc run FILE --data D.npz' or print it with 'swsc dump FILE'")
    consts = {t.name for t in model.graph.initializer}
    consts |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    for n in model.graph.node:
        dynamic = n.op_type == "DynamicQuantizeLinear" or (
            n.op_type in _INTEGER_OPS and len(n.input) > 2 and n.input[2] and n.input[2] not in consts)
        if dynamic:
            raise InvalidModelError(
                f"dynamic quantization is not supported (node '{n.name or n.output[0]}' ({n.op_type}) "
                "computes its scale at run time)", file=file,
                hint="quantize statically: onnxruntime.quantization.quantize_static (QDQ or QOperator)")


def _attr_value(a: onnx.AttributeProto):
    v = helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, onnx.TensorProto):
        return numpy_helper.to_array(v)
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [x.decode("utf-8", "replace") for x in v]
    return v


def _dims(vi: onnx.ValueInfoProto):
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim]


def to_ograph(model: onnx.ModelProto, file: str) -> OGraph:
    opset = {o.domain or "": o.version for o in model.opset_import}
    ver = opset.get("", opset.get("ai.onnx"))
    if ver is None:
        raise InvalidModelError("the model imports no default ONNX opset", file=file)
    if not MIN_OPSET <= ver <= MAX_OPSET:
        raise InvalidModelError(f"default-domain opset {ver} is not supported (need {MIN_OPSET}..{MAX_OPSET})",
                                file=file)
    g = model.graph
    og = OGraph(file=file, opset=ver, name=g.name or Path(file).stem)
    for t in g.initializer:
        try:
            og.consts[t.name] = numpy_helper.to_array(t)
        except Exception as e:
            raise InvalidModelError(f"initializer '{t.name}' cannot be read ({e})", file=file) from None
    for t in g.sparse_initializer:
        raise InvalidModelError(f"sparse initializer '{t.values.name}' is not supported", file=file)
    for vi in g.input:
        if vi.name in og.consts:
            continue
        og.inputs.append(vi.name)
        og.input_dims[vi.name] = _dims(vi)
        og.elem[vi.name] = vi.type.tensor_type.elem_type
    og.outputs = [o.name for o in g.output]
    seen = set()
    for i, n in enumerate(g.node):
        name = fresh_name(n.name or f"{n.op_type}_{i}", seen)
        seen.add(name)
        try:
            attrs = {a.name: _attr_value(a) for a in n.attribute}
        except Exception as e:
            raise InvalidModelError(f"attribute cannot be read ({e})", file=file, node=name,
                                    op=n.op_type) from None
        og.nodes.append(ONode(n.op_type, name, list(n.input), list(n.output), attrs, n.domain or ""))
    if not og.inputs:
        raise InvalidModelError("the graph has no (non-constant) input", file=file)
    produced = {o for n in og.nodes for o in n.outputs}
    for o in og.outputs:
        if o not in og.consts and o not in produced and o not in og.inputs:
            raise InvalidModelError(f"graph output '{o}' is produced by no node", file=file)
    for n in og.nodes:
        for i in n.inputs:
            if i and i not in og.consts and i not in og.inputs and i not in produced:
                raise InvalidModelError(f"input '{i}' is produced by no node", file=file, node=n.name, op=n.op)
    return og


def elem_dtype(elem: int):
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem))
    except Exception:
        return None
