"""MobileNetV2-12-int8 (the ONNX zoo's, ../shared/models) on natural photos: how the reference
evaluator, the exact quantized ANN and the SNN at Ts = Tc - 1 compare with onnxruntime.

For the photos of samples/photos.py (17 sources x views "center" and "flip" = 34 frames):

* compile time (import + conversion);
* reference evaluator vs onnxruntime: the final quantized logits (equal elements, largest
  difference, top-1) and every intermediate layer run on onnxruntime's own input;
* the exact quantized ANN (fold-zero-points graph: exact integer arithmetic, exact rounding)
  vs onnxruntime, the same figures;
* each spiking layer alone at Ts = Tc - 1, fed onnxruntime's input, vs onnxruntime's output;
* end to end, the SNN at Ts = Tc - 1 vs the exact quantized ANN on every element of every
  tensor, and vs onnxruntime's top-1.

The numpy SNN runtime's memory grows with the batch, so it runs ``--chunk`` frames at a time.

    python benchmarks/mobilenet_agreement.py [--frames 34] [--snn-frames 34] [--chunk 4] [--json out.json]
    python benchmarks/mobilenet_agreement.py --default-ts     # the SNN at Tc = 8, Ts = 2: top-1, T_inf, OPF, time
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from swsc.check import compare, isolated_layers, output_quant_tensors  # noqa: E402
from swsc.compiler import compile_graph, import_onnx  # noqa: E402
from swsc.options import CompileOptions  # noqa: E402
from swsc.oracle import Oracle  # noqa: E402
from swsc.passes import FoldZeroPoints  # noqa: E402
from swsc.passmanager import PassManager  # noqa: E402
from swsc.runtime.interpreter import run  # noqa: E402
from swsc.runtime.reference import evaluate, run_node  # noqa: E402

MODEL = ROOT.parent / "shared" / "models" / "mobilenetv2-12-int8.onnx"
SHAPE = (1, 3, 224, 224)
EXACT = CompileOptions(tc=8, ts=7)


def photos(n: int | None = None) -> np.ndarray:
    from samples.photos import imagenet_photos
    x, _ = imagenet_photos(views=("center", "flip"))
    return x[:n] if n else x


def int_tensors(graph) -> list[str]:
    return [k for k, t in graph.tensors.items() if t.quant is not None and not t.is_const
            and t.dtype in ("uint8", "int8")]


def ort_values(graph, x: np.ndarray, chunk: int = 8) -> dict[str, np.ndarray]:
    """onnxruntime's value of every integer tensor the IR shares with the model (QOperator:
    exposing them as outputs changes no fusion)."""
    names = int_tensors(graph)
    return Oracle(MODEL, {k: graph.tensors[k].dtype for k in names}).run(x, chunk=chunk)


def stats(a: np.ndarray, b: np.ndarray) -> dict:
    d = np.abs(np.asarray(a, np.int64).reshape(b.shape) - np.asarray(b, np.int64))
    return {"equal": float((d == 0).mean()), "within_1": float((d <= 1).mean()), "max_lsb": int(d.max())}


def top1(q: np.ndarray) -> np.ndarray:
    return q.reshape(len(q), -1).argmax(axis=1)


def reference_vs_ort(graph, x, ort: dict, chunk: int = 4) -> dict:
    """Final logits end to end, and every other layer run alone on onnxruntime's input."""
    out = output_quant_tensors(graph)[0]
    finals, layers = [], {}
    for i in range(0, len(x), chunk):
        xs = x[i:i + chunk]
        finals.append(evaluate(graph, xs, keep=True)[out])
        env = {k: v[i:i + chunk].reshape((len(xs),) + tuple(graph.tensors[k].shape[1:])) for k, v in ort.items()}
        env.update({k: t.data for k, t in graph.tensors.items() if t.is_const})
        env[graph.inputs[0]] = xs
        for n in graph.nodes:
            o = n.outputs[0]
            if o in ort and o != out and all(j in env for j in n.inputs):
                layers.setdefault(o, []).append((run_node(graph, n, env), env[o]))
    q = np.concatenate(finals)
    per = {k: stats(np.concatenate([a for a, _ in v]), np.concatenate([b for _, b in v])) for k, v in layers.items()}
    return {"final": stats(q, ort[out]), "top1": float((top1(q) == top1(ort[out])).mean()),
            "layers": len(per), "worst_layer": min(per.items(), key=lambda kv: kv[1]["equal"]) if per else None,
            "layers_below_999": sum(s["equal"] < 0.999 for s in per.values()),
            "layers_beyond_1lsb": sum(s["max_lsb"] > 1 for s in per.values())}


def snn_vs_ann(graph, sg, x, ort: dict, chunk: int = 4) -> dict:
    """End to end: the SNN vs the exact quantized ANN (every element of every shared tensor) and
    vs onnxruntime; each spiking layer alone on onnxruntime's input vs onnxruntime."""
    out = output_quant_tensors(graph)[0]
    folded = PassManager([FoldZeroPoints()]).run(graph)
    differ, compared, snn_q, ann_q = 0, 0, [], []
    alone: dict[str, list] = {}
    for i in range(0, len(x), chunk):
        xs = x[i:i + chunk]
        ann = run(folded, xs, intermediate=True).intermediates
        snn = run(sg, xs, intermediate=True).intermediates
        for k in snn:
            if k in ann:
                compared += int(np.size(ann[k]))
                differ += int((np.rint(snn[k]) != np.rint(ann[k])).sum())
        snn_q.append(np.rint(snn[out]))
        ann_q.append(np.rint(ann[out]))
        del ann, snn
        chunk_ort = {k: v[i:i + chunk] for k, v in ort.items()}
        for name, c in isolated_layers(sg, chunk_ort).items():
            alone.setdefault(name, []).append((c["exact_fraction"], c["max_abs_lsb"]))
    s, a = np.concatenate(snn_q), np.concatenate(ann_q)
    per = {k: (float(np.mean([e for e, _ in v])), max(m for _, m in v)) for k, v in alone.items()}
    return {"frames": int(len(x)), "snn_vs_ann_differing_elements": differ, "elements_compared": compared,
            "snn_vs_ort": stats(s, ort[out]), "snn_top1_vs_ort": float((top1(s) == top1(ort[out])).mean()),
            "ann_vs_ort": stats(a, ort[out]), "ann_top1_vs_ort": float((top1(a) == top1(ort[out])).mean()),
            "isolated_layers": len(per), "isolated_worst": min(per.items(), key=lambda kv: kv[1][0]) if per else None,
            "isolated_below_999": sum(e < 0.999 for e, _ in per.values()),
            "isolated_beyond_1lsb": sum(m > 1 for _, m in per.values())}


