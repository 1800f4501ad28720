"""The C backend: an integer SWS graph (after ``lower-to-integer``) as portable C99.

``emit_c(graph, out_dir, prefix=..., header_info=...)`` writes

* ``<prefix>.h``          the public API, size/shape macros, the stats struct;
* ``<prefix>.c``          the integer network core (no float, no malloc, no stdio);
* ``<prefix>_weights.c``  every constant (``const``, so it lands in flash);
* ``<prefix>_internal.h`` declarations shared by the two files above;
* ``<prefix>_float.c``    the float helpers: quantize the input, dequantize the output,
                          the float tail (Softmax);
* ``main.c``, ``Makefile`` a host harness reading raw samples and writing raw results;
* ``manifest.json``       what ``run_binary`` needs to parse the harness output.

Python computes every number (loop bounds, offsets, constants, limits, buffer
placement); the jinja2 templates in ``templates/`` only loop and substitute. The
generated code executes docs/integer.md exactly as the numpy runtime's integer mode
does; the widths of all intermediate integers are chosen from proven bounds, the
membrane's from ``lower_to_integer.membrane_bound`` (the same proof the pass and the
integer runtime use), recomputed here from the constants themselves.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import swsc
from swsc.errors import SwscError, UnsupportedOpError
from swsc.ir import Graph, Node, scalar
from swsc.passes.lower_to_integer import membrane_bits, membrane_bound

from . import firmware

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
TEMPLATES = Path(__file__).resolve().parent / "templates"
DEFAULT_CFLAGS = "-std=c99 -O2 -Wall -Wextra -pedantic"
_PREFIX_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,23}$")


# ---------------------------------------------------------------- sanitizing
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
    base, i = s, 1
    while s.lower() in taken:
        suffix = f"_{i}"
        s = base[:maxlen - len(suffix)] + suffix
        i += 1
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


def int_ctype(lo: int, hi: int, at_least: int = 1) -> tuple[str, int]:
    for name, size, tmin, tmax in _CTYPES:
        if size >= at_least and tmin <= lo and hi <= tmax:
            return name, size
    raise SwscError(f"integer range [{lo}, {hi}] does not fit int64")


def _wide(bound: int, what: str, node: Node | None = None) -> tuple[str, int]:
    """int32_t when |values| <= bound fits, else int64_t."""
    if bound <= INT32_MAX:
        return "int32_t", 4
    if bound <= INT64_MAX:
        return "int64_t", 8
    raise SwscError(f"{what} may reach {bound}, beyond int64", node=node.name if node else None,
                    op=node.op if node else None)


# ---------------------------------------------------------------- report
@dataclass
class LayerMem:
    name: str
    op: str
    flash_bytes: int
    ram_bytes: int
    membrane_bits: int = 0     # TSA layers: bits the proven membrane bound needs (signed)
    saturating: bool = False   # TSA layers: the membrane saturates (docs/integer.md)


@dataclass
class CReport:
    files: list[Path]
    flash_bytes: int
    ram_bytes: int
    layers: list[LayerMem]
    prefix: str = "sws"
    arena_bytes: int = 0       # all spike buffers, after reuse
    work_bytes: int = 0        # largest per-layer scratch (accumulators, membranes), on the stack
    stats_bytes: int = 0
    buffers_unshared: int = 0  # the spike buffers' total without reuse
    executable: str = ""

    def format(self) -> str:
        """The static memory report as text (what the CLI and the harness print)."""
        w = max([len(lay.name) for lay in self.layers] + [5])
        lines = [f"memory report for '{self.prefix}' (bytes)",
                 f"  {'layer':<{w}}  {'op':<12} {'flash':>10} {'ram':>10}"]
        for lay in self.layers:
            lines.append(f"  {lay.name:<{w}}  {lay.op:<12} {lay.flash_bytes:>10} {lay.ram_bytes:>10}")
        lines.append(f"  {'total':<{w}}  {'':<12} {self.flash_bytes:>10} {self.ram_bytes:>10}")
        lines.append(f"  ram = spike arena {self.arena_bytes} (unshared {self.buffers_unshared})"
                     f" + scratch {self.work_bytes} + stats {self.stats_bytes}")
        tsa = [lay for lay in self.layers if lay.membrane_bits]
        if tsa:
            lines.append("  membrane bits needed (proven bound): " + ", ".join(
                f"{lay.name} {lay.membrane_bits}{' sat' if lay.saturating else ''}" for lay in tsa))
        return "\n".join(lines)


# ---------------------------------------------------------------- helpers

def _prod(shape) -> int:
    p = 1
    for d in shape:
        p *= int(d)
    return p


def _geometry(attrs: dict):
    k = [int(v) for v in attrs["kernel"]]
    nd = len(k)
    s = [int(v) for v in (attrs.get("strides") or [1] * nd)]
    p = [int(v) for v in (attrs.get("pads") or [0] * 2 * nd)]
    d = [int(v) for v in (attrs.get("dilations") or [1] * nd)]
    return k, s, p, d


def _code_sum(tc: int, beta: int) -> int:
    return sum(beta ** (tc - k) for k in range(1, tc + 1))


def _format_array(values, per_line: int = 16) -> str:
    vals = [c_int(v) for v in np.asarray(values).reshape(-1).tolist()]
    rows = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    return "    " + ",\n    ".join(rows)


class _Arrays:
    """The constant arrays of the model (all go to ``<prefix>_weights.c``)."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.items: list[dict] = []
        self._by_content: dict[tuple, str] = {}
        self._syms: set[str] = set()

    def add(self, name: str, values, comment: str, *, ctype: str | None = None,
            share: bool = False) -> tuple[str, int]:
        arr = np.asarray(values).astype(np.int64).reshape(-1)
        if arr.size == 0:
            arr = np.zeros(1, dtype=np.int64)
        if ctype is None:
            ctype, size = int_ctype(int(arr.min()), int(arr.max()))
        else:
            size = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4,
                    "int64_t": 8}[ctype]
        key = (ctype, tuple(arr.tolist())) if share else None
        if key is not None and key in self._by_content:
            return self._by_content[key], 0
        sym = base = f"{self.prefix}_{name}"
        i = 1
        while sym in self._syms:          # names built from two model names may meet
            sym = f"{base}_{i}"
            i += 1
        self._syms.add(sym)
        self.items.append({"sym": sym, "ctype": ctype, "n": int(arr.size), "comment": c_comment(comment),
                           "body": _format_array(arr)})
        if key is not None:
            self._by_content[key] = sym
        return sym, int(arr.size) * size


