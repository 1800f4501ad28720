"""The tuner's Pareto front (T_inf against agreement against OPF): measured on held-out
data next to the uniform schedules, as a table, a JSON document and a plot that `swsc report`
shows beside the paper's fig. 3 (accuracy against latency)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .check import load_model_data, output_quant_tensors
from .data import load_data
from .errors import UsageError
from .oracle import Oracle
from .plotting import pyplot, save_png
from .runtime.interpreter import Interpreter
from .tune import Evaluation, Tuner, TuneResult, metrics_of, t_inf

FORMAT = "swsc-tune"
VERSION = 1


def front(evals: list[Evaluation]) -> list[Evaluation]:
    """The staircase of the tuning data: for each T_inf the best (top-1 agreement, exact
    fraction) with the fewest OPF among equals, kept only where it beats every shorter schedule."""
    rank = lambda e: (e.metrics["agreement"], e.metrics["exact_fraction"])  # noqa: E731
    best_at: dict[int, Evaluation] = {}
    for e in evals:
        b = best_at.get(e.t_inf)
        if b is None or (rank(e), -e.opf) > (rank(b), -b.opf):
            best_at[e.t_inf] = e
    out, top = [], (-1.0, -1.0)
    for t in sorted(best_at):
        if rank(best_at[t]) > top:
            out.append(best_at[t])
            top = rank(best_at[t])
    return out


def measure(tuner: Tuner, schedules: list[tuple[str, dict]], x, y, q_ann, q_ort, progress=None) -> list[dict]:
    """Each (label, schedule) on held-out data: T_inf, agreement and exact fraction against
    the exact ANN and onnxruntime, accuracy (with labels), OPF per frame."""
    rows = []
    for i, (label, s) in enumerate(schedules):
        q, totals = tuner.ev.outputs(s, x)
        ann, ort = metrics_of(q, q_ann, y), metrics_of(q, q_ort)
        row = {"label": label, "t_inf": t_inf(tuner.sg, s), "agreement_ann": ann["agreement"],
               "exact_ann": ann["exact_fraction"], "max_lsb_ann": ann["max_abs_lsb"],
               "agreement_ort": ort["agreement"], "exact_ort": ort["exact_fraction"], "opf": totals["opf"],
               "opf_per_mac": totals["opf"] / max(totals["ann_macs"], 1), "schedule": dict(s)}
        if y is not None:
            row.update(accuracy_snn=ann["accuracy"], accuracy_ann=ann["accuracy_ref"],
                       accuracy_ort=float((q_ort.reshape(len(q_ort), -1).argmax(1) == y).mean()))
        rows.append(row)
        if progress:
            progress(i + 1)
    return rows


COLUMNS = (("t_inf", "T_inf", "{:d}"), ("agreement_ann", "agree ANN", "{:.4f}"),
           ("agreement_ort", "agree ORT", "{:.4f}"), ("exact_ann", "exact ANN", "{:.4f}"),
           ("accuracy_snn", "accuracy", "{:.4f}"), ("opf_per_mac", "OPF/MACs", "{:.3f}"))


def table(rows: list[dict], title: str) -> str:
    """A fixed-width text table of held-out rows."""
    cols = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    head = f"{'schedule':40s}" + "".join(f"{h:>11s}" for _, h, _ in cols)
    lines = [title, head]
    for r in rows:
        cells = "".join(f"{fmt.format(r[k]) if r.get(k) is not None else '-':>11s}" for k, _, fmt in cols)
        lines.append(f"{r['label'][:40]:40s}{cells}")
    return "\n".join(lines)


def markdown_table(rows: list[dict]) -> list[str]:
    cols = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    out = ["| schedule | " + " | ".join(h for _, h, _ in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for r in rows:
        out.append(f"| {r['label']} | " + " | ".join(fmt.format(r[k]) if r.get(k) is not None else "-"
                                                     for k, _, fmt in cols) + " |")
    return out


def document(model: str, options, result: TuneResult, tuned: list[dict], uniform: list[dict], *,
             tuning_samples: int, holdout_samples: int, holdout: str) -> dict:
    best = result.best
    return {"format": FORMAT, "version": VERSION, "model": model,
            "options": json.loads(options.to_json()), "target": result.target.describe(),
            "schedule": best.schedule if best else None, "t_inf": best.t_inf if best else None,
            "tuning": {"samples": tuning_samples, **(best.metrics if best else {})},
            "holdout": {"samples": holdout_samples, "source": holdout},
            "front": tuned, "uniform": uniform, "evaluations": len(result.evaluations),
            "seconds": round(result.seconds, 1), "notes": result.notes,
            "isolated_errors": {k: [round(float(v), 6) for v in e] for k, e in result.errors.items()}}


def is_tune_file(path) -> bool:
    try:
        with open(path) as f:
            head = f.read(200)
    except OSError:
        return False
    return f'"format": "{FORMAT}"' in head


def _metric(rows):
    """Accuracy where the data has labels (the paper's fig. 3), else agreement with the ANN."""
    if rows and rows[0].get("accuracy_snn") is not None:
        return "accuracy_snn", "top-1 accuracy (%)"
    return "agreement_ann", "top-1 agreement with the exact ANN (%)"


def plot(doc: dict, path) -> None:
    """Accuracy (or agreement) against T_inf on held-out data: uniform Ts and the tuned front."""
    plt = pyplot()
    key, label = _metric(doc["uniform"] or doc["front"])
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    for rows, style, name in ((doc["uniform"], "o--", "uniform Ts (paper)"), (doc["front"], "s-", "tuned per layer")):
        rows = sorted(rows, key=lambda r: r["t_inf"])
        if rows:
            ax.plot([r["t_inf"] for r in rows], [100 * r[key] for r in rows], style, markersize=4, label=name)
    ref = next((r.get("accuracy_ann") for r in doc["uniform"] + doc["front"] if key == "accuracy_snn"), None)
    if ref is not None:
        ax.axhline(100 * ref, color="k", linestyle=":", linewidth=1, label=f"exact quantized ANN {100 * ref:.2f}%")
    ax.set_xlabel("latency T_inf (steps)")
    ax.set_ylabel(label)
    ax.set_title(f"{doc['model'].removesuffix('.onnx')}: held-out, {doc['holdout']['samples']} samples")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_png(fig, path)


def report_parts(paths, plots: bool) -> tuple[dict, list[str]]:
    """For `swsc report`: ({png name: writer}, markdown lines) of tune documents."""
    files, lines = {}, []
    for p in paths:
        doc = json.loads(Path(p).read_text())
        stem = doc["model"].removesuffix(".onnx")
        lines += [f"## Tuned silent periods: {stem}", "",
                  f"Target {doc['target']}, met on {doc['tuning']['samples']} tuning samples at T_inf = "
                  f"{doc['t_inf']}; measured on {doc['holdout']['samples']} held-out samples "
                  f"({doc['holdout']['source']}).", "", "Uniform Ts:", ""]
        lines += markdown_table(doc["uniform"]) + ["", "Tuned front:", ""] + markdown_table(doc["front"]) + [""]
        if plots:
            name = f"{stem}_tuned_latency.png"
            files[name] = lambda path, d=doc: plot(d, path)
            lines += [f"![{stem}: tuned front against uniform Ts]({name})", ""]
    return files, lines


def dominated_by_uniform(tuned: list[dict], uniform: list[dict], key: str = "agreement_ann") -> list[dict]:
    """Tuned rows that some uniform row beats (no longer and strictly better): should be none."""
    return [t for t in tuned if any(u["t_inf"] <= t["t_inf"] and u[key] > t[key] + 1e-12 for u in uniform)]


def tune_model(model, data, options, target, *, test=None, holdout: float = 0.5, limit=None,
               input_shape=None, max_evals: int = 40, uniform: bool = True, budget=None,
               progress: bool = True, log=print) -> dict:
    """`swsc tune`: tune on ``data`` (or its first part), report on ``test`` (or the rest).

    Returns the tune document (see ``document``); ``log`` gets the progress lines."""
    model = Path(model)
    graph, x, y = load_model_data(model, data, input_shape, limit)
    if test is not None:
        xt, yt = load_data(test, graph)
        where = Path(test).name
    else:
        if not 0 < holdout < 1:
            raise UsageError(f"--holdout must be a fraction in (0, 1), got {holdout!r}")
        cut = int(round(len(x) * (1 - holdout)))
        if cut < 1 or cut >= len(x):
            raise UsageError(f"{len(x)} samples cannot be split {1 - holdout:g}/{holdout:g} into tuning and "
                             "held-out parts", hint="give more samples or a separate --test file")
        x, xt = x[:cut], x[cut:]
        y, yt = (y[:cut], y[cut:]) if y is not None else (None, None)
        where = f"the last {len(xt)} samples of {Path(data).name}"
    qname = output_quant_tensors(graph)[0]
    oracle = Oracle(model, {qname: graph.tensors[qname].dtype})
    q_ort, q_ort_t = (oracle.run(v)[qname].astype(np.int64) for v in (x, xt))
    log(f"tuning {model.name} on {len(x)} samples, reporting on {len(xt)} held-out ({where}); "
        f"target: {target.describe()}")
    tuner = Tuner(graph, x, y, options, target, q_ort=q_ort, budget=budget, progress=progress)
    result = tuner.run(max_evals=max_evals)
    q_ann_t = Interpreter(tuner.ann, budget=budget).run(xt, intermediate={qname}).intermediates[qname]
    picks = [(f"tuned: {e.label}"[:40], e.schedule) for e in front(result.evaluations)]
    if result.best is not None and all(s != result.best.schedule for _, s in picks):
        picks.append((f"tuned: {result.best.label}"[:40], result.best.schedule))
    unis = [(f"uniform Ts={ts}", {n: ts for n in tuner.layers}) for ts in range(options.tc)] if uniform else []
    bar = tqdm(total=len(picks) + len(unis), desc="held-out", unit="schedule", disable=not progress, leave=False)
    rows = measure(tuner, picks + unis, xt, yt, q_ann_t, q_ort_t, progress=lambda i: bar.update(1))
    bar.close()
    tuned_rows, uniform_rows = rows[:len(picks)], rows[len(picks):]
    return document(model.name, options, result, tuned_rows, uniform_rows, tuning_samples=len(x),
                    holdout_samples=len(xt), holdout=where)
