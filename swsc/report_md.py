"""The text of `swsc report`'s report.md: a Table-2 style summary at Tc = 8, Ts = 2, the
measurements against the paper's claims, and per-model tables, from sweep rows.

Deterministic: rows sorted, fixed number formats. The row selection helpers here
(``pick``, ``is_main``) are shared with the figures in ``swsc.report``.
"""
from __future__ import annotations

import numpy as np

from .sweep import sort_key

#: the paper's fig. 5b (SWS-ResNet18 on CIFAR10), accuracy in %; (vth_factor, ts) -> accuracy
PAPER_ABLATION = {(1.0, 0): "almost random", (0.5, 0): "35.41%", (1.0, 2): "84.21%", (0.5, 2): "95.68%"}
ABLATION = ((1.0, 0), (0.5, 0), (1.0, 2), (0.5, 2))
#: the semantics note's reading of the paper's fig. 4a: LeNet-5 on MNIST, Tc = 8, Ts = 2
PAPER_OPF_RATIO = 2.2
WITHIN = 0.5   # accuracy points


# ------------------------------------------------------------------ selecting rows
def is_main(r, vth=0.5) -> bool:
    return r["encoder"] == "exact" and abs(r["vth_factor"] - vth) < 1e-9


def pick(rows, tc, ts, vth=0.5, encoder="exact", encoder_ts=None):
    for r in rows:
        if r["tc"] == tc and r["ts"] == ts and abs(r["vth_factor"] - vth) < 1e-9 and r["encoder"] == encoder \
                and (encoder_ts is None or r.get("encoder_ts") == encoder_ts):
            return r
    return None


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def _frac(v, digits=4) -> str:
    """A fraction that never prints as 1 (or 0) unless it is exactly 1 (or 0)."""
    t = f"{v:.{digits}f}"
    if v < 1 and t == f"{1:.{digits}f}":
        return ">" + f"{1 - 10 ** -digits:.{digits}f}"
    if v > 0 and t == f"{0:.{digits}f}":
        return "<" + f"{10 ** -digits:.{digits}f}"
    return t


def _pts(a, b) -> str:
    return "n/a" if a is None or b is None else f"{100 * (a - b):+.2f}"



def vth_label(v) -> str:
    return "θ/2" if abs(v - 0.5) < 1e-9 else "θ" if abs(v - 1) < 1e-9 else f"{v:g}θ"




def _large_residual_share(row, bins, threshold=1.05) -> float | None:
    """Share of in-range TSA neurons with |residual| >= threshold (beyond any rounding error)."""
    hs = [x["residual_hist"] for x in row.get("layers") or [] if x.get("op") == "TsaLayer" and x.get("residual_hist")]
    if not hs or bins is None:
        return None
    h = np.sum(hs, axis=0)
    lo = np.asarray(bins[:-1])
    hi = np.asarray(bins[1:])
    big = (lo >= threshold - 1e-9) | (hi <= -threshold + 1e-9)
    return float(h[big].sum() / h.sum()) if h.sum() else None


def _mean_residual(row) -> float | None:
    layers = [x for x in row.get("layers") or [] if x.get("op") == "TsaLayer" and x.get("in_range")]
    n = sum(x["in_range"] for x in layers)
    return sum(x["residual_abs_mean"] * x["in_range"] for x in layers) / n if n else None


def _ablation_cells(by_model: dict, measure, fmt) -> list[str]:
    """'model: config value, ...' for each model measured in every ABLATION configuration at
    Tc = 8; ``measure(row)`` is the value (None: not measured), ``fmt`` writes it."""
    out = []
    for m, rs in by_model.items():
        cells = []
        for v, ts in ABLATION:
            r = pick(rs, 8, ts, v)
            value = None if r is None else measure(r)
            if value is not None:
                cells.append(f"{vth_label(v)}/Ts={ts} {fmt(value)}")
        if len(cells) == len(ABLATION):
            out.append(f"{m}: " + ", ".join(cells))
    return out


