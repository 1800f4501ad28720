"""Save and load the IR as an ONNX ModelProto (``*.sws.onnx``).

All swsc ops live in the custom domain ``ai.swsc`` so Netron opens the file and
onnx.checker accepts it. Things ONNX has no field for ride in ``metadata_props``:
a tensor's quantization and spike start step on its ValueInfo/TensorProto, the coding
and the typed graph facts (``t_inf``, ``integer``) and the free-form meta on the model. Real-valued attributes are stored as float64 tensor attributes so that
``load(save(g))`` is exact. Constants are stored compactly but bit for bit
(``swsc.packing``): the file stays near the quantized model's size.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from . import __version__, packing
from .errors import InvalidModelError, IRVerifyError
from .ir import Coding, Graph, Quant, Tensor
from .ops import DOMAIN, verify

SUFFIX = ".sws.onnx"
_ELEM = {"float32": onnx.TensorProto.FLOAT, "float64": onnx.TensorProto.DOUBLE,
         "uint8": onnx.TensorProto.UINT8, "int8": onnx.TensorProto.INT8,
         "uint16": onnx.TensorProto.UINT16, "int16": onnx.TensorProto.INT16, "int32": onnx.TensorProto.INT32,
         "int64": onnx.TensorProto.INT64, "bool": onnx.TensorProto.BOOL,
         "spike": onnx.TensorProto.INT8}


#: per-channel quantization parameters longer than this go to binary parts, not JSON text
#: (a float64 scale as text takes about 20 bytes)
_INLINE_CHANNELS = 16


def _quant_json(q: Quant, name: str, parts: dict | None, taken=()) -> str:
    """The quantization as JSON; with ``parts``, a long per-channel scale and zero point are
    put there as arrays (exact binary) and the JSON names them ``{"part": NAME}``."""
    d = {"scale": q.scale.tolist(), "zero_point": q.zero_point.tolist(), "axis": q.axis,
         "lo": q.lo, "hi": q.hi, "theta": q.theta}
    if parts is not None and q.scale.size > _INLINE_CHANNELS:
        for key, arr in (("scale", q.scale), ("zero_point", packing.narrow(q.zero_point))):
            pname = f"{name}#{key}"
            if pname not in taken:
                parts[pname] = arr
                d[key] = {"part": pname}
    return json.dumps(d, sort_keys=True)


def _tensor_props(t: Tensor, parts: dict | None = None, taken=()) -> dict[str, str]:
    """metadata_props of a tensor; a constant's long per-channel arrays go to ``parts``."""
    props = {"swsc.dtype": t.dtype}
    if t.quant is not None:
        props["swsc.quant"] = _quant_json(t.quant, t.name, parts, taken)
    if t.t0 is not None:
        props["swsc.t0"] = str(t.t0)
    return props


def _set_props(proto, props: dict[str, str]) -> None:
    for k in sorted(props):
        e = proto.metadata_props.add()
        e.key, e.value = k, props[k]


def _attr(key, v):
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, float):
        return helper.make_attribute(key, numpy_helper.from_array(np.array(v, dtype=np.float64)))
    if isinstance(v, (list, tuple)) and any(isinstance(x, float) for x in v):
        return helper.make_attribute(key, numpy_helper.from_array(np.array(v, dtype=np.float64)))
    if isinstance(v, (list, tuple)) and not v:
        # an empty list has no element type in ONNX; store as an empty int64 tensor
        return helper.make_attribute(key, numpy_helper.from_array(np.zeros(0, dtype=np.int64)))
    return helper.make_attribute(key, v)


def to_model(graph: Graph) -> onnx.ModelProto:
    inits, vinfos = [], []
    for t in graph.tensors.values():
        if t.is_const:
            stored, fields, parts = packing.encode(graph, t.name)
            tp = numpy_helper.from_array(stored, t.name)
            props = _tensor_props(t, parts, graph.tensors)
            if fields is not None:
                props[packing.KEY] = json.dumps(fields, sort_keys=True)
            _set_props(tp, props)
            inits.append(tp)
            for pname in sorted(parts):
                pp = numpy_helper.from_array(packing.contiguous(parts[pname]), pname)
                _set_props(pp, {packing.PART: t.name})
                inits.append(pp)

    def vi(name):
        t = graph.tensors[name]
        v = helper.make_tensor_value_info(name, _ELEM[t.dtype], list(t.shape))
        _set_props(v, _tensor_props(t))
        return v

    nodes = []
    for n in graph.nodes:
        node = helper.make_node(n.op, n.inputs, n.outputs, name=n.name, domain=DOMAIN)
        node.attribute.extend(_attr(k, n.attrs[k]) for k in sorted(n.attrs))
        nodes.append(node)
    io = set(graph.inputs) | set(graph.outputs)
    for t in graph.tensors.values():
        if not t.is_const and t.name not in io:
            vinfos.append(vi(t.name))
    g = helper.make_graph(nodes, graph.name, [vi(i) for i in graph.inputs],
                          [vi(o) for o in graph.outputs], initializer=inits, value_info=vinfos)
    model = helper.make_model(g, producer_name="swsc", producer_version=__version__,
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, 1)])
    model.ir_version = 10
    props = dict(graph.meta)
    if graph.coding is not None:
        props["swsc.coding"] = json.dumps({"tc": graph.coding.tc, "beta": graph.coding.beta})
    if graph.t_inf is not None:
        props["swsc.t_inf"] = str(graph.t_inf)
    if graph.integer:
        props["swsc.integer"] = "1"
    _set_props(model, props)
    return model


