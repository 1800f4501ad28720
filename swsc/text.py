"""Deterministic text form of the IR, for reading while debugging and for golden tests.

The same graph always prints the same bytes: no object ids, attributes sorted,
floats in a fixed format, constants summarized by dtype, shape, min/max and a short
content hash (up to 8 elements inline). The header names the pass that produced the dump.
"""
from __future__ import annotations

import hashlib

import numpy as np

from .ir import Graph, Quant, Tensor

INLINE_MAX = 8


def fmt_float(x: float) -> str:
    x = float(x)
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return format(x, ".7g")


def content_hash(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype}{a.shape}".encode() + a.tobytes())
    return h.hexdigest()[:8]


def fmt_array(a: np.ndarray) -> str:
    a = np.asarray(a)
    if a.ndim == 0:
        return fmt_float(a) if a.dtype.kind == "f" else str(a.item())
    if a.size <= INLINE_MAX:
        vals = [fmt_float(v) if a.dtype.kind == "f" else str(v) for v in a.ravel().tolist()]
        return "[" + ", ".join(vals) + "]"
    lo, hi = a.min(), a.max()
    f = fmt_float if a.dtype.kind == "f" else str
    dims = ",".join(str(d) for d in a.shape)
    return f"<{a.dtype}[{dims}] min={f(lo)} max={f(hi)} #{content_hash(a)}>"


def fmt_quant(q: Quant) -> str:
    parts = [f"s={fmt_array(q.scale)}", f"z={fmt_array(q.zero_point)}"]
    if q.axis is not None:
        parts.append(f"axis={q.axis}")
    parts.append(f"range=[{q.lo},{q.hi}]")
    if q.theta is not None:
        parts.append(f"theta={fmt_float(q.theta)}")
    return "q{" + ", ".join(parts) + "}"


def fmt_type(t: Tensor) -> str:
    s = f"{t.dtype}[{','.join(str(d) for d in t.shape)}]"
    if t.t0 is not None:
        s += f"@t0={t.t0}"
    if t.quant is not None:
        s += " " + fmt_quant(t.quant)
    return s


def fmt_attr(v) -> str:
    if isinstance(v, float):
        return fmt_float(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(fmt_attr(x) for x in v) + "]"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return str(v)


def fmt_name(name: str) -> str:
    """Names come from model files: print them so one name can never break a line."""
    if name == "":
        return "%<none>"
    safe = all(c.isalnum() or c in "_./:-" for c in name) and name.isascii()
    return "%" + name if safe else "%" + fmt_attr(name)


def to_text(graph: Graph, *, produced_by: str | None = None) -> str:
    by = produced_by or graph.meta.get("produced_by", "import")
    out = [f"# swsc IR | graph {fmt_attr(graph.name)} | after {by}"]
    for k in sorted(graph.meta):
        if k != "produced_by":
            out.append(f"# {k} = {graph.meta[k]!r}"[:2000])
    if graph.coding is not None:
        out.append(f"coding: {graph.coding.text()}")
    if graph.t_inf is not None:
        out.append(f"t_inf: {graph.t_inf}")
    if graph.integer:
        out.append("integer: true")
    out.append("inputs:")
    out += [f"  {fmt_name(i)} : {fmt_type(graph.tensors[i])}" for i in graph.inputs]
    consts, seen = [], set()
    for n in graph.nodes:
        for i in n.inputs:
            t = graph.tensors.get(i)
            if t is not None and t.is_const and i not in seen:
                seen.add(i)
                consts.append(t)
    consts += [graph.tensors[k] for k in sorted(graph.tensors)
               if graph.tensors[k].is_const and k not in seen]
    if consts:
        out.append("constants:")
        out += [f"  {fmt_name(t.name)} : {fmt_type(t)} = {fmt_array(t.data)}" for t in consts]
    out.append("nodes:")
    for n in graph.nodes:
        lhs = ", ".join(f"{fmt_name(o)} : {fmt_type(graph.tensors[o])}" for o in n.outputs)
        args = ", ".join(fmt_name(i) for i in n.inputs)
        attrs = ", ".join(f"{k}={fmt_attr(n.attrs[k])}" for k in sorted(n.attrs))
        line = f"  {lhs} = {n.op}({args})"
        if attrs:
            line += " {" + attrs + "}"
        out.append(line + f"  # {fmt_attr(n.name)}")
    out.append("outputs: " + ", ".join(fmt_name(o) for o in graph.outputs))
    return "\n".join(out) + "\n"