# ------------------------------------------------------------------ markdown
def _summary_row(model, rows):
    r = pick(rows, 8, 2)
    if r is None:
        return f"| {model} | – | – | – | – | – | – | – | no Tc=8, Ts=2 row in the table |"
    d = None if r["accuracy_snn"] is None or r["accuracy_ann"] is None else 100 * (r["accuracy_snn"] - r["accuracy_ann"])
    ok = "n/a (no labels)" if d is None else ("yes" if abs(d) <= WITHIN + 1e-9 else "**no**")
    ratio = f"{r['opf'] / r['ann_macs']:.2f}" if r.get("ann_macs") else "n/a"
    return (f"| {model} | {r['samples']} | {_pct(r['accuracy_ann'])} | {_pct(r['accuracy_snn'])} | "
            f"{_pts(r['accuracy_snn'], r['accuracy_ann'])} | {r['tc']} | {r['ts']} | {r['t_inf']} | "
            f"{_pct(r['top1_agreement'])} | {_frac(r['exact_fraction'])} | {ratio} | {ok} |")


def _grid_table(rows, value, fmt) -> list[str]:
    main = [r for r in rows if is_main(r)]
    tcs = sorted({r["tc"] for r in main})
    tss = sorted({r["ts"] for r in main})
    out = ["| Tc \\ Ts | " + " | ".join(str(t) for t in tss) + " |", "|---|" + "---|" * len(tss)]
    for tc in tcs:
        cells = []
        for ts in tss:
            r = pick(main, tc, ts)
            cells.append("–" if r is None or r.get(value) is None else fmt(r))
        out.append(f"| {tc} | " + " | ".join(cells) + " |")
    return out


def _layer_table(row) -> list[str]:
    out = ["| layer | op | exact vs reference | max \\|Δ\\| (LSB) | alone: exact / max \\|Δ\\| | mean \\|residual\\| | "
           "max \\|residual\\| | clamped | spikes +/− per frame |", "|---|---|---|---|---|---|---|---|---|"]
    for x in row.get("layers") or []:
        res = (f"{x['residual_abs_mean']:.3f} | {x['residual_abs_max']:.3f} | {100 * x['clamped_fraction']:.1f}%"
               if "residual_abs_mean" in x else "– | – | –")
        spikes = f"{x['spikes_pos']:.0f} / {x['spikes_neg']:.0f}" if "spikes_pos" in x else "–"
        exact = _frac(x['exact_fraction'], 5) if "exact_fraction" in x else "–"
        mx = str(x["max_abs_lsb"]) if "max_abs_lsb" in x else "–"
        alone = (f"{_frac(x['isolated_exact_fraction'], 5)} / {x['isolated_max_abs_lsb']}"
                 if "isolated_exact_fraction" in x else "–")
        out.append(f"| `{x['name']}` | {x['op']} | {exact} | {mx} | {alone} | {res} | {spikes} |")
    return out


def _diverging(row) -> str:
    layers = [x for x in row.get("layers") or [] if "exact_fraction" in x]
    off = [x for x in layers if x["exact_fraction"] < 1.0]
    if not off:
        return "every layer equals the integer reference evaluator"
    own = [x for x in layers if x.get("isolated_exact_fraction", 1.0) < 1.0]
    first = off[0]
    s = (f"the first layer that departs from the integer reference evaluator is `{first['name']}` "
         f"({_frac(first['exact_fraction'], 5)} exact, up to {first['max_abs_lsb']} LSB)")
    if own:
        s += "; layers that err on their own, fed the reference's exact input: " + ", ".join(
            f"`{x['name']}` ({_frac(x['isolated_exact_fraction'], 5)} exact, up to {x['isolated_max_abs_lsb']} LSB)"
            for x in own)
    elif any("isolated_exact_fraction" in x for x in layers):
        s += "; no layer errs on its own when fed the reference's exact input (the differences are inherited)"
    last = layers[-1]
    s += f"; the output is {_frac(last['exact_fraction'], 5)} exact, up to {last['max_abs_lsb']} LSB"
    return s


