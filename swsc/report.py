"""`swsc report`: plots and a markdown report from `swsc sweep` tables.

Figures follow the paper (section 4): accuracy vs latency T_inf (fig. 3), accuracy vs
OPF over Tc and Ts (fig. 4a), residual density with/without the lowered threshold and
the silent period (fig. 5a), ablation accuracies (fig. 5b); report.md (``swsc.report_md``)
has a Table-2 style summary at Tc = 8, Ts = 2 and compares the measurements with the
paper's claims.

One function per figure kind, built from helpers other plots can share (``pyplot`` and
``save_png`` of swsc/plotting.py, ``accuracy_lines``, ``label_points``, ``legend_outside``): legends sit outside
the axes so they never cover a curve, point labels never overlap, and the accuracy axis
shows the band where the curves differ (points far below it are marked on its lower edge).

Output is deterministic: rows sorted, fixed number formats, PNGs without dates or
software tags at a fixed dpi. Without matplotlib, report.md is still written. ``render``
builds the files without writing them; the caller writes them (the CLI all or nothing).
"""
from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np

from .errors import InvalidModelError, UsageError
from .options import check_file_stem
from .pareto import is_tune_file, report_parts
from .plotting import available, pyplot, save_png
from .report_md import ABLATION, is_main, markdown, pick, vth_label
from .sweep import COLUMNS, read_table, sort_key

#: one colour per ablation configuration (vth_factor, ts), the same in every figure
CONFIG_COLOURS = {(1.0, 0): "#d62728", (0.5, 0): "#ff7f0e", (1.0, 2): "#1f77b4", (0.5, 2): "#2ca02c"}
#: the accuracy axis spans at most this many points below the best value; lower points are
#: drawn on its lower edge, so a curve at chance does not flatten the band where curves differ
FOCUS_SPAN = 10.0
#: point markers by position (Tc in the OPF figure); "v" is kept for points below the axis
MARKERS = "osD^P*Xh<>"
BELOW = "v"
#: where a point label may go, in points from its point: the first free place wins
LABEL_OFFSETS = ((3, 3), (3, -9), (-3, 3), (-3, -9), (3, 9), (3, -15), (-3, 9), (-3, -15))
#: what a sweep table is, for the error that refuses anything else
SWEEP_TABLE = ("a sweep table is the .json or .csv that 'swsc sweep MODEL --data D.npz -o TABLE' writes, "
               "one row per grid point with columns " + ", ".join(COLUMNS[:5]) + ", ...")
_INT_COLUMNS = {"tc", "ts", "samples", "t_inf", "ann_macs", "max_abs_lsb"}
_TEXT_COLUMNS = {"model", "encoder"}
_OPTIONAL = {"encoder_ts", "accuracy_snn", "accuracy_ann"}   # empty for the exact encoder / without labels


# ------------------------------------------------------------------ tables
def _row_problem(i: int, r) -> str | None:
    if not isinstance(r, dict):
        return f"row {i} is not an object"
    missing = [c for c in COLUMNS if c not in r]
    if missing:
        more = ", ..." if len(missing) > 4 else ""
        return f"row {i} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing[:4])}{more}"
    for c in COLUMNS:
        v = r[c]
        if v is None and c in _OPTIONAL:
            continue
        ok = isinstance(v, str) if c in _TEXT_COLUMNS else \
            isinstance(v, numbers.Integral if c in _INT_COLUMNS else numbers.Real) and not isinstance(v, bool)
        if not ok:
            return f"row {i} has {c} = {v!r}"
    try:       # the figures are named after the model: a path there would write outside -o
        check_file_stem(r["model"].removesuffix(".onnx"), "model")
    except UsageError:
        return f"row {i} has model = {r['model']!r}, not a plain file name as swsc sweep writes"
    return None


def read_sweep(path: str | Path) -> tuple[dict, list[dict]]:
    """A sweep table as (meta, rows); anything else is an InvalidModelError naming the file."""
    meta, rows = read_table(path)
    why = "its rows are not a list" if not isinstance(rows, list) else "it has no rows" if not rows else \
        next((p for p in (_row_problem(i, r) for i, r in enumerate(rows, 1)) if p), None)
    if why:
        raise InvalidModelError(f"is not a sweep table ({why}); {SWEEP_TABLE}", file=str(path))
    return meta, rows


