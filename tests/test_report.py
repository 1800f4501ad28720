"""`swsc report` on tables made for the purpose: refusing what is not a sweep table, and
figures that stay readable (measured on the drawn matplotlib artists, in pixels)."""
from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest

from swsc import report
from swsc.cli import main
from swsc.sweep import COLUMNS

mpl = pytest.importorskip("matplotlib")


def row(tc=8, ts=2, vth=0.5, acc=0.98, opf=1e5, t_inf=None, layers=None):
    r = {"model": "m.onnx", "tc": tc, "ts": ts, "vth_factor": vth, "encoder": "exact", "encoder_ts": None,
         "samples": 500, "accuracy_snn": acc, "accuracy_ann": 0.986, "top1_agreement": 0.99,
         "exact_fraction": 0.9, "max_abs_lsb": 1, "t_inf": tc + 3 * ts if t_inf is None else t_inf,
         "opf": opf, "opf_amplification": 1e4, "opf_synaptic": opf - 1e4, "ann_macs": 400000,
         "spikes_pos": 10.0, "spikes_neg": 1.0}
    if layers is not None:
        r["layers"] = layers
    return r


def write_table(path, rows, **meta):
    path.write_text(json.dumps({"format": "swsc-sweep", "rows": rows, **meta}))
    return path


BAD = {
    "header_only.csv": ",".join(COLUMNS) + "\n",
    "empty.csv": "",
    "other.csv": "a,b\n1,2\n",
    "binary.csv": "\x00\x01\x02",
    "no_rows.json": json.dumps({"format": "swsc-sweep", "rows": []}),
    "missing.json": json.dumps({"format": "swsc-sweep", "rows": [{"model": "m.onnx"}]}),
    "wrong_type.json": json.dumps({"format": "swsc-sweep", "rows": [{**row(), "tc": "8"}]}),
    "rows_not_list.json": json.dumps({"format": "swsc-sweep", "rows": {"a": 1}}),
    "list.json": "[1, 2]",
    "empty_cell.csv": ",".join(COLUMNS) + "\n" + ",".join(["m.onnx", "8", "2", "0.5", "exact"] + [""] * 14) + "\n",
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_refuses_what_is_not_a_sweep_table(name, tmp_path, capsys):
    (tmp_path / name).write_text(BAD[name])
    rc = main(["report", str(tmp_path / name), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert name in err and "swsc sweep" in err
    assert not (tmp_path / "out").exists()


def test_a_real_sweep_row_is_accepted(tmp_path, capsys):
    assert main(["report", str(write_table(tmp_path / "t.json", [row()])), "-o", str(tmp_path / "o"),
                 "--no-plots"]) == 0
    assert "| m.onnx | 500 |" in (tmp_path / "o" / "report.md").read_text()


def _extent(artist, renderer):
    return artist.get_window_extent(renderer)


def _assert_readable(fig):
    """Point labels inside the axes and apart; the legend off the axes; the title off the legend."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    ax = fig.axes[0]
    frame = _extent(ax, r)
    labels = [(t.get_text(), _extent(t, r)) for t in ax.texts]
    for (a, ba), (b, bb) in itertools.combinations(labels, 2):
        assert not ba.overlaps(bb), f"labels {a!r} and {b!r} collide"
    for a, ba in labels:
        assert frame.x0 <= ba.x0 and ba.x1 <= frame.x1 and frame.y0 <= ba.y0 and ba.y1 <= frame.y1, a
    legend = ax.get_legend()
    if legend is not None:
        lb = _extent(legend, r)
        assert not lb.overlaps(frame), "the legend lies over the axes"
        if fig._suptitle is not None:
            assert not lb.overlaps(_extent(fig._suptitle, r))


def _opf_grid():
    """Tc 4..8 x Ts 0..3: Ts = 0 far below (at 35-40%), the others within 3 points, several equal;
    the OPF of Tc 7 and 8 interleave, as for a 7-bit model."""
    rows = []
    for tc, ts in itertools.product(range(4, 9), range(4)):
        acc = 0.35 + 0.01 * (tc - 4) if ts == 0 else min(0.986, 0.955 + 0.01 * (tc - 4) + 0.002 * ts)
        opf = {4: 460e3, 5: 610e3, 6: 745e3, 7: 880e3, 8: 885e3}[tc] + 12e3 * ts
        rows.append(row(tc, ts, acc=acc, opf=opf))
    return rows


def test_opf_figure_is_readable():
    fig = report.opf_figure("m", _opf_grid())
    _assert_readable(fig)
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    assert 90 < lo < 95.5 and hi > 98.6, "the y range must show the band where the Ts >= 1 curves differ"
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("Ts=0 (5 below the axis: 35.0-39.0%)") for t in texts), texts
    assert {f"Tc={tc}" for tc in range(4, 9)} <= set(texts)


def test_latency_labels_do_not_collide():
    # one Tc, so every point gets a Ts label; T_inf values one step apart
    rows = [row(8, ts, acc=0.980 + 0.0005 * (ts % 2), t_inf=8 + ts) for ts in range(8)]
    fig = report.latency_figure("m", rows)
    _assert_readable(fig)
    assert len(fig.axes[0].texts) >= 4


def _colour(artist):
    return mpl.colors.to_hex(artist.get_facecolor() if hasattr(artist, "get_height") else artist.get_edgecolor())


def test_ablation_draws_only_measured_bars_in_fixed_colours():
    bins = [i / 20 - 1.5 for i in range(61)]
    hist = [1] * 60
    layers = [{"name": "fc", "op": "TsaLayer", "residual_hist": hist, "in_range": 10, "residual_abs_mean": 0.2}]
    rows = [row(8, 0, 0.5, acc=0.4, layers=layers), row(8, 2, 0.5, acc=0.98, layers=layers),
            row(8, 0, 1.0, acc=None, layers=layers)]   # no accuracy: no bar
    fig = report.ablation_figure("m", rows)
    _assert_readable(fig)
    bars = fig.axes[0].patches
    assert [_colour(b) for b in bars] == [report.CONFIG_COLOURS[(0.5, 0)], report.CONFIG_COLOURS[(0.5, 2)]]
    res = report.residual_figure("m", rows, bins)
    curves = {s.get_label(): mpl.colors.to_hex(s.get_edgecolor()) for s in res.axes[0].patches}
    assert curves == {"Vth=θ/2, Ts=0": report.CONFIG_COLOURS[(0.5, 0)],
                      "Vth=θ/2, Ts=2": report.CONFIG_COLOURS[(0.5, 2)],
                      "Vth=θ, Ts=0": report.CONFIG_COLOURS[(1.0, 0)]}


def test_report_does_not_import_the_cli():
    """report builds files, the CLI writes them: no import cycle between the two."""
    code = "import sys, swsc.report; sys.exit('swsc.cli' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
