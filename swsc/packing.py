"""Compact, exact storage of a graph's constants in a ``.sws.onnx`` file.

A compiled layer holds its weights twice: the model's integer weights ``wq`` (int8) and the
normalized real weights ``W`` (float64, eq. 18-19), which per output channel are ``wq - z``
times one factor. Stored as they are, the float64 copy makes the file 8x the quantized model.
So each constant is stored in the smallest of these forms that reproduces it bit for bit
(checked when it is written):

* ``int``: an integer constant in the narrowest integer type that holds its values;
* ``scaled``: a float constant as ``(Q - z) * f`` per leading-axis channel, where ``Q`` is an
  integer constant of the same shape beside it in a node (the stored array is ``f``), plus a
  patch of the elements that product misses;
* ``palette``: a float constant with few distinct values (a padded layer's per-position bias
  map) as those values and an index map;
* otherwise as it is.

An encoded constant's initializer carries the JSON ``swsc.packed`` (``as``, the original
``dtype`` and ``shape``, the form's fields); the extra arrays a form needs are initializers
of their own marked ``swsc.part_of``, which no node reads.
"""
from __future__ import annotations

import numpy as np

from .errors import InvalidModelError
from .ir import Graph

KEY, PART = "swsc.packed", "swsc.part_of"
#: integer storage types, narrowest first
_INT_TYPES = tuple(np.dtype(t) for t in ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64"))
_MIN_SIZE = 16            # smaller constants are not worth an encoding
_CANDIDATES = 6           # distinct |k| per channel whose exact ratio W / k is tried as the factor


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def contiguous(a: np.ndarray) -> np.ndarray:
    """``a`` in C order with its shape kept (np.ascontiguousarray turns a 0-d array into 1-d)."""
    return np.require(a, requirements="C")


def _bits(a: np.ndarray) -> np.ndarray:
    """The elements' bit patterns: -0.0 and 0.0 (and every NaN) stay distinct."""
    return contiguous(a).view(np.dtype(f"u{a.dtype.itemsize}"))


def narrow(a: np.ndarray) -> np.ndarray:
    """``a`` in the narrowest integer type that holds its range (``a`` itself if none is narrower)."""
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    for t in _INT_TYPES:
        if t.itemsize >= a.dtype.itemsize:
            break
        if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max:
            return a.astype(t)
    return a


# ------------------------------------------------------------------ decoding
def _scaled(fields: dict, f: np.ndarray, q: np.ndarray) -> np.ndarray:
    shape = tuple(fields["shape"])
    m = shape[0]
    # one zero point per channel, or one for all
    k = q.astype(np.float64).reshape(m, -1) - np.asarray(fields["zero_point"], np.float64).reshape(-1, 1)
    return (k * f.reshape(m, 1)).astype(fields["dtype"]).reshape(shape)


def _patched(a: np.ndarray, fields: dict, parts: dict) -> np.ndarray:
    if "patch" in fields:
        idx, val = (parts[p] for p in fields["patch"])
        a = a.copy()
        a.reshape(-1)[idx.astype(np.int64)] = val
    return a


def decode(name: str, stored: np.ndarray, fields: dict | None, arrays: dict, parts: dict) -> np.ndarray:
    """The constant ``name`` from its stored array; ``arrays`` holds the decoded integer
    constants a ``scaled`` form refers to, ``parts`` the extra arrays by name. Raises
    InvalidModelError on a form it does not know or a missing reference."""
    if fields is None:
        return stored
    how = fields.get("as")
    missing = [p for p in fields.get("patch", []) + [fields.get("index")] if p and p not in parts]
    if missing:
        raise InvalidModelError(f"constant '{name}' refers to a missing part '{missing[0]}' (dangling reference)")
    if how == "int":
        return stored.astype(fields["dtype"])
    if how == "palette":
        return stored[parts[fields["index"]].astype(np.int64)].reshape(tuple(fields["shape"]))
    if how == "scaled":
        if fields["of"] not in arrays:
            raise InvalidModelError(f"constant '{name}' is stored as a multiple of '{fields['of']}', which is "
                             "missing (dangling reference)")
        return _patched(_scaled(fields, stored, arrays[fields["of"]]), fields, parts)
    raise InvalidModelError(f"constant '{name}' has an unknown storage form {how!r}")


# ------------------------------------------------------------------ encoding
def _channel_factor(k: np.ndarray, w: np.ndarray) -> float:
    """The factor ``f`` whose products ``k * f`` hit most of ``w`` exactly: the exact ratio
    ``w / k`` at a few of the largest ``|k|``, and its neighbours one and two ulps away."""
    nz = np.flatnonzero(k)
    if not nz.size:
        return 0.0
    _, first = np.unique(-np.abs(k[nz]), return_index=True)   # largest |k| first
    best, best_miss = 0.0, None
    for j in nz[first[:_CANDIDATES]]:
        f0 = w[j] / k[j]
        up, down = np.nextafter(f0, np.inf), np.nextafter(f0, -np.inf)
        for f in (f0, up, down, np.nextafter(up, np.inf), np.nextafter(down, -np.inf)):
            miss = int(np.count_nonzero(_bits(k * f) != _bits(w)))
            if best_miss is None or miss < best_miss:
                best, best_miss = float(f), miss
            if miss == 0:
                return best
    return best


def _try_scaled(name, a: np.ndarray, q_name: str, q) -> tuple | None:
    m = a.shape[0]
    zp = np.zeros(m, dtype=np.int64)
    if q.quant is not None and q.quant.axis in (None, 0):
        zp = np.broadcast_to(q.quant.zero_point, (m,)).astype(np.int64)
    k = q.data.astype(np.float64).reshape(m, -1) - zp.reshape(m, 1).astype(np.float64)
    w = a.reshape(m, -1)
    f = np.array([_channel_factor(k[c], w[c]) for c in range(m)], dtype=np.float64)
    fields = {"as": "scaled", "dtype": str(a.dtype), "shape": list(a.shape), "of": q_name,
              "zero_point": int(zp[0]) if np.all(zp == zp[0]) else [int(z) for z in zp]}
    parts = {}
    miss = np.flatnonzero(_bits(_scaled(fields, f, q.data)).reshape(-1) != _bits(a).reshape(-1))
    if miss.size:
        fields["patch"] = [f"{name}#patch_index", f"{name}#patch_value"]
        parts = {fields["patch"][0]: narrow(miss), fields["patch"][1]: a.reshape(-1)[miss]}
    return f, fields, parts


def _try_palette(name, a: np.ndarray) -> tuple | None:
    values, index = np.unique(_bits(a).reshape(-1), return_inverse=True)
    if len(values) > 65536:
        return None
    fields = {"as": "palette", "dtype": str(a.dtype), "shape": list(a.shape), "index": f"{name}#index"}
    return values.view(a.dtype), fields, {fields["index"]: narrow(index.astype(np.int64))}


def _int_siblings(graph: Graph, name: str, shape) -> list[str]:
    """Integer constants of the same shape that share a node with ``name``, in node order."""
    out = []
    for n in graph.consumers(name):
        for i in n.inputs:
            t = graph.tensors.get(i)
            if t is not None and t.is_const and t.data.shape == shape and t.data.dtype.kind in "iu" \
                    and i not in out:
                out.append(i)
    return out


def _nbytes(stored, parts) -> int:
    return stored.nbytes + sum(p.nbytes for p in parts.values())


def encode(graph: Graph, name: str) -> tuple[np.ndarray, dict | None, dict]:
    """(stored array, ``swsc.packed`` fields or None, {part name: array}) for constant ``name``:
    the smallest form that decodes to the same bits."""
    a = contiguous(graph.tensors[name].data)
    options = []
    if a.dtype.kind in "iu":
        n = narrow(a)
        if n.dtype != a.dtype:
            options.append((n, {"as": "int", "dtype": str(a.dtype)}, {}))
    elif a.dtype.kind == "f" and a.size >= _MIN_SIZE:
        if a.dtype == np.float64 and a.ndim >= 1:
            options += [_try_scaled(name, a, q, graph.tensors[q]) for q in _int_siblings(graph, name, a.shape)[:1]]
        options.append(_try_palette(name, a))
    best = (a, None, {})
    for opt in options:
        if opt is None or _nbytes(opt[0], opt[2]) >= _nbytes(*best[::2]):
            continue
        if any(p in graph.tensors for p in opt[2]):
            continue   # a part's name must not shadow a tensor
        ints = {opt[1]["of"]: graph.tensors[opt[1]["of"]].data} if opt[1]["as"] == "scaled" else {}
        if _same_bits(decode(name, opt[0], opt[1], ints, opt[2]), a):   # exact, or not used
            best = opt
    return best