# ------------------------------------------------------------------ plot helpers
def legend_outside(ax, handles=None, **kw):
    """The legend to the right of the axes, where it cannot cover a curve."""
    kw = {"fontsize": 7, "loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0, **kw}
    return ax.legend(handles=handles, **kw) if handles is not None else ax.legend(**kw)


def ann_line(ax, ann) -> None:
    if ann is not None:
        ax.axhline(100 * ann, color="k", linestyle=":", linewidth=1,
                   label=f"quantized ANN (onnxruntime) {100 * ann:.2f}%")


def accuracy_lines(ax, series, ann=None, span=FOCUS_SPAN) -> float:
    """Draw accuracy curves and set the y range to the band where they differ.

    ``series``: dicts with ``x``, ``y`` (accuracy in %), ``label``, ``color`` and optionally
    ``markers`` (one per point; default "o"). The y axis spans all values (and the ANN's)
    when they lie within ``span`` points of the best, else the ``span`` below the best; a
    point below the axis is drawn on its lower edge as a "v" and its curve's legend entry
    says how many and how low. Returns the lower y limit."""
    values = [y for s in series for y in s["y"]] + ([100 * ann] if ann is not None else [])
    hi = max(values)
    lo = min(v for v in values if v >= hi - span)
    pad = max(0.08 * (hi - lo), 0.1)
    bottom = lo - pad
    for s in series:
        x, y = np.asarray(s["x"], float), np.asarray(s["y"], float)
        markers = s.get("markers") or ["o"] * len(x)
        below = y < bottom
        label = s["label"]
        if below.any():
            low, high = f"{y[below].min():.1f}", f"{y[below].max():.1f}"
            label += f" ({int(below.sum())} below the axis: {low if low == high else low + '-' + high}%)"
        ax.plot(x, y, color=s["color"], linewidth=1.2, label=label)
        for m in dict.fromkeys(markers):
            sel = np.array([mk == m for mk in markers]) & ~below
            ax.plot(x[sel], y[sel], linestyle="none", marker=m, markersize=3.5, color=s["color"])
        if below.any():
            ax.plot(x[below], np.full(int(below.sum()), bottom), linestyle="none", marker=BELOW, markersize=5,
                    color=s["color"], markerfacecolor="none", clip_on=False)
    ann_line(ax, ann)
    ax.set_ylim(bottom, hi + pad)
    return bottom


def label_points(ax, points, texts, fontsize=6) -> list:
    """Annotate each (x, y) with its text at the first of ``LABEL_OFFSETS`` where the label
    stays inside the axes and overlaps no label placed before; a label with no free place is
    left out. Call it last: it fixes the figure's layout so the places it measured hold."""
    fig = ax.figure
    fig.canvas.draw()
    fig.set_layout_engine("none")
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    placed, out = [], []
    for (x, y), s in zip(points, texts):
        for dx, dy in LABEL_OFFSETS:
            t = ax.annotate(s, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=fontsize,
                            ha="left" if dx >= 0 else "right")
            bb = t.get_window_extent(renderer)
            inside = frame.x0 <= bb.x0 and bb.x1 <= frame.x1 and frame.y0 <= bb.y0 and bb.y1 <= frame.y1
            if inside and not any(bb.overlaps(p) for p in placed):
                placed.append(bb)
                out.append(t)
                break
            t.remove()
    return out


def _figure(plt, size=(6.4, 3.4), **kw):
    return plt.subplots(figsize=size, layout="constrained", **kw)


def _abs_density(hist, bins):
    """Fold a signed histogram over symmetric bins into a density of |r|."""
    h = np.asarray(hist, dtype=np.float64)
    half = len(h) // 2
    folded = h[half:] + h[:half][::-1]
    width = bins[1] - bins[0]
    total = folded.sum()
    edges = np.asarray(bins[half:], dtype=np.float64)
    return edges, (folded / (total * width) if total else folded)


def _ann(rows):
    return next((r["accuracy_ann"] for r in rows if r["accuracy_ann"] is not None), None)


def _main(rows):
    return [r for r in rows if is_main(r) and r["accuracy_snn"] is not None]


# ------------------------------------------------------------------ one function per figure
def latency_figure(stem, rows, bins=None):
    """Paper fig. 3: accuracy vs latency T_inf, one curve per Tc (Ts varies along it)."""
    main = _main(rows)
    if not main:
        return None
    plt = pyplot()
    fig, ax = _figure(plt)
    tcs = sorted({r["tc"] for r in main})
    series, labelled = [], []
    for i, tc in enumerate(tcs):
        pts = sorted((r["t_inf"], 100 * r["accuracy_snn"], r["ts"]) for r in main if r["tc"] == tc)
        series.append({"x": [p[0] for p in pts], "y": [p[1] for p in pts], "label": f"Tc={tc}", "color": f"C{i}"})
        labelled = pts
    bottom = accuracy_lines(ax, series, _ann(rows))
    ax.set_xlabel("latency T_inf (time steps)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.grid(alpha=0.3)
    fig.suptitle(f"{stem}: accuracy vs latency (Ts per TSA layer varies)", fontsize=9)
    legend_outside(ax)
    if len(tcs) == 1:   # one curve: say which Ts each point is
        shown = [(t, a, ts) for t, a, ts in labelled if a >= bottom]
        label_points(ax, [(t, a) for t, a, _ in shown], [f"Ts={ts}" for _, _, ts in shown])
    return fig


def opf_figure(stem, rows, bins=None):
    """Paper fig. 4a: accuracy vs OPF, one curve per Ts, Tc as the point marker."""
    main = _main(rows)
    tcs = sorted({r["tc"] for r in main})
    if len(tcs) < 2:
        return None
    plt = pyplot()
    fig, ax = _figure(plt)
    marker = {tc: MARKERS[i % len(MARKERS)] for i, tc in enumerate(tcs)}
    series = []
    for i, ts in enumerate(sorted({r["ts"] for r in main})):
        pts = sorted((r["opf"] / 1e3, 100 * r["accuracy_snn"], r["tc"]) for r in main if r["ts"] == ts)
        if len(pts) >= 2:
            series.append({"x": [p[0] for p in pts], "y": [p[1] for p in pts], "label": f"Ts={ts}",
                           "color": f"C{i}", "markers": [marker[p[2]] for p in pts]})
    if not series:
        plt.close(fig)
        return None
    accuracy_lines(ax, series, _ann(rows))
    macs = next((r["ann_macs"] for r in main), None)
    ax.set_xlabel("OPF (thousand operations per frame)" + (f"; ANN: {macs / 1e3:.0f}k MACs" if macs else ""))
    ax.set_ylabel("top-1 accuracy (%)")
    ax.grid(alpha=0.3)
    fig.suptitle(f"{stem}: accuracy vs OPF over Tc, Ts (vth θ/2)", fontsize=9)
    handles, _ = ax.get_legend_handles_labels()
    handles += [plt.Line2D([], [], linestyle="none", marker=marker[tc], color="0.35", markersize=4, label=f"Tc={tc}")
                for tc in tcs]
    legend_outside(ax, handles)
    return fig


def _ablation_rows(rows):
    """(vth_factor, ts, row) of the fig. 5b configurations the sweep has, in the paper's order."""
    out = [(v, ts, pick(rows, 8, ts, v)) for v, ts in ABLATION]
    return [(v, ts, r) for v, ts, r in out if r is not None]


def ablation_figure(stem, rows, bins=None):
    """Paper fig. 5b: accuracy at Tc = 8 with/without the lowered threshold and the silent
    period; a bar per configuration the sweep measured, coloured by ``CONFIG_COLOURS``."""
    abl = [(v, ts, r) for v, ts, r in _ablation_rows(rows) if r["accuracy_snn"] is not None]
    if not abl:
        return None
    plt = pyplot()
    fig, ax = _figure(plt, (6.4, 3.2))
    vals = [100 * r["accuracy_snn"] for _, _, r in abl]
    bars = ax.bar(range(len(abl)), vals, color=[CONFIG_COLOURS[(v, ts)] for v, ts, _ in abl])
    ax.bar_label(bars, [f"{v:.2f}" for v in vals], fontsize=7)
    ann_line(ax, _ann(rows))
    ax.set_xticks(range(len(abl)))
    ax.set_xticklabels([f"Vth={vth_label(v)}\nTs={ts}" for v, ts, _ in abl])
    ax.set_ylim(0, 108)
    ax.set_ylabel("top-1 accuracy (%)")
    fig.suptitle(f"{stem}: ablation at Tc=8 (lowered threshold, silent period)", fontsize=9)
    if _ann(rows) is not None:
        legend_outside(ax)
    return fig


def residual_figure(stem, rows, bins):
    """Paper fig. 5a: density of |residual| of in-range TSA neurons at Tc = 8, per ablation
    configuration (colours as in the ablation figure), over all TSA layers and per layer."""
    with_layers = [(v, ts, r) for v, ts, r in _ablation_rows(rows) if r.get("layers")]
    if not with_layers or bins is None:
        return None
    plt = pyplot()
    names = [x["name"] for x in with_layers[0][2]["layers"] if x.get("residual_hist")]
    panels = ["all TSA layers"] + names
    ncol = min(4, len(panels))
    nrow = (len(panels) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(3 * ncol, 2.3 * nrow + 0.4), squeeze=False, layout="constrained")
    for i, panel in enumerate(panels):
        ax = axes[i // ncol][i % ncol]
        for v, ts, r in with_layers:
            hs = [x["residual_hist"] for x in r["layers"] if x.get("residual_hist") and (i == 0 or x["name"] == panel)]
            if hs:
                edges, dens = _abs_density(np.sum(hs, axis=0), bins)
                ax.stairs(dens, edges, color=CONFIG_COLOURS[(v, ts)], label=f"Vth={vth_label(v)}, Ts={ts}")
        ax.set_title(panel if len(panel) < 40 else "…" + panel[-38:], fontsize=7)
        ax.set_xlabel("|residual| (output LSB = θ)", fontsize=7)
        if i % ncol == 0:
            ax.set_ylabel("density", fontsize=7)
    for j in range(len(panels), nrow * ncol):
        axes[j // ncol][j % ncol].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=7)
    fig.suptitle(f"{stem}: residual density at Tc=8, in-range neurons (the last bin holds |r| >= "
                 f"{bins[-2]:.2f})", fontsize=8)
    return fig


#: file name suffix -> figure function, in the order report.md shows them
FIGURES = (("_latency.png", latency_figure), ("_opf.png", opf_figure), ("_residuals.png", residual_figure),
           ("_ablation.png", ablation_figure))


def figures(model, rows, bins) -> dict:
    """{file name: writer(path)} for one model's figures."""
    stem = model.removesuffix(".onnx")
    files = {}
    for suffix, make in FIGURES:
        fig = make(stem, rows, bins)
        if fig is not None:
            files[stem + suffix] = lambda path, fig=fig: save_png(fig, path)
    return files


# ------------------------------------------------------------------ entry point
def render(tables: list[str | Path], *, notes: str | None = None, plots: bool = True,
           discussion: str | None = None):
    """Read tables and build every output: ({file name: writer(path)}, message or None).

    ``notes`` (markdown) goes near the top of report.md, ``discussion`` after the
    comparison with the paper. Tables written by `swsc tune --report` are recognised and
    rendered by swsc/pareto.py. Nothing is written here."""
    tuned = [t for t in tables if is_tune_file(t)]
    tables = [t for t in tables if t not in tuned]
    metas, rows, sources = [], [], []
    for t in tables:
        meta, rs = read_sweep(t)
        metas.append(meta)
        rows += rs
        sources.append(Path(t).name)
    seen, unique = set(), []
    for r in sorted(rows, key=sort_key):
        if sort_key(r) not in seen:
            seen.add(sort_key(r))
            unique.append(r)
    rows = unique
    bins = next((m["residual_bins"] for m in metas if m.get("residual_bins")), None)
    files, shown, note = {}, {}, None
    if plots and not available():
        note = "matplotlib is not installed (pip install 'swsc[plots]'): report.md has no figures"
    if plots and note is None:
        for m in sorted({r["model"] for r in rows}):
            f = figures(m, [r for r in rows if r["model"] == m], bins)
            files.update(f)
            shown[m] = list(f)
    text = markdown(metas, rows, figures=shown, notes=notes, sources=sources, plot_note=note,
                    discussion=discussion, bins=bins) if tables else ""
    tune_files, tune_lines = report_parts(tuned, plots and note is None)
    files.update(tune_files)
    text += "\n".join(tune_lines) + ("\n" if tune_lines else "")
    files["report.md"] = lambda p: Path(p).write_text(text)
    return files, note