# ---------------------------------------------------------------- the planner
class _Planner:
    """Walks the graph in topological order and produces the emission plan."""

    def __init__(self, graph: Graph, prefix: str):
        if graph.meta.get("integer") != "1":
            raise SwscError("the C backend needs a graph compiled with lower-to-integer",
                            hint="compile with integer=True or --target c")
        self.g = graph
        self.prefix = prefix
        self.arrays = _Arrays(prefix)
        self.order = graph.topo_order()
        self.taken: set[str] = set()
        self.steps: list[dict] = []
        self.layers: list[dict] = []       # stats entries: encoder and TSA layers, in order
        self.mem: list[LayerMem] = []
        self.buffers: dict[str, dict] = {}  # root spike tensor -> {size, start, end}
        self.root: dict[str, str] = {}      # spike tensor -> root tensor (aliases)
        self.outputs: list[dict] = []
        self.work_bytes = 0
        self.tc = None
        self.beta = None
        self.input = None
        bad = []
        if len(graph.inputs) != 1:
            bad.append((graph.name, "graph", f"the C backend takes one input, the graph has {len(graph.inputs)}"))
        for n in self.order:
            if not hasattr(self, "_op_" + n.op):
                bad.append((n.name, n.op, "the C backend has no code for this op"))
        if bad:
            raise UnsupportedOpError(bad)

    # -- tensors and buffers
    def t(self, name):
        return self.g.tensors[name]

    def frame(self, name) -> tuple[int, ...]:
        return tuple(self.t(name).shape[1:])

    def numel(self, name) -> int:
        return _prod(self.frame(name))

    def ident(self, node: Node) -> str:
        return c_ident(node.name, self.taken, 24)

    def new_buffer(self, name: str, idx: int) -> None:
        t = self.t(name)
        if t.dtype != "spike":
            raise SwscError(f"expected a spike tensor, '{name}' is {t.dtype}")
        self.root[name] = name
        self.buffers[name] = {"size": 2 * self.numel(name), "start": idx, "end": idx}   # in mask words

    def use(self, name: str, idx: int) -> str:
        r = self.root[name]
        self.buffers[r]["end"] = max(self.buffers[r]["end"], idx)
        return r

    def spike_bytes(self, name: str) -> int:
        return 2 * self.numel(name) * self.mask_bytes

    def alias(self, out: str, src: str, idx: int) -> None:
        self.root[out] = self.use(src, idx)

    def spike_in(self, name: str, idx: int) -> dict:
        return {"buf": self.use(name, idx)}

    def stat(self, node: Node) -> int:
        self.layers.append({"name": node.name, "ident": None, "op": node.op})
        return len(self.layers) - 1

    # -- the walk
    def plan(self) -> None:
        for idx, node in enumerate(self.order):
            getattr(self, "_op_" + node.op)(node, idx)
        for o in self.g.outputs:
            if not any(out["tensor"] == o for out in self.outputs):
                raise UnsupportedOpError([(o, "output", "a graph output that is not a decoded spike tensor "
                                           "(SwsDecode, optionally followed by Softmax)")])
        live = {o["decode_tensor"] for o in self.outputs if o["tensor"] in self.g.outputs}
        self.outputs = sorted((o for o in self.outputs if o["decode_tensor"] in live),
                              key=lambda out: self.g.outputs.index(out["tensor"]))
        self.steps = [st for st in self.steps if st["kind"] != "decode" or st["tensor"] in live]
        base = 0
        for i, out in enumerate(self.outputs):
            out["index"], out["base"] = i, base
            base += out["n"]
        for st in self.steps:
            if st["kind"] == "decode":
                st["base"] = next(o["base"] for o in self.outputs if o["decode_tensor"] == st["tensor"])
        self.output_size = base
        self.allocate()
        layer_taken: set[str] = set()
        for lay in self.layers:
            lay["ident"] = c_ident(lay["name"], layer_taken, 24).upper()
            lay["comment"] = c_comment(lay["name"], 60)

    def allocate(self) -> None:
        """First-fit placement of the spike buffers by liveness (topological steps)."""
        placed: list[tuple[int, int, int, int]] = []   # (offset, size, start, end)
        self.arena = 0
        self.unshared = 0
        for name, b in self.buffers.items():   # in creation order
            size = b["size"]
            self.unshared += size
            live = sorted((o, s) for o, s, st, en in placed if not (en < b["start"] or st > b["end"]))
            off = 0
            for o, s in live:
                if off + size <= o:
                    break
                off = max(off, o + s)
            b["offset"] = off
            placed.append((off, size, b["start"], b["end"]))
            self.arena = max(self.arena, off + size)
        for st in self.steps:
            for key in ("in", "out"):
                if key in st:
                    st[key + "_off"] = self.buffers[st[key]]["offset"]
            if "ins" in st:
                for i in st["ins"]:
                    i["off"] = self.buffers[i["buf"]]["offset"]

    def _mem(self, node: Node, flash: int, ram: int, bits: int = 0, sat: bool = False) -> None:
        self.mem.append(LayerMem(c_comment(node.name, 60), node.op, int(flash), int(ram), bits, sat))

    # -- encoder
    def _op_SwsEncode(self, node: Node, idx: int) -> None:
        a = node.attrs
        if self.input is not None:
            raise UnsupportedOpError([(node.name, node.op, "more than one encoder")])
        if len(node.inputs) < 2 or not node.inputs[1]:
            raise SwscError("the encoder has no lookup table (run lower-to-integer)", node=node.name, op=node.op)
        self.tc, self.beta = int(a["tc"]), int(a["beta"])
        if self.tc > 32:
            raise UnsupportedOpError([(node.name, node.op, "the C backend packs a spike train in 32 bits: Tc <= 32")])
        self.mask_t, self.mask_bytes = (("uint8_t", 1) if self.tc <= 8 else ("uint16_t", 2) if self.tc <= 16
                                        else ("uint32_t", 4))
        self.bit1 = "(uint32_t)1" if self.tc > 16 else "1u"
        out = self.t(node.outputs[0])
        q = out.quant
        lut = np.asarray(self.g.const(node.inputs[1])).astype(np.int64)
        levels = q.hi - q.lo + 1
        if lut.shape != (levels, self.tc):
            raise SwscError(f"encoder table has shape {lut.shape}, expected {(levels, self.tc)}",
                            node=node.name, op=node.op)
        if q.lo < 0:
            in_t, tmin, tmax = ("int8_t", -128, 127) if q.lo >= -128 and q.hi <= 127 else ("int16_t", -2**15, 2**15 - 1)
        else:
            in_t, tmin, tmax = ("uint8_t", 0, 255) if q.hi <= 255 else ("uint16_t", 0, 2**16 - 1)
        if not (tmin <= q.lo and q.hi <= tmax):
            raise UnsupportedOpError([(node.name, node.op, f"input range [{q.lo}, {q.hi}] is wider than 16 bits")])
        self.new_buffer(node.outputs[0], idx)
        ident = self.ident(node)
        weights = (1 << np.arange(self.tc, dtype=np.int64))
        masks = np.stack([((lut > 0) * weights).sum(axis=1), ((lut < 0) * weights).sum(axis=1)], axis=1)
        sym, flash = self.arrays.add(f"lut_{ident}", masks, f"encoder {node.name}: (+1 mask, -1 mask) per code P - lo",
                                     ctype=self.mask_t)
        n = self.numel(node.outputs[0])
        self.input = {"n": n, "dims": list(self.frame(node.outputs[0])), "ctype": in_t,
                      "dtype": in_t.replace("_t", ""), "lo": q.lo, "hi": q.hi,
                      "scale": c_float(scalar(q.scale)), "zp": c_float(scalar(q.zero_point)),
                      "tensor": node.inputs[0]}
        self.steps.append({"kind": "encode", "fn": f"{self.prefix}_l{idx}_{ident}", "comment": c_comment(node.name),
                           "out": node.outputs[0], "n": n, "lo": q.lo, "hi": q.hi, "lut": sym,
                           "stat": self.stat(node), "tc": self.tc})
        self._mem(node, flash, self.spike_bytes(node.outputs[0]))

    # -- TSA layers
    def _param(self, values, frame, name: str, node: Node, what: str, spatial: bool = False):
        """A per-neuron integer constant as a C expression in the loop variables m (channel)
        and p (position inside the channel; oy, ox where ``spatial``): a literal, a per-channel array,
        a table per border class (``spatial``), or a full map."""
        a = np.asarray(values).astype(np.int64)
        while a.ndim > len(frame) and a.shape[0] == 1:
            a = a[0]
        try:
            full = np.broadcast_to(a, frame)
        except ValueError:
            raise SwscError(f"{what} of shape {a.shape} does not broadcast to the output frame {frame}",
                            node=node.name, op=node.op) from None
        lo, hi = int(full.min()), int(full.max())
        if lo == hi:
            return c_int(lo), 0, max(abs(lo), abs(hi))
        chan = full.reshape(frame[0], -1)
        if np.all(chan == chan[:, :1]):
            sym, flash = self.arrays.add(name, chan[:, 0], f"{what} per channel, {node.name}")
            return f"{sym}[m]", flash, max(abs(lo), abs(hi))
        big = max(abs(lo), abs(hi))
        if spatial and len(frame) == 3:
            # a padded layer's map differs only near the borders: rows (and columns) with equal
            # values form classes; store one value per (channel, row class, column class)
            _, ry, cy = np.unique(full.transpose(1, 0, 2).reshape(frame[1], -1), axis=0, return_index=True,
                                  return_inverse=True)[:3]
            reduced = full[:, np.sort(ry), :]
            cy = np.searchsorted(np.sort(ry), ry[np.asarray(cy).reshape(-1)])
            _, rx, cx = np.unique(reduced.transpose(2, 0, 1).reshape(frame[2], -1), axis=0, return_index=True,
                                  return_inverse=True)[:3]
            cx = np.searchsorted(np.sort(rx), rx[np.asarray(cx).reshape(-1)])
            table = reduced[:, :, np.sort(rx)]
            ny, nx = table.shape[1], table.shape[2]
            if np.array_equal(table[:, cy][:, :, cx], full):
                size = int_ctype(lo, hi)[1]
                if table.size * size + frame[1] + frame[2] < full.size * size:
                    tsym, f1 = self.arrays.add(name, table, f"{what} per (channel, row class, column class), "
                                               f"{node.name}")
                    ysym, f2 = self.arrays.add(name + "_rows", cy, f"row class per output row, {node.name}")
                    xsym, f3 = self.arrays.add(name + "_cols", cx, f"column class per output column, {node.name}")
                    return f"{tsym}[(m * {ny}L + {ysym}[oy]) * {nx} + {xsym}[ox]]", f1 + f2 + f3, big
        sym, flash = self.arrays.add(name, full, f"{what} per neuron, {node.name}")
        npos = chan.shape[1]
        return f"{sym}[m * {npos}L + p]", flash, big

    def _op_TsaLayer(self, node: Node, idx: int) -> None:
        a = node.attrs
        n, kind = int(a["n_inputs"]), a["kind"]
        if "int_acc_mul" not in a:
            raise SwscError("TSA layer lacks 'int_acc_mul' (run lower-to-integer)", node=node.name, op=node.op)
        for key in ("int_vth", "int_hi", "int_membrane"):
            if key not in a:
                raise SwscError(f"TSA layer lacks '{key}' (run lower-to-integer)", node=node.name, op=node.op)
        if len(node.inputs) < n + 5:
            raise SwscError("TSA layer lacks its integer constants wq/bq/rq", node=node.name, op=node.op)
        tc, ts, beta = int(a["tc"]), int(a["ts"]), int(a["beta"])
        if tc != self.tc or beta != self.beta:
            raise UnsupportedOpError([(node.name, node.op, "Tc and beta must be the same in every layer")])
        acc_mul = int(a["int_acc_mul"])
        num, den = (int(v) for v in a["int_vth"])
        hi = int(a["int_hi"])
        wq_name = node.inputs[n + 2]
        wq = None if not wq_name else np.asarray(self.g.const(wq_name)).astype(np.int64)
        bq = np.asarray(self.g.const(node.inputs[n + 3])).astype(np.int64)
        rq = np.asarray(self.g.const(node.inputs[n + 4])).astype(np.int64)
        bd = (np.asarray(self.g.const(node.inputs[n + 5])).astype(np.int64)
              if len(node.inputs) > n + 5 and node.inputs[n + 5] else None)
        out = node.outputs[0]
        frame = self.frame(out)
        ins = [self.spike_in(i, idx) for i in node.inputs[:n]]
        self.new_buffer(out, idx)
        ident = self.ident(node)
        st = {"kind": kind, "fn": f"{self.prefix}_l{idx}_{ident}", "comment": c_comment(node.name),
              "out": out, "tc": tc, "ts": ts, "beta": beta, "num": num, "den": den,
              "one": c_int(acc_mul), "stat": None}
        flash = 0
        # ---- the synaptic map
        if kind == "conv":
            if wq is None or wq.ndim != 4:
                raise UnsupportedOpError([(node.name, node.op, "only 2-D convolutions")])
            k, s, p, d = _geometry(a)
            group = int(a.get("group", 1))
            cin, H, W = self.frame(node.inputs[0])
            M, CG, KH, KW = wq.shape
            _, OH, OW = frame
            G, MG = group, M // group
            fan = int(np.abs(wq).reshape(M, -1).sum(axis=1).max())
            blk = _blocking(MG, tc, fan)
            wt = wq.reshape(G, MG, CG, KH, KW).transpose(0, 2, 3, 4, 1)
            wt = np.pad(wt, [(0, 0)] * 4 + [(0, blk["MGP"] - MG)])
            wsym, wb = self.arrays.add(f"w_{ident}", wt, f"weights w - z_w as [{G}][{CG}][{KH}][{KW}][{blk['MGP']}] "
                                       f"(group, in channel, ky, kx, out channel padded with 0), {node.name}")
            flash += wb
            st.update(inp=ins[0], M=M, G=G, MG=MG, CG=CG, KH=KH, KW=KW, H=H, W=W, OH=OH, OW=OW,
                      SY=s[0], SX=s[1], PT=p[0], PL=p[1], DY=d[0], DX=d[1], w=wsym, npos=OH * OW,
                      wct=self.arrays.items[-1]["ctype"], **blk)
        elif kind == "dense":
            M, K = wq.shape
            fan = int(np.abs(wq).sum(axis=1).max())
            blk = _blocking(M, tc, fan)
            wsym, wb = self.arrays.add(f"w_{ident}", np.pad(wq.T, [(0, 0), (0, blk["MGP"] - M)]),
                                       f"weights w - z_w transposed [{K}][{blk['MGP']}] (out channels padded "
                                       f"with 0), {node.name}")
            flash += wb
            st.update(inp=ins[0], M=M, K=K, w=wsym, npos=1, wct=self.arrays.items[-1]["ctype"], **blk)
        elif kind == "avgpool":
            k, s, p, d = _geometry(a)
            if len(k) != 2:
                raise UnsupportedOpError([(node.name, node.op, "only 2-D pooling")])
            C, H, W = self.frame(node.inputs[0])
            _, OH, OW = frame
            fan = k[0] * k[1]
            st.update(inp=ins[0], M=C, H=H, W=W, OH=OH, OW=OW, KH=k[0], KW=k[1], SY=s[0], SX=s[1],
                      PT=p[0], PL=p[1], DY=d[0], DX=d[1], npos=OH * OW)
        elif kind == "add":
            w = wq.reshape(-1)
            if w.size != n:
                raise SwscError(f"add layer has {w.size} weights for {n} inputs", node=node.name, op=node.op)
            fan = int(np.abs(w).sum())
            npos = _prod(frame[1:])
            terms = []
            for i, name in zip(ins, node.inputs[:n]):
                fr = self.frame(name)
                fr = (1,) * (len(frame) - len(fr)) + tuple(fr)
                if tuple(fr) == tuple(frame):
                    index = "(m * %dL + p)" % npos
                elif all(v == 1 for v in fr[1:]) and fr[0] == frame[0]:
                    index = "m"
                elif all(v == 1 for v in fr):
                    index = "0"
                else:
                    raise UnsupportedOpError([(node.name, node.op, f"broadcast of an input {fr} to {frame}")])
                terms.append({**i, "index": index})
            for tm, wk in zip(terms, w.tolist()):
                tm["w"] = c_int(wk)
            flash += 4 * n
            st.update(ins=terms, M=frame[0], npos=npos)
        else:
            raise UnsupportedOpError([(node.name, node.op, f"layer kind '{kind}'")])
        if kind != "add":
            st["in"] = st["inp"]["buf"]
        # ---- per-neuron constants and widths
        spatial = kind in ("conv", "avgpool")
        st["bq"], fb, bq_max = self._param(bq, frame, f"bq_{ident}", node, "bias bq", spatial)
        flash += fb
        st["rq"], fr_, rq_max = self._param(rq, frame, f"rq_{ident}", node, "reset rq", spatial)
        flash += fr_
        st["bd"] = None
        if bd is not None and np.any(bd):
            if int(bd.min()) < 0 or int(bd.max()) >= 2**tc or int(bd.max()) > INT32_MAX:
                raise SwscError("bias dither bd out of range", node=node.name, op=node.op)
            st["bd"], fd, _ = self._param(bd, frame, f"bd_{ident}", node, "bias dither bd (bit t: +1 at step t)",
                                          spatial)
            flash += fd
            bq_max += 1
        if int(rq.min()) < 0:
            raise SwscError("negative reset rq", node=node.name, op=node.op)
        if fan > INT32_MAX:
            raise SwscError(f"synaptic sum may reach {fan}, beyond int32", node=node.name, op=node.op)
        sat = int(a.get("int_sat", 0))
        bound = membrane_bound(fan=fan, acc_mul=acc_mul, bq_max=bq_max, rq_max=rq_max, beta=beta, tc=tc, ts=ts,
                               num=num, den=den, sat=sat)
        if "int_bound" in a and bound > int(a["int_bound"]):
            raise SwscError(f"the membrane bound {bound} exceeds what lower-to-integer proved ({a['int_bound']})",
                            node=node.name, op=node.op)
        mt, msize = _wide(bound, "the membrane", node)
        st["sat"] = c_int(sat) if sat else None
        st["bits"] = membrane_bits(bound)
        st["thr"] = f"{num} * rqv" if den == 1 else f"({num} * rqv + {den - 1}) / {den}"
        st["thr_last"] = f"{num} * rqv + 1" if den == 1 else f"{num} * rqv / {den} + 1"
        st["mt"] = mt
        et, _ = _wide(beta * hi + 1, "the emitted value", node)
        st["et"] = et
        lim = [hi // beta ** (tc - 1 - k) for k in range(tc)]
        st["lim"], fl = self.arrays.add(f"lim_{ident}", lim, f"fire-limit (int_hi {hi}) per output step",
                                        ctype=et, share=True)
        flash += fl
        st["phases"] = _phases(tc, ts)
        # a conv position whose inputs are all silent gives every block the same outputs when the
        # neuron constants do not vary by position: computed once per block
        st["rest"] = kind == "conv" and all(e is None or e.endswith("[m]") or "[" not in e
                                            for e in (st["bq"], st["rq"], st["bd"]))
        st["stat"] = self.stat(node)
        self.steps.append(st)
        # a conv/dense block: accumulators, the widened weight row, the neurons' state (scan macro vscan)
        work = ((st["acc_size"] * (tc + 1) + 5 * msize + 24 + 2 * self.mask_bytes * st["rest"]) * st["MB"]
                if "MB" in st else 2 * msize + 4)
        self.work_bytes = max(self.work_bytes, work)
        self._mem(node, flash, self.spike_bytes(out) + work, st["bits"], bool(sat))

    # -- other spike ops
    def _op_SpikeMaxPool(self, node: Node, idx: int) -> None:
        k, s, p, d = _geometry(node.attrs)
        if len(k) != 2:
            raise UnsupportedOpError([(node.name, node.op, "only 2-D pooling")])
        C, H, W = self.frame(node.inputs[0])
        _, OH, OW = self.frame(node.outputs[0])
        for oy in range(OH):
            if not any(0 <= oy * s[0] - p[0] + ky * d[0] < H for ky in range(k[0])):
                raise UnsupportedOpError([(node.name, node.op, "a pooling window entirely in the padding")])
        for ox in range(OW):
            if not any(0 <= ox * s[1] - p[1] + kx * d[1] < W for kx in range(k[1])):
                raise UnsupportedOpError([(node.name, node.op, "a pooling window entirely in the padding")])
        full = all(0 <= oy * s[0] - p[0] + ky * d[0] < H for oy in range(OH) for ky in range(k[0])) and \
            all(0 <= ox * s[1] - p[1] + kx * d[1] < W for ox in range(OW) for kx in range(k[1]))
        S = _code_sum(self.tc, self.beta)
        pt, psize = _wide(self.beta * S + 1, "a max-pool partial value", node)
        inp = self.spike_in(node.inputs[0], idx)
        self.new_buffer(node.outputs[0], idx)
        ident = self.ident(node)
        self.steps.append({"kind": "maxpool", "fn": f"{self.prefix}_l{idx}_{ident}", "comment": c_comment(node.name),
                           "in": inp["buf"], "out": node.outputs[0], "C": C, "H": H, "W": W, "OH": OH, "OW": OW,
                           "KH": k[0], "KW": k[1], "SY": s[0], "SX": s[1], "PT": p[0], "PL": p[1],
                           "DY": d[0], "DX": d[1], "pt": pt, "tc": self.tc, "beta": self.beta,
                           "nv": k[0] * k[1] if full else None})
        work = k[0] * k[1] * (psize + 2 * self.mask_bytes) + 2 * psize
        self.work_bytes = max(self.work_bytes, work)
        self._mem(node, 0, self.spike_bytes(node.outputs[0]) + work)

    def _op_SpikeDelay(self, node: Node, idx: int) -> None:
        self.alias(node.outputs[0], node.inputs[0], idx)   # the runtime processes whole windows

    def _op_Reshape(self, node: Node, idx: int) -> None:
        self._spike_only(node)
        self.alias(node.outputs[0], node.inputs[0], idx)   # C-order elements: the same bytes

    def _spike_only(self, node: Node) -> None:
        if any(self.t(i).dtype != "spike" for i in node.inputs):
            raise UnsupportedOpError([(node.name, node.op, "the C backend runs structural ops on spike tensors only")])

    def _op_Transpose(self, node: Node, idx: int) -> None:
        self._spike_only(node)
        perm = [int(v) for v in node.attrs["perm"]]
        if perm[0] != 0:
            raise UnsupportedOpError([(node.name, node.op, "a transpose that moves the batch axis")])
        fperm = [v - 1 for v in perm[1:]]
        inf = self.frame(node.inputs[0])
        strides = [_prod(inf[i + 1:]) for i in range(len(inf))]
        outf = self.frame(node.outputs[0])
        inp = self.spike_in(node.inputs[0], idx)
        self.new_buffer(node.outputs[0], idx)
        ident = self.ident(node)
        dims = [{"n": outf[j], "stride": strides[fperm[j]]} for j in range(len(outf))]
        self.steps.append({"kind": "transpose", "fn": f"{self.prefix}_l{idx}_{ident}", "comment": c_comment(node.name),
                           "in": inp["buf"], "out": node.outputs[0], "dims": dims, "tc": self.tc})
        self._mem(node, 0, self.spike_bytes(node.outputs[0]))

    def _op_Concat(self, node: Node, idx: int) -> None:
        self._spike_only(node)
        outf = self.frame(node.outputs[0])
        fa = _frame_axis(node, len(outf) + 1, "a concat along the batch axis")
        outer = _prod(outf[:fa])
        inner = _prod(outf[fa + 1:]) * 2
        ins, off = [], 0
        for name in node.inputs:
            mid = self.frame(name)[fa]
            ins.append({**self.spike_in(name, idx), "block": mid * inner, "dst": off * inner})
            off += mid
        self.new_buffer(node.outputs[0], idx)
        ident = self.ident(node)
        self.steps.append({"kind": "concat", "fn": f"{self.prefix}_l{idx}_{ident}", "comment": c_comment(node.name),
                           "ins": ins, "out": node.outputs[0], "outer": outer, "row": outf[fa] * inner})
        self._mem(node, 0, self.spike_bytes(node.outputs[0]))

    # -- decoder and float tail
    def _op_SwsDecode(self, node: Node, idx: int) -> None:
        src = node.inputs[0]
        q = self.t(src).quant
        inp = self.spike_in(src, idx)
        t16 = node.attrs.get("int_theta_q16")
        n = self.numel(src)
        S = _code_sum(self.tc, self.beta)
        at, _ = _wide(self.beta * S + 1, "a decoded value")
        top = S * (int(t16) if t16 is not None else 1) + 2**15
        if t16 is not None:
            at, _ = _wide(top, "a decoded value")
        qmax = abs(q.lo) + (S if t16 is None else (top >> 16) + 1)
        if qmax > INT32_MAX:
            raise SwscError("decoded outputs do not fit int32", node=node.name, op=node.op)
        self.steps.append({"kind": "decode", "fn": f"{self.prefix}_l{idx}_decode", "comment": c_comment(node.name), "in": inp["buf"],
                           "n": n, "lo": q.lo, "t16": None if t16 is None else c_int(int(t16)), "at": at,
                           "tc": self.tc, "beta": self.beta, "tensor": node.outputs[0]})
        self.outputs.append({"tensor": node.outputs[0], "decode_tensor": node.outputs[0], "n": n,
                             "dims": list(self.frame(src)), "scale": c_double(scalar(q.scale)),
                             "zp": c_double(scalar(q.zero_point)), "softmax": None,
                             "name": c_comment(node.outputs[0], 60)})

    def _op_Softmax(self, node: Node, idx: int) -> None:
        src = node.inputs[0]
        out = next((o for o in self.outputs if o["tensor"] == src), None)
        if out is None or out["softmax"] is not None:
            raise UnsupportedOpError([(node.name, node.op, "a Softmax that does not follow a decoder")])
        if len(self.g.consumers(src)) > 1 or src in self.g.outputs:
            raise UnsupportedOpError([(node.name, node.op, "a decoded output used by more than the Softmax")])
        dims = out["dims"]
        fa = _frame_axis(node, len(dims) + 1, "softmax over the batch axis")
        out["softmax"] = {"outer": _prod(dims[:fa]), "len": dims[fa], "inner": _prod(dims[fa + 1:])}
        out["tensor"] = node.outputs[0]


#: the accumulators and the neuron state of a block of output channels stay under this many bytes (stack)
ACC_BLOCK_BYTES = 8192
SCAN_BYTES = 44   # per neuron of a block, int32 membranes: U, bq, rq, two thresholds, E, two masks, two counts, bd


def _frame_axis(node: Node, rank: int, batch_error: str) -> int:
    """The node's ``axis`` attribute as an axis of one frame (the batch axis is not allowed)."""
    axis = int(node.attrs["axis"])
    if axis < 0:
        axis += rank
    if axis == 0:
        raise UnsupportedOpError([(node.name, node.op, batch_error)])
    return axis - 1


def _blocking(channels: int, tc: int, fan: int) -> dict:
    """Output channels are computed in blocks sharing each input: each input's weight row
    (padded with zeros to ``MGP`` channels, a whole number of vectors) is added to the block's
    accumulators ``[Tc][MB]`` in every frame at once. The accumulators are int16_t where the
    synaptic sum ``|acc| <= fan`` fits (twice the lanes per vector), else int32_t; ``MB`` is
    the largest whole number of vectors that divides ``MGP`` and keeps the block under
    ACC_BLOCK_BYTES; ``MB_exact`` when it divides the real channel count too."""
    at, size = ("int16_t", 2) if fan <= 2**15 - 1 else ("int32_t", 4)
    lanes = 16 // size
    units = -(-channels // lanes)
    cap = max(1, ACC_BLOCK_BYTES // ((size * tc + SCAN_BYTES) * lanes))
    ub = max(u for u in range(1, min(units, cap) + 1) if units % u == 0)
    mb = ub * lanes
    return {"MB": mb, "MB_exact": channels % mb == 0, "at": at, "acc_size": size, "MGP": units * lanes}


def _phases(tc: int, ts: int) -> list[dict]:
    """Split the neuron scan t = 0 .. tc+ts-1 into loops with fixed behaviour:
    ``inp`` (acc and bias enter), ``fire`` (an output step), ``last`` (the last output
    step, where the threshold comparisons are strict)."""
    out = []
    bounds = sorted({0, tc, ts, tc + ts - 1, tc + ts})
    for lo, hi in zip(bounds, bounds[1:]):
        if lo >= hi:
            continue
        out.append({"lo": lo, "hi": hi, "inp": lo < tc, "fire": lo >= ts, "last": lo == tc + ts - 1})
    return out


# ---------------------------------------------------------------- emit
def _env():
    import jinja2
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, autoescape=False, trim_blocks=True,
                              lstrip_blocks=True)


def _options_text(graph: Graph, header_info: dict) -> str:
    opts = header_info.get("options", graph.meta.get("options", ""))
    if isinstance(opts, str):
        try:
            opts = json.loads(opts) if opts else {}
        except json.JSONDecodeError:
            return c_comment(opts, 300)
    if hasattr(opts, "to_json"):
        opts = json.loads(opts.to_json())
    if isinstance(opts, dict):
        return c_comment(" ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, sort_keys=True)}"
                                  for k, v in sorted(opts.items())), 300)
    return c_comment(opts, 300)


def emit_c(graph: Graph, out_dir, *, prefix: str = "sws", header_info: dict | None = None) -> CReport:
    """Write the C sources of ``graph`` (compiled with lower-to-integer) into ``out_dir``."""
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
        raise SwscError(f"C symbol prefix {prefix!r} must be a letter then letters, digits or '_' (max 24)")
    header_info = dict(header_info or {})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pl = _Planner(graph, prefix)
    pl.plan()
    P = prefix.upper()
    n_layers = len(pl.layers)
    stats_bytes = 8 * n_layers
    flash = sum(m.flash_bytes for m in pl.mem)
    arena_bytes = pl.arena * pl.mask_bytes
    ram = arena_bytes + pl.work_bytes + stats_bytes
    model = header_info.pop("model", graph.name)
    info = [("swsc version", swsc.__version__), ("model", c_comment(model, 200)),
            ("options", _options_text(graph, header_info))]
    header_info.pop("options", None)
    if "source" in graph.meta and "source" not in header_info:
        header_info["source"] = graph.meta["source"]
    for k in sorted(header_info):
        info.append((c_comment(k, 40), c_comment(header_info[k], 200)))
    for k in ("t_inf", "l_tsa"):
        if k in graph.meta:
            info.append((k, c_comment(graph.meta[k], 40)))
    exe = f"{prefix}_main"
    ctx = {
        "prefix": prefix, "P": P, "info": info, "steps": pl.steps, "layers": pl.layers, "n_layers": n_layers,
        "input": pl.input, "outputs": pl.outputs, "output_size": pl.output_size, "arena": pl.arena,
        "arrays": pl.arrays.items, "tc": pl.tc, "beta": pl.beta, "t_inf": int(graph.meta.get("t_inf", 0)),
        "flash": flash, "ram": ram, "mem": pl.mem, "work": pl.work_bytes, "stats_bytes": stats_bytes,
        "mask_t": pl.mask_t, "bit1": pl.bit1, "arena_bytes": arena_bytes,
        "arena_struct_bytes": stats_bytes + -(-arena_bytes // 4) * 4,   # sizeof(<prefix>_arena_t)
        "unshared": pl.unshared * pl.mask_bytes, "has_tail": any(o["softmax"] for o in pl.outputs), "exe": exe,
    }
    env = _env()
    files = {
        f"{prefix}.h": "model.h.j2",
        f"{prefix}_internal.h": "internal.h.j2",
        f"{prefix}.c": "core.c.j2",
        f"{prefix}_weights.c": "weights.c.j2",
        f"{prefix}_float.c": "float.c.j2",
        "main.c": "main.c.j2",
        "Makefile": "Makefile.j2",
    }
    written = []
    for fname, tpl in files.items():
        text = env.get_template(tpl).render(**ctx)
        path = out_dir / fname
        path.write_text(text, encoding="ascii")
        written.append(path)
    written += firmware.write_files(env, ctx, out_dir)   # start-up code + linker script: make TARGET=cortex-m4
    manifest = {
        "prefix": prefix, "exe": exe, "input": {"dtype": pl.input["dtype"], "size": pl.input["n"],
                                                "dims": pl.input["dims"], "lo": pl.input["lo"], "hi": pl.input["hi"]},
        "outputs": [{"name": graph.outputs[o["index"]], "size": o["n"], "dims": o["dims"]} for o in pl.outputs],
        "output_size": pl.output_size, "layers": [lay["name"] for lay in pl.layers],
    }
    mpath = out_dir / "manifest.json"
    mpath.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="ascii")
    written.append(mpath)
    return CReport(written, flash, ram, list(pl.mem), prefix=prefix, arena_bytes=arena_bytes,
                   work_bytes=pl.work_bytes, stats_bytes=stats_bytes, buffers_unshared=pl.unshared * pl.mask_bytes,
                   executable=exe)


# ---------------------------------------------------------------- build and run
def input_quant(graph: Graph) -> dict:
    """The encoder's quantizer: {scale, zero_point, lo, hi, dtype} of the C input type."""
    enc = next((n for n in graph.nodes if n.op == "SwsEncode"), None)
    if enc is None:
        raise SwscError("the graph has no encoder")
    q = graph.tensors[enc.outputs[0]].quant
    if q.lo < 0:
        dtype = "int8" if q.lo >= -128 and q.hi <= 127 else "int16"
    else:
        dtype = "uint8" if q.hi <= 255 else "uint16"
    return {"scale": scalar(q.scale), "zero_point": scalar(q.zero_point), "lo": q.lo, "hi": q.hi, "dtype": dtype}


def quantize_input(graph: Graph, x) -> np.ndarray:
    """numpy twin of ``<prefix>_quantize_input``: the model's QuantizeLinear in float32."""
    qi = input_quant(graph)
    v = np.rint(np.asarray(x, dtype=np.float32) / np.float32(qi["scale"])) + np.float32(qi["zero_point"])
    return np.clip(v, qi["lo"], qi["hi"]).astype(qi["dtype"])


def dequantize_output(graph: Graph, q: np.ndarray, index: int = 0) -> np.ndarray:
    """numpy twin of ``<prefix>_dequantize_output`` for graph output ``index``."""
    name = graph.outputs[index]
    node = graph.producer(name)
    if node is not None and node.op == "Softmax":
        node = graph.producer(node.inputs[0])
    qt = graph.tensors[node.inputs[0]].quant
    return (scalar(qt.scale) * (np.asarray(q, dtype=np.float64) - scalar(qt.zero_point))).astype(np.float32)


def build(out_dir, cc: str = "gcc", cflags: str | None = None, *, exe: str | None = None,
          ldflags: str = "") -> Path:
    """Compile the harness with ``make`` (or ``cc`` directly where make is missing); returns the
    executable. ``exe`` names it (to keep several builds of one directory apart)."""
    out_dir = Path(out_dir)
    manifest = json.loads((out_dir / "manifest.json").read_text())
    prefix = manifest["prefix"]
    exe = exe or manifest["exe"]
    cflags = DEFAULT_CFLAGS if cflags is None else cflags
    if shutil.which("make"):
        cmd = ["make", "-B", "-s", "-C", str(out_dir), f"CC={cc}", f"CFLAGS={cflags}", f"EXE={exe}",
               f"LDFLAGS={ldflags}"]
    else:
        srcs = ["main.c", f"{prefix}.c", f"{prefix}_weights.c", f"{prefix}_float.c"]
        cmd = [cc, *cflags.split(), "-o", str(out_dir / exe), *[str(out_dir / s) for s in srcs],
               *ldflags.split(), "-lm"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise SwscError(f"cannot run the C compiler '{cc}': not found", hint="install gcc or set CC") from e
    if r.returncode != 0:
        raise SwscError(f"C build failed ({' '.join(cmd)}):\n{r.stdout}{r.stderr}",
                        hint="the compiler is CC (default gcc)")
    return out_dir / exe


def _manifest(exe: Path) -> dict:
    return json.loads((Path(exe).parent / "manifest.json").read_text())


def run_binary(exe, x_q: np.ndarray, *, per_sample: bool = False, timeout: float = 600):
    """Run the harness on quantized inputs ``x_q`` [N, ...] (the model's input integer type).

    Returns (outputs_q int32 [N, *output frame] (outputs concatenated flat when there are
    several), {layer name: (spikes_pos, spikes_neg)}) with counts summed over the samples,
    or int arrays [N] each with ``per_sample``.
    """
    exe = Path(exe)
    man = _manifest(exe)
    data, n = input_bytes(man, x_q)
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    r = subprocess.run([str(exe)], input=data, capture_output=True, timeout=timeout, env=env)
    if r.returncode != 0:
        raise SwscError(f"{exe.name} exited with {r.returncode}: {r.stderr.decode(errors='replace')[-2000:]}")
    return parse_results(man, r.stdout, n, per_sample=per_sample, who=exe.name)


def input_bytes(man: dict, x_q) -> tuple[bytes, int]:
    """The harness's raw input for quantized samples ``x_q`` [N, ...]: (bytes, N)."""
    dtype = np.dtype(man["input"]["dtype"])
    x = np.asarray(x_q)
    n = x.shape[0] if x.ndim else 0
    if x.size != n * man["input"]["size"]:
        raise SwscError(f"inputs of shape {x.shape} do not hold {n} samples of {man['input']['size']} values")
    if np.any(x != x.astype(dtype)):
        raise SwscError(f"inputs do not fit the model's input type {dtype}")
    return np.ascontiguousarray(x.astype(dtype)).tobytes(), n


def parse_results(man: dict, raw: bytes, n: int, *, per_sample: bool = False, who: str = "the harness"):
    """The harness's binary results for ``n`` samples, as ``run_binary`` returns them (shared
    with the firmware runner, whose output file has the same layout)."""
    L = len(man["layers"])
    rec = man["output_size"] + 2 * L
    raw = np.frombuffer(raw, dtype=np.int32)
    if raw.size != n * rec:
        raise SwscError(f"{who} wrote {raw.size} values, expected {n * rec}")
    raw = raw.reshape(n, rec)
    outs = raw[:, :man["output_size"]].copy()
    if len(man["outputs"]) == 1:
        outs = outs.reshape((n, *man["outputs"][0]["dims"]))
    pos, neg = raw[:, man["output_size"]:man["output_size"] + L], raw[:, man["output_size"] + L:]
    counts = {}
    for i, name in enumerate(man["layers"]):
        counts[name] = ((pos[:, i].copy(), neg[:, i].copy()) if per_sample
                        else (int(pos[:, i].astype(np.int64).sum()), int(neg[:, i].astype(np.int64).sum())))
    return outs, counts


def memory_report(exe) -> str:
    """The harness's own static memory report (``-m``)."""
    r = subprocess.run([str(exe), "-m"], capture_output=True, text=True)
    return r.stdout