def exact_ann_vs_ort(graph, x, ort: dict, chunk: int = 8) -> dict:
    out = output_quant_tensors(graph)[0]
    folded = PassManager([FoldZeroPoints()]).run(graph)
    q = np.concatenate([np.rint(run(folded, x[i:i + chunk], intermediate=True).intermediates[out])
                        for i in range(0, len(x), chunk)])
    return {"final": stats(q, ort[out]), "top1": float((top1(q) == top1(ort[out])).mean())}


def snn_default(graph, x, ort: dict, options: CompileOptions, chunk: int = 4) -> dict:
    """The SNN at the given (default) options: top-1 agreement with onnxruntime and with the exact
    quantized ANN, T_inf, OPF and spikes per frame, numpy seconds per frame against onnxruntime's."""
    import resource

    out = output_quant_tensors(graph)[0]
    sg = compile_graph(graph, options)
    folded = PassManager([FoldZeroPoints()]).run(graph)
    snn_q, ann_q, totals, t_snn = [], [], [], 0.0
    for i in range(0, len(x), chunk):
        xs = x[i:i + chunk]
        t = time.perf_counter()
        res = run(sg, xs, intermediate=True)
        t_snn += time.perf_counter() - t
        snn_q.append(np.rint(res.intermediates[out]))
        totals.append((len(xs), res.totals()))
        ann_q.append(np.rint(run(folded, xs, intermediate=True).intermediates[out]))
        del res
    sess = Oracle(MODEL).sess
    t = time.perf_counter()
    for i in range(len(x)):
        sess.run(None, {sess.get_inputs()[0].name: x[i:i + 1]})
    t_ort = time.perf_counter() - t
    s, a = np.concatenate(snn_q), np.concatenate(ann_q)
    n = sum(k for k, _ in totals)
    avg = {key: sum(k * tot[key] for k, tot in totals) / n for key in ("opf", "spikes_pos", "spikes_neg")}
    return {"options": {"tc": options.tc, "ts": options.ts}, "frames": int(n), "t_inf": totals[0][1]["t_inf"],
            "opf_per_frame": avg["opf"], "ann_macs": totals[0][1]["ann_macs"],
            "spikes_per_frame": avg["spikes_pos"] + avg["spikes_neg"],
            "top1_vs_ort": float((top1(s) == top1(ort[out])).mean()),
            "top1_vs_exact_ann": float((top1(s) == top1(a)).mean()),
            "vs_ort": stats(s, ort[out]), "vs_exact_ann": stats(s, a),
            "numpy_s_per_frame": t_snn / n, "ort_s_per_frame": t_ort / n,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=34, help="photos for the reference and the exact ANN")
    p.add_argument("--snn-frames", type=int, default=34, help="photos run through the SNN")
    p.add_argument("--chunk", type=int, default=4, help="SNN frames at a time (memory)")
    p.add_argument("--json", type=Path)
    p.add_argument("--default-ts", action="store_true", help="only the SNN at the default Tc = 8, Ts = 2 "
                   "(a process of its own, so its peak memory is the SNN's)")
    a = p.parse_args(argv)
    if not MODEL.exists():
        print(f"{MODEL} not found (../shared is optional)")
        return 1
    t = time.perf_counter()
    g = import_onnx(MODEL, SHAPE)
    t_import = time.perf_counter() - t
    sg = compile_graph(g, EXACT)
    t_compile = time.perf_counter() - t
    x = photos(a.frames)
    if a.default_ts:
        out = output_quant_tensors(g)[0]
        ort = Oracle(MODEL, {out: g.tensors[out].dtype}).run(x, chunk=8)
        rep = snn_default(g, x[:a.snn_frames], {out: ort[out][:a.snn_frames]}, CompileOptions(), chunk=a.chunk)
        print(json.dumps(rep, indent=1))
        if a.json:
            a.json.write_text(json.dumps(rep, indent=1))
        return 0
    ort = ort_values(g, x)
    rep = {"frames": int(len(x)), "import_s": round(t_import, 2), "import_and_compile_s": round(t_compile, 2)}
    rep["reference_vs_ort"] = reference_vs_ort(g, x, ort)
    print(json.dumps(rep, indent=1), flush=True)
    rep["exact_ann_vs_ort"] = exact_ann_vs_ort(g, x, ort)
    print(json.dumps(rep["exact_ann_vs_ort"], indent=1), flush=True)
    n = min(a.snn_frames, len(x))
    rep["snn_ts_tc_minus_1"] = snn_vs_ann(g, sg, x[:n], {k: v[:n] for k, v in ort.items()}, chunk=a.chunk)
    print(json.dumps(rep["snn_ts_tc_minus_1"], indent=1), flush=True)
    if a.json:
        a.json.write_text(json.dumps(rep, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