def markdown(metas, rows, *, figures: dict[str, list[str]], notes: str | None = None,
             sources: list[str] | None = None, plot_note: str | None = None,
             discussion: str | None = None, bins=None) -> str:
    models = sorted({r["model"] for r in rows})
    by_model = {m: sorted([r for r in rows if r["model"] == m], key=sort_key) for m in models}
    L = ["# swsc results: SWS spiking networks vs their quantized ANNs", ""]
    if sources:
        L += ["Generated by `swsc report` from " + ", ".join(f"`{s}`" for s in sources) + ". "
              "Accuracies are top-1 on the labelled samples of each table; the quantized ANN's accuracy is "
              "onnxruntime's on the same samples. The SNN is swsc's numpy runtime (float mode), exact input "
              "encoder, β = 2, unless a row says otherwise.", ""]
    limits = sorted({(m, meta.get("limit")) for meta in metas for m in meta.get("models", [])
                     if meta.get("limit")})
    if limits:
        L += ["Sample limits (`--limit`): " + ", ".join(f"{m}: first {n}" for m, n in limits) + ".", ""]
    if notes:
        L += [notes.strip(), ""]
    if plot_note:
        L += [f"*{plot_note}*", ""]

    L += ["## Summary at Tc = 8, Ts = 2 (Table-2 style)", "",
          f"Δ is SNN minus ANN accuracy in percentage points; the target is |Δ| ≤ {WITHIN} points. "
          "One sample is 100/n points (0.20 for 500 samples, 0.25 for 397).", "",
          "| model | samples | ANN acc | SNN acc | Δ (points) | Tc | Ts | T_inf | top-1 agreement | "
          "exact outputs | OPF / ANN MACs | within 0.5 |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    L += [_summary_row(m, by_model[m]) for m in models]
    L.append("")
    for m in models:
        r = pick(by_model[m], 8, 2)
        if r is not None and r["accuracy_snn"] is not None and r["accuracy_ann"] is not None \
                and abs(r["accuracy_snn"] - r["accuracy_ann"]) * 100 > WITHIN + 1e-9:
            L += [f"**{m} misses the 0.5-point target** ({_pts(r['accuracy_snn'], r['accuracy_ann'])} points): "
                  f"{_diverging(r)}.", ""]

    L += _paper_section(by_model)
    if discussion:
        L += [discussion.strip(), ""]

    for m in models:
        rs = by_model[m]
        L += [f"## {m}", ""]
        samples = sorted({r["samples"] for r in rs})
        ann = next((r["accuracy_ann"] for r in rs if r["accuracy_ann"] is not None), None)
        macs = next((r["ann_macs"] for r in rs), None)
        L += [f"{', '.join(map(str, samples))} samples; quantized ANN (onnxruntime) accuracy {_pct(ann)}; "
              f"ANN MACs per frame {macs}; {len(rs)} grid points.", ""]
        for f in figures.get(m, []):
            L += [f"![{f}]({f})", ""]
        main = [r for r in rs if is_main(r)]
        if main:
            L += ["SNN accuracy (vth θ/2, exact encoder); T_inf in parentheses:", ""]
            L += _grid_table(rs, "accuracy_snn",
                             lambda r: f"{100 * r['accuracy_snn']:.2f}% ({r['t_inf']})" if r['accuracy_snn'] is not None
                             else f"– ({r['t_inf']})")
            L += ["", "Outputs equal to onnxruntime's (fraction of output integers) / OPF in units of the ANN's MACs:",
                  ""]
            L += _grid_table(rs, "opf", lambda r: f"{_frac(r['exact_fraction'], 3)} / {r['opf'] / r['ann_macs']:.2f}x")
            L.append("")
        abl = [(v, ts, pick(rs, 8, ts, v)) for v, ts in ABLATION]
        abl = [(v, ts, r) for v, ts, r in abl if r is not None]
        if abl:
            L += ["Ablation at Tc = 8 (paper fig. 5b: SWS-ResNet18 on CIFAR10):", "",
                  "| Vth | Ts | SNN acc | Δ (points) | exact outputs | mean \\|residual\\| (TSA layers) | "
                  "\\|residual\\| ≥ 1.05θ | paper |",
                  "|---|---|---|---|---|---|---|---|"]
            for v, ts, r in abl:
                mr = _mean_residual(r)
                big = _large_residual_share(r, bins)
                L.append(f"| {vth_label(v)} | {ts} | {_pct(r['accuracy_snn'])} | {_pts(r['accuracy_snn'], r['accuracy_ann'])} | "
                         f"{_frac(r['exact_fraction'])} | {'–' if mr is None else f'{mr:.3f}'} | "
                         f"{'–' if big is None else f'{100 * big:.2f}%'} | {PAPER_ABLATION[(v, ts)]} |")
            L.append("")
        enc = [r for r in rs if r["encoder"] == "tsa"]
        if enc:
            L += ["Input encoder: the paper's TSA encoder (Ts_enc = its silent period) against the exact encoder "
                  "at the same Tc, Ts, Vth:", "",
                  "| encoder | Ts_enc | Tc | Ts | Vth | T_inf | SNN acc | exact outputs | exact encoder: acc / exact outputs |",
                  "|---|---|---|---|---|---|---|---|---|"]
            for r in enc:
                ex = pick(rs, r["tc"], r["ts"], r["vth_factor"])
                same = "–" if ex is None else f"{_pct(ex['accuracy_snn'])} / {_frac(ex['exact_fraction'])}"
                L.append(f"| tsa | {r['encoder_ts']} | {r['tc']} | {r['ts']} | {vth_label(r['vth_factor'])} | {r['t_inf']} | "
                         f"{_pct(r['accuracy_snn'])} | {_frac(r['exact_fraction'])} | {same} |")
            L.append("")
        r = pick(rs, 8, 2)
        if r is not None and r.get("layers"):
            L += ["Per layer at Tc = 8, Ts = 2, vth θ/2 (exact = fraction of the layer's integers equal to the "
                  "integer reference evaluator, which stands for onnxruntime layer by layer; residuals in output "
                  "LSBs over in-range neurons; clamped = neurons whose exact value lies outside the output range):",
                  "", *_layer_table(r), "", f"In short: {_diverging(r)}.", ""]
    return "\n".join(L).rstrip() + "\n"


def _exact_point(by_model) -> str:
    """At Ts = Tc - 1 every neuron has seen its whole input: the SNN should be the integer ANN."""
    same, other = [], []
    for m, rs in by_model.items():
        top = max((r["tc"] for r in rs), default=None)   # the full code (theta = 1 for 8-bit tensors)
        for r in rs:
            if is_main(r) and r["tc"] == top and r["ts"] == r["tc"] - 1 and r["accuracy_snn"] is not None:
                (same if r["accuracy_snn"] == r["accuracy_ann"] else other).append(
                    f"{m} (Tc = {r['tc']}{'' if r['accuracy_snn'] == r['accuracy_ann'] else ', ' + _pts(r['accuracy_snn'], r['accuracy_ann']) + ' points'})")
    if not same and not other:
        return ""
    s = " At Ts = Tc − 1 (every neuron sees its whole input before it fires; docs/semantics.md section 3) the " \
        "SNN's accuracy equals onnxruntime's for " + (", ".join(same) or "no model")
    if other:
        s += "; it differs for " + ", ".join(other)
    return s + "."


def _paper_section(by_model) -> list[str]:
    L = ["## Measured vs the paper's claims", ""]
    # Table 2 / accuracy
    deltas = []
    for m, rs in by_model.items():
        r = pick(rs, 8, 2)
        if r is not None and r["accuracy_snn"] is not None:
            deltas.append(f"{m} {_pts(r['accuracy_snn'], r['accuracy_ann'])}")
    if deltas:
        L += ["- **Accuracy at Tc = 8, Ts = 2 (Table 2).** The paper's SWS rows have ΔAcc from +0.22 to −1.17 "
              "points (CIFAR10/ImageNet, Tc = 8, Ts = 1 or 2). Measured Δ (points): " + "; ".join(deltas) + "." + _exact_point(by_model)]
    # fig. 3: smallest latency that reaches the ANN
    lat = []
    for m, rs in by_model.items():
        main = sorted([r for r in rs if is_main(r) and r["tc"] == 8 and r["accuracy_snn"] is not None],
                      key=lambda r: r["t_inf"])
        hit = next((r for r in main if abs(r["accuracy_snn"] - r["accuracy_ann"]) * 100 <= WITHIN + 1e-9), None)
        if main:
            lat.append(f"{m}: " + (f"T_inf = {hit['t_inf']} (Ts = {hit['ts']})" if hit else "not reached in the grid"))
    if lat:
        L += ["- **Latency (fig. 3).** Smallest T_inf at Tc = 8 whose accuracy is within 0.5 points of the ANN: "
              + "; ".join(lat) + "."]
    # OPF
    opf = []
    for m, rs in by_model.items():
        r = pick(rs, 8, 2)
        if r is not None and r.get("ann_macs"):
            opf.append(f"{m} {r['opf'] / r['ann_macs']:.2f}x ({r['opf']:.0f} = {r['opf_amplification']:.0f} "
                       f"amplifications + {r['opf_synaptic']:.0f} synaptic, vs {r['ann_macs']} MACs)")
    if opf:
        L += [f"- **OPF (section 4.3, fig. 4a).** The semantics note reads fig. 4a as OPF ≈ {PAPER_OPF_RATIO}x the "
              "ANN's MACs for LeNet-5 on MNIST at Tc = 8, Ts = 2. Measured OPF / ANN MACs at Tc = 8, Ts = 2: "
              + "; ".join(opf) + ". OPF counts every spike times the synapses it reaches "
              "(fewer at padded borders) plus (Tc + Ts) amplifications per TSA neuron (eq. 10)."]
    ts_eff = []
    for m, rs in by_model.items():
        main = [r for r in rs if is_main(r)]
        for tc in sorted({r["tc"] for r in main}):
            pts = sorted((r["ts"], r["opf"]) for r in main if r["tc"] == tc)
            if len(pts) > 1 and pts[0][0] == 0:
                hi = max(p for p in pts if p[0] <= 3)
                if hi[0] > 0:
                    ts_eff.append((m, tc, pts[0][1], hi))
    if ts_eff:
        parts = [f"{m} Tc={tc}: {100 * (o3 / o0 - 1):+.1f}% from Ts=0 to Ts={t3}" for m, tc, o0, (t3, o3) in ts_eff
                 if tc == 8 or len({x[1] for x in ts_eff if x[0] == m}) == 1]
        L += ["- **Silent period and OPF.** The paper: \"silent period has a negligible impact on OPF\". "
              "Measured change of OPF: " + "; ".join(parts) + ". Each step of Ts adds one "
              "amplification per TSA neuron; waiting also changes how many spikes fire (Ts = 0 fires many "
              "that later need correcting)."]
    # ablation
    abl = _ablation_cells(by_model, lambda r: r["accuracy_snn"], lambda a: f"{100 * a:.2f}%")
    if abl:
        L += ["- **Ablation (fig. 5b).** Paper, SWS-ResNet18 on CIFAR10 at Vth θ/Ts=0, θ/2/Ts=0, θ/Ts=2, "
              "θ/2/Ts=2: almost random, 35.41%, 84.21%, 95.68%. Measured (Tc = 8): " + "; ".join(abl) + "."]
    res = _ablation_cells(by_model, _mean_residual, lambda v: f"{v:.3f}")
    if res:
        L += ["- **Residuals (fig. 5a).** Paper: lowering Vth moves the residual from about 0.5θ to about 0.25θ "
              "and the silent period removes large deviations. Measured mean |residual| over in-range TSA "
              "neurons, in θ: " + "; ".join(res) + "."]
    L.append("")
    return L
