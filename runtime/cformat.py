"""C text helpers of the C backend: literals, sanitized names and comments, integer types.

The lowest layer of the backend (it imports only numpy and swsc.errors). The planner
(``cplan.py``) hands these to the op modules' ``c_plan`` hooks through its own methods
(``pl.c_int(v)``, ``pl.wide(...)``): op modules never import the runtime.
"""
from __future__ import annotations

import re

import numpy as np

from swsc.errors import SwscError
from swsc.ir import fresh_name

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

_COMMENT_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-.,:;=+()[]{}<>#@!%&|~^$")


def c_comment(text, maxlen: int = 160) -> str:
    """Text safe inside a C comment and inside a C string literal: printable ASCII
    without ``*``, ``/``, ``\\``, quotes, ``?`` (trigraphs) or newlines; others become ``_``."""
    s = "".join(ch if ch in _COMMENT_OK else "_" for ch in str(text))
    if len(s) > maxlen:
        s = s[:maxlen - 3] + "..."
    return s


def c_ident(text, taken: set, maxlen: int = 32) -> str:
    """A C identifier fragment from ``text``: ``[A-Za-z0-9_]``, not starting with a digit,
    not in ``taken`` (case-insensitively, since it may also be upper-cased into a macro);
    deterministic: the same sequence of calls gives the same names."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", str(text))
    s = re.sub(r"_+", "_", s).strip("_") or "x"
    if s[0].isdigit():
        s = "n" + s
    s = s[:maxlen].rstrip("_")        # truncation must not leave a macro name ending in '_'
    s = fresh_name(s, taken, maxlen=maxlen, key=str.lower)
    taken.add(s.lower())
    return s


def c_int(v: int) -> str:
    """A C integer literal (decimal), written so that INT32_MIN / INT64_MIN stay valid."""
    v = int(v)
    if v == -2**63:
        return "(-9223372036854775807 - 1)"
    if v == -2**31:
        return "(-2147483647 - 1)"
    if v > INT32_MAX or v < -INT32_MAX:
        return f"{v}LL" if v > 0 else f"({v}LL)"
    return str(v)


def c_float(v: float) -> str:
    """Exact C99 hex literal of a float32 value."""
    return float(np.float32(v)).hex() + "f"


def c_double(v: float) -> str:
    return float(v).hex()


_CTYPES = [("int8_t", 1, -2**7, 2**7 - 1), ("int16_t", 2, -2**15, 2**15 - 1),
           ("int32_t", 4, -2**31, 2**31 - 1), ("int64_t", 8, -2**63, 2**63 - 1)]
CTYPE_BYTES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4,
               "int64_t": 8}


def int_ctype(lo: int, hi: int, at_least: int = 1) -> tuple[str, int]:
    """The narrowest signed C type (name, bytes) of at least ``at_least`` bytes holding [lo, hi]."""
    for name, size, tmin, tmax in _CTYPES:
        if size >= at_least and tmin <= lo and hi <= tmax:
            return name, size
    raise SwscError(f"integer range [{lo}, {hi}] does not fit int64")


def wide_ctype(bound: int, what: str, node=None) -> tuple[str, int]:
    """int32_t when |values| <= bound fits, else int64_t."""
    if bound <= INT32_MAX:
        return "int32_t", 4
    if bound <= INT64_MAX:
        return "int64_t", 8
    raise SwscError(f"{what} may reach {bound}, beyond int64", node=node.name if node else None,
                    op=node.op if node else None)


def input_ctype(lo: int, hi: int) -> tuple[str, int, int]:
    """The C element type of the model's quantized input for codes [lo, hi]: the one choice,
    used by the planner (the harness's input type) and by ``input_quant`` (the numpy dtype
    of raw input files). Returns (C type, type min, type max); the caller checks the fit."""
    if lo < 0:
        return ("int8_t", -128, 127) if lo >= -128 and hi <= 127 else ("int16_t", -2**15, 2**15 - 1)
    return ("uint8_t", 0, 255) if hi <= 255 else ("uint16_t", 0, 2**16 - 1)


def format_array(values, per_line: int = 16) -> str:
    """The body of a C array initializer: decimal literals, ``per_line`` to a line."""
    vals = [c_int(v) for v in np.asarray(values).reshape(-1).tolist()]
    rows = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    return "    " + ",\n    ".join(rows)
