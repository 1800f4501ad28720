"""`swsc sweep`: accuracy, latency, OPF and residuals over a grid of conversion options.

One import, one onnxruntime run and one integer-reference run of the model serve the
whole grid; only compile + SNN run happen per grid point. A grid is a mapping
{axis: [values]} (its cartesian product) or a list of points {axis: value}. Axes:
``tc``, ``ts`` (one silent period for every TSA layer), ``vth_factor``, ``encoder``,
``encoder_ts`` (only meaningful for the ``tsa`` encoder: exact-encoder points get
``encoder_ts = None`` and are not repeated).

Rows (one per point) carry the columns of ``COLUMNS``; in the JSON form each row also
has ``layers``: per spiking layer its agreement with the integer reference evaluator,
spikes, residual summary and residual histogram over ``residual_bins`` (paper fig. 5a).
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
from pathlib import Path

import numpy as np

from .check import _top1, compare, isolated_layers, load_model_data, output_quant_tensors
from .compiler import compile_graph
from .errors import InvalidModelError, OptionError, UsageError
from .ops import op_of
from .options import ENCODERS, CompileOptions
from .oracle import Oracle
from .progress import Progress
from .runtime import reference
from .runtime.interpreter import RESIDUAL_BINS, run

AXES = ("tc", "ts", "vth_factor", "encoder", "encoder_ts")
DEFAULT_GRID = {"tc": [8], "ts": [0, 1, 2, 3], "vth_factor": [0.5], "encoder": ["exact"], "encoder_ts": [1]}
COLUMNS = ("model", "tc", "ts", "vth_factor", "encoder", "encoder_ts", "samples", "accuracy_snn",
           "accuracy_ann", "top1_agreement", "exact_fraction", "max_abs_lsb", "t_inf", "opf",
           "opf_amplification", "opf_synaptic", "ann_macs", "spikes_pos", "spikes_neg")
#: fixed text formats for the CSV (and the rounding of floats in the JSON)
FORMATS = {"vth_factor": "{:.3g}", "accuracy_snn": "{:.6f}", "accuracy_ann": "{:.6f}",
           "top1_agreement": "{:.6f}", "exact_fraction": "{:.6f}", "opf": "{:.1f}",
           "opf_amplification": "{:.1f}", "opf_synaptic": "{:.1f}", "spikes_pos": "{:.2f}",
           "spikes_neg": "{:.2f}"}
FORMAT_VERSION = 1


# ------------------------------------------------------------------ grids
def parse_values(text: str, axis: str) -> list:
    """A CLI grid value: 'a,b,c' (and 'lo..hi' for integer axes), checked for its axis."""
    flag = "--" + axis.replace("_", "-")
    items = [s.strip() for s in str(text).split(",")]
    if not text or any(not s for s in items):
        raise OptionError(f"{flag} takes a comma-separated list, got {text!r}")
    out: list = []
    for s in items:
        if axis in ("tc", "ts", "encoder_ts"):
            lo, sep, hi = s.partition("..")
            try:
                vals = list(range(int(lo), int(hi) + 1)) if sep else [int(s)]
            except ValueError:
                raise OptionError(f"{flag} takes integers (a list 'a,b' or a range 'a..b'), got {s!r}") from None
            if sep and not vals:
                raise OptionError(f"{flag} range {s!r} is empty")
            out += vals
        elif axis == "vth_factor":
            try:
                out.append(float(s))
            except ValueError:
                raise OptionError(f"{flag} takes numbers in (0, 1], got {s!r}") from None
        elif axis == "encoder":
            if s not in ENCODERS:
                raise OptionError(f"{flag} values must be among {', '.join(ENCODERS)}, got {s!r}")
            out.append(s)
        else:
            raise OptionError(f"unknown grid axis {axis!r}")
    for v in out:
        check_value(axis, v)
    return list(dict.fromkeys(out))


def check_value(axis: str, v) -> None:
    flag = "--" + axis.replace("_", "-")
    if axis in ("tc", "ts", "encoder_ts"):
        if not isinstance(v, int) or isinstance(v, bool):
            raise OptionError(f"{flag} values must be integers, got {v!r}")
        if axis == "tc" and not 1 <= v <= 32:
            raise OptionError(f"{flag} values must be integers in 1..32, got {v!r}")
        if axis != "tc" and v < 0:
            raise OptionError(f"{flag} values must be integers >= 0, got {v!r}")
    elif axis == "vth_factor":
        if not (isinstance(v, (int, float)) and math.isfinite(v) and 0 < v <= 1):
            raise OptionError(f"{flag} values must be in (0, 1] (0.5 = lowered, 1.0 = not), got {v!r}")
    elif axis == "encoder":
        if v not in ENCODERS:
            raise OptionError(f"{flag} values must be among {', '.join(ENCODERS)}, got {v!r}")
    else:
        raise OptionError(f"unknown grid axis {axis!r} (axes: {', '.join(AXES)})")


def grid_points(grid) -> list[dict]:
    """The points of a grid, in order, without repeats; every value checked."""
    if isinstance(grid, dict):
        unknown = set(grid) - set(AXES)
        if unknown:
            raise OptionError(f"unknown grid axis {sorted(unknown)[0]!r} (axes: {', '.join(AXES)})")
        axes = {k: list(grid.get(k, DEFAULT_GRID[k])) for k in AXES}
        for k, vals in axes.items():
            if not vals:
                raise OptionError(f"grid axis {k!r} has no values")
        raw = [dict(zip(AXES, combo)) for combo in itertools.product(*(axes[k] for k in AXES))]
    else:
        raw = []
        for p in grid:
            unknown = set(p) - set(AXES)
            if unknown:
                raise OptionError(f"unknown grid axis {sorted(unknown)[0]!r} (axes: {', '.join(AXES)})")
            raw.append({k: p.get(k, DEFAULT_GRID[k][0] if k != "ts" else 2) for k in AXES})
    points, seen = [], set()
    for p in raw:
        p = dict(p)
        if p["encoder"] != "tsa":
            p["encoder_ts"] = None
        for k in AXES:
            if p[k] is not None or k != "encoder_ts":
                check_value(k, p[k])
        p["vth_factor"] = float(p["vth_factor"])
        key = tuple(p[k] for k in AXES)
        if key not in seen:
            seen.add(key)
            points.append(p)
    return points


def sort_key(row: dict):
    return (row["model"], row["encoder"], -1 if row.get("encoder_ts") is None else row["encoder_ts"],
            row["vth_factor"], row["tc"], row["ts"])


# ------------------------------------------------------------------ the sweep
def sweep(model, data, grid=None, limit: int | None = None, progress=None, *,
          input_shape: tuple[int, ...] | None = None, beta: float = 2.0, isolated: bool = True) -> list[dict]:
    """Evaluate every point of ``grid`` on ``data``; one row per point, sorted.

    ``isolated`` also runs each spiking layer alone on the reference evaluator's input
    (``swsc.check.isolated_layers``; only where theta = 1), which separates what a layer
    gets wrong itself from what it inherits (per-layer ``isolated_*`` keys).

    ``progress``: None (a bar when stderr is a terminal, else one line per point), True/False,
    or a callable ``progress(done)`` called after each point.
    """
    points = grid_points(DEFAULT_GRID if grid is None else grid)
    options = [CompileOptions(tc=p["tc"], ts=p["ts"], beta=beta, encoder=p["encoder"],
                              encoder_ts=p["encoder_ts"] if p["encoder_ts"] is not None else 1,
                              vth_factor=p["vth_factor"]).validate() for p in points]
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise UsageError(f"--limit must be an integer >= 1, got {limit!r}")
    model = Path(model)
    graph, x, y = load_model_data(model, data, input_shape, limit)
    bar = progress if callable(progress) and not isinstance(progress, bool) else \
        Progress(len(points), f"sweep {model.name}", enabled=progress, lines=True, unit="point")
    if hasattr(bar, "note"):
        bar.note(f"onnxruntime and the reference evaluator on {len(x)} samples")
    qnames = output_quant_tensors(graph)
    q_ort = Oracle(model, {n: graph.tensors[n].dtype for n in qnames}).run(x)[qnames[0]].astype(np.int64)
    ref = reference.evaluate(graph, x, keep=True)
    top_ort = _top1(q_ort)
    acc_ann = float((top_ort == y).mean()) if y is not None else None

    rows = []
    for i, (p, opts) in enumerate(zip(points, options)):
        if hasattr(bar, "status"):   # a line (or the bar's text) per grid point: a point can take a minute
            bar.status(point_text(p))
        sg = compile_graph(graph, opts)
        res = run(sg, x, intermediate=True)
        q = res.intermediates[qnames[0]]
        top = _top1(q)
        row = {"model": model.name, **p, "samples": int(len(x)),
               "accuracy_snn": float((top == y).mean()) if y is not None else None,
               "accuracy_ann": acc_ann,
               "top1_agreement": float((top == top_ort).mean()), **compare(q, q_ort)}
        t = res.totals()
        row.update({k: t[k] for k in ("t_inf", "opf", "opf_amplification", "opf_synaptic", "ann_macs",
                                      "spikes_pos", "spikes_neg")})
        row["layers"] = _layers(sg, res, ref, len(x), isolated_layers(sg, ref) if isolated else {})
        rows.append(row)
        del res
        bar(i + 1)
    if hasattr(bar, "close"):
        bar.close()
    return sorted(rows, key=sort_key)


def point_text(p: dict) -> str:
    enc = p["encoder"] + ("" if p.get("encoder_ts") is None else f"/{p['encoder_ts']}")
    return f"Tc={p['tc']} Ts={p['ts']} vth={p['vth_factor']:g} encoder={enc}"


def _layers(sg, res, ref, n, alone) -> list[dict]:
    stats = {s.name: s for s in res.layers}
    out = []
    for node in sg.topo_order():
        o = node.outputs[0]
        s = stats.get(node.name)
        d = op_of(node)
        if s is None and not (d.spike_inputs and d.spike_output and not d.pure_delay):   # layers and pools
            continue
        entry = {"name": node.name, "op": node.op}
        if o in res.intermediates and o in ref:
            entry.update(compare(res.intermediates[o], ref[o]))
        if node.name in alone:
            entry.update({f"isolated_{k}": v for k, v in alone[node.name].items()})
        if s is not None:
            entry.update(ts=int(s.ts), neurons=int(s.neurons), spikes_pos=s.spikes_pos / max(n, 1),
                         spikes_neg=s.spikes_neg / max(n, 1))
            if s.in_range or s.clamped:
                entry.update(residual_abs_mean=s.residual_abs_sum / max(s.in_range, 1),
                             residual_abs_max=float(s.residual_abs_max), in_range=int(s.in_range),
                             clamped=int(s.clamped), clamped_fraction=s.clamped / (s.in_range + s.clamped),
                             residual_hist=[int(c) for c in s.residual_hist])
        out.append(entry)
    return out


# ------------------------------------------------------------------ tables
def _round(v):
    if isinstance(v, float):
        return float(f"{v:.10g}") if math.isfinite(v) else None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return _round(float(v))
    if isinstance(v, dict):
        return {k: _round(w) for k, w in v.items()}
    if isinstance(v, list):
        return [_round(w) for w in v]
    return v


def table_json(rows: list[dict], *, data=None, limit=None) -> str:
    models = sorted({r["model"] for r in rows})
    doc = {"format": "swsc-sweep", "version": FORMAT_VERSION, "models": models,
           "data": Path(data).name if data else None, "limit": limit,
           "residual_bins": [round(float(b), 6) for b in RESIDUAL_BINS],
           "rows": [_round(r) for r in sorted(rows, key=sort_key)]}
    text = json.dumps(doc, sort_keys=True, indent=1)
    # lists of numbers (histograms, bins) on one line each: shorter files, readable diffs
    text = re.sub(r"\[\s*(-?[0-9.e+-]+(?:,\s*-?[0-9.e+-]+)*)\s*\]",
                  lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
    return text + "\n"


def _cell(k, v) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and k in FORMATS:
        return FORMATS[k].format(v)
    return str(v)


def table_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in sorted(rows, key=sort_key):
        w.writerow([_cell(k, r.get(k)) for k in COLUMNS])
    return buf.getvalue()


def write_table(rows: list[dict], path: str | Path, *, data=None, limit=None) -> None:
    path = Path(path)
    text = table_json(rows, data=data, limit=limit) if path.suffix == ".json" else table_csv(rows)
    path.write_text(text)


def table_kind(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in (".csv", ".json"):
        raise UsageError(f"the table is written as CSV or JSON by its extension: use .csv or .json, "
                         f"not '{suffix or Path(path).name}'")
    return suffix[1:]


def read_table(path: str | Path) -> tuple[dict, list[dict]]:
    """A sweep table (JSON, or CSV without per-layer data) as (meta, rows)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"table file '{path}' does not exist")
    kind = table_kind(path)
    try:
        text = path.read_text()
        if kind == "json":
            doc = json.loads(text)
            if not isinstance(doc, dict) or doc.get("format") != "swsc-sweep":
                raise InvalidModelError("is not a table written by 'swsc sweep -o TABLE.json'", file=str(path))
            rows = doc.pop("rows")
            return doc, rows
        rows = []
        for r in csv.DictReader(io.StringIO(text)):
            if set(r) != set(COLUMNS):
                raise InvalidModelError("is not a table written by 'swsc sweep -o TABLE.csv' "
                                        "(its columns differ)", file=str(path))
            rows.append({k: _parse_cell(k, v) for k, v in r.items()})
        return {"format": "swsc-sweep", "models": sorted({r["model"] for r in rows}), "limit": None}, rows
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as e:
        raise InvalidModelError(f"cannot read the table: {e}".splitlines()[0], file=str(path)) from e


def _parse_cell(k, v):
    if v == "":
        return None
    if k in ("model", "encoder"):
        return v
    if k in ("tc", "ts", "encoder_ts", "samples", "max_abs_lsb", "t_inf", "ann_macs"):
        return int(v)
    return float(v)