def _attr_value(a: onnx.AttributeProto):
    v = helper.get_attribute_value(a)
    if isinstance(v, onnx.TensorProto):
        arr = numpy_helper.to_array(v)
        if arr.dtype == np.int64:
            return [int(x) for x in arr]
        return float(arr) if arr.ndim == 0 else [float(x) for x in arr]
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, list):
        return [x.decode() if isinstance(x, bytes) else x for x in v]
    return v


def _part(name, ref: dict, parts: dict | None):
    if ref["part"] not in (parts or {}):
        raise InvalidModelError(f"the quantization of '{name}' refers to a missing part '{ref['part']}' (dangling reference)")
    return parts[ref["part"]]


def _tensor_from(name, props, shape, data=None, parts=None) -> Tensor:
    q = None
    if "swsc.quant" in props:
        d = json.loads(props["swsc.quant"])
        scale, zp = (_part(name, v, parts) if isinstance(v, dict) else v for v in (d["scale"], d["zero_point"]))
        q = Quant(np.array(scale, dtype=np.float64), np.array(zp, dtype=np.int64),
                  d["axis"], d["lo"], d["hi"], d["theta"])
    if "swsc.t0" in props:
        t0 = int(props["swsc.t0"])
    elif "swsc.window" in props:      # files before the coding moved to the graph: [t0, tc]
        t0 = int(json.loads(props["swsc.window"])[0])
    else:
        t0 = None
    return Tensor(name, props["swsc.dtype"], shape, data=data, quant=q, t0=t0)


def from_model(model: onnx.ModelProto) -> Graph:
    g = Graph(model.graph.name)
    g.meta = {p.key: p.value for p in model.metadata_props}
    if "swsc.coding" in g.meta:
        g.coding = Coding(**json.loads(g.meta.pop("swsc.coding")))
    # typed facts; files before they were typed hold them as plain meta strings
    t_inf = g.meta.pop("swsc.t_inf", g.meta.pop("t_inf", None))
    g.t_inf = None if t_inf is None else int(t_inf)
    g.integer = g.meta.pop("swsc.integer", g.meta.pop("integer", "0")) == "1"
    consts, parts = [], {}
    for tp in model.graph.initializer:
        props = {p.key: p.value for p in tp.metadata_props}
        if packing.PART in props:
            parts[tp.name] = numpy_helper.to_array(tp)
        else:
            fields = json.loads(props[packing.KEY]) if packing.KEY in props else None
            consts.append((tp.name, props, numpy_helper.to_array(tp), fields))
    # integer constants first: a scaled float constant is a multiple of one
    arrays = {}
    for name, props, stored, fields in sorted(consts, key=lambda c: (c[3] or {}).get("as") == "scaled"):
        arrays[name] = packing.decode(name, stored, fields, arrays, parts)
    for name, props, _, _ in consts:
        g.add_tensor(_tensor_from(name, props, arrays[name].shape, arrays[name], parts))
    for v in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        props = {p.key: p.value for p in v.metadata_props}
        shape = [d.dim_value for d in v.type.tensor_type.shape.dim]
        g.add_tensor(_tensor_from(v.name, props, shape))
    g.inputs = [v.name for v in model.graph.input]
    g.outputs = [v.name for v in model.graph.output]
    for n in model.graph.node:
        g.add_node(n.op_type, n.name, n.input, n.output, {a.name: _attr_value(a) for a in n.attribute})
    _upgrade_coding(g)
    return g


#: node attributes of files written before the coding moved to the graph (it is derived from them)
_OLD_CODING_ATTRS = ("tc", "beta", "code_sum")


def _upgrade_coding(g: Graph) -> None:
    """A file from before ``swsc.coding`` holds Tc and beta on its encoder and layers (and the
    code sum on rescaled Affine layers): the graph's coding is taken from them."""
    for n in g.nodes:
        if g.coding is None and "tc" in n.attrs and "beta" in n.attrs:
            g.coding = Coding(int(n.attrs["tc"]), float(n.attrs["beta"]))
        for k in _OLD_CODING_ATTRS:
            n.attrs.pop(k, None)


def save(graph: Graph, path: str | os.PathLike) -> None:
    """Write atomically: a crash never leaves a half-written file behind."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        onnx.save(to_model(graph), str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def is_ir_model(model: onnx.ModelProto) -> bool:
    return any(o.domain == DOMAIN for o in model.opset_import)


def load(path: str | os.PathLike) -> Graph:
    try:
        model = onnx.load(str(path))
    except Exception as e:  # onnx raises DecodeError, OSError, ...
        raise InvalidModelError(f"cannot read as ONNX: {type(e).__name__}", file=str(path)) from e
    if not is_ir_model(model):
        raise InvalidModelError("not a swsc IR file (no ai.swsc opset)", file=str(path),
                                hint="compile the model first with 'swsc compile'")
    try:
        graph = from_model(model)
        verify(graph)     # a hand-edited or damaged file fails here, not deep in a runtime
    except (KeyError, ValueError, IndexError, TypeError, json.JSONDecodeError, InvalidModelError, IRVerifyError) as e:
        raise InvalidModelError(f"corrupt swsc IR file: {e}", file=str(path),
                                hint="recompile it from the quantized model with 'swsc compile'") from e
    return graph
