"""Behaviour fingerprints of whole compilations, to prove a refactor changes nothing.

For one model this records SHA-256 hashes of
* the reference (quantized ANN) outputs of the imported graph,
* for each of two compile configurations (the default exact encoder with Ts = 2, and the
  TSA encoder with Ts = Tc - 1), the numpy interpreter's float-mode and integer-mode
  results: every tensor decoded to its quantized integer q, every graph output not
  produced by a Softmax (np.exp differs in the last bit between CPU SIMD levels; the
  Softmax input is covered as a decoded tensor), per-layer spike counts and T_inf,
* optionally (``--c``) the generated C harness's integer outputs.

The fixture ``tests/golden/baseline_hashes.json`` was written by the commit *before* the
op-module refactor (issue 11) and is compared by tests/test_baseline.py. A model is only
compared when its ONNX bytes hash to the recorded ``model`` value: corpus models are
regenerated per machine, and a differently trained or calibrated model proves nothing.

    python tests/baseline.py record [--c]     # rewrite the fixture (only before a refactor!)
    python tests/baseline.py check [--c]      # compare every available model, print a table
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
REPO = TESTS.parent
SHARED = REPO.parent / "shared"
FIXTURE = TESTS / "golden" / "baseline_hashes.json"
N_SAMPLES = 4

import corpus  # noqa: E402
import corpus_torch  # noqa: E402
from swsc.compiler import compile_graph, import_onnx  # noqa: E402
from swsc.errors import SwscError  # noqa: E402
from swsc.options import CompileOptions  # noqa: E402
from swsc.runtime import interpreter, reference  # noqa: E402

CONFIGS = {"exact-ts2": dict(tc=8, ts=2), "tsa-ts7": dict(tc=8, ts=7, encoder="tsa")}


def _h(a) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()).hexdigest()[:16]


def file_hash(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def models(cache_dir) -> dict[str, tuple[Path, np.ndarray]]:
    """name -> (model path, float32 inputs), for every model this machine has."""
    out = {}
    for name in corpus.model_names():
        out["corpus/" + name] = (lambda n=name: corpus.get_model(n, cache_dir),
                                 lambda n=name: corpus.make_inputs(n, N_SAMPLES, seed=1))
    if corpus_torch.available():
        for name in corpus_torch.model_names():
            out["torch/" + name] = (lambda n=name: corpus_torch.get_model(n, cache_dir),
                                    lambda n=name: corpus_torch.make_inputs(n, N_SAMPLES, seed=1))
    for p in sorted((REPO / "samples").glob("*.onnx")):
        data = p.with_name(p.stem + "_test.npz")
        out["sample/" + p.stem] = (lambda p=p: p, lambda d=data: np.load(d)["x"][:N_SAMPLES])
    for f in ("ic_quantized_int8.onnx", "ks_quantized_int8.onnx"):
        p = SHARED / "models" / f
        if p.exists():
            def xs(p=p):
                g = import_onnx(p)
                shape = (N_SAMPLES,) + g.tensors[g.inputs[0]].shape[1:]
                return np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
            out["mlperf/" + p.stem] = (lambda p=p: p, xs)
    return out


def _softmax_outputs(g) -> set:
    return {n.outputs[0] for n in g.nodes if n.op == "Softmax"}


def fingerprint(path, xs, *, with_c: bool = False) -> dict:
    g = import_onnx(path)
    rec = {"model": file_hash(path), "inputs": _h(xs)}
    ref = reference.evaluate(g, xs)
    rec["reference"] = {o: _h(v) for o, v in ref.items()}
    for cfg, kw in CONFIGS.items():
        sg = compile_graph(g, CompileOptions(**kw), integer=True)
        soft = _softmax_outputs(sg)
        for mode in ("float", "int"):
            r = interpreter.run(sg, xs, intermediate=True, mode=mode, residuals=False)
            rec[f"{cfg}/{mode}"] = {
                "outputs": {o: _h(v) for o, v in r.outputs.items() if o not in soft},
                "tensors": {k: _h(v) for k, v in sorted(r.intermediates.items())},
                "spikes": {s.name: [int(s.spikes_pos), int(s.spikes_neg), int(s.synaptic_ops)]
                           for s in r.layers},
                "t_inf": r.t_inf,
            }
        if with_c:
            try:
                rec[f"{cfg}/c"] = c_outputs(sg, xs)
            except SwscError as e:   # e.g. a float head the C backend has no code for
                rec[f"{cfg}/c"] = {"refused": type(e).__name__}
    return rec


def c_outputs(sg, xs) -> dict:
    from swsc.runtime import cbackend
    with tempfile.TemporaryDirectory(prefix="swsc-baseline-") as td:
        cbackend.emit_c(sg, td)
        exe = cbackend.build(td)
        q, counts = cbackend.run_binary(exe, cbackend.quantize_input(sg, xs))
    return {"outputs": _h(np.asarray(q)), "spikes": {k: [int(a), int(b)] for k, a, b in
                                                     ((k, *v) for k, v in sorted(counts.items()))}}


def diff(old: dict, new: dict, prefix="") -> list[str]:
    """Every key of ``old`` whose value ``new`` lacks or changed (new keys are allowed)."""
    bad = []
    for k, v in old.items():
        if isinstance(v, dict) and "refused" in v and isinstance(new.get(k), dict) and "outputs" in new[k]:
            continue    # the C backend runs what it once refused (a float head): nothing to compare
        if k not in new:
            bad.append(f"{prefix}{k}: missing")
        elif isinstance(v, dict) and isinstance(new[k], dict):
            bad += diff(v, new[k], f"{prefix}{k}/")
        elif v != new[k]:
            bad.append(f"{prefix}{k}: {v} -> {new[k]}")
    return bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("record", "check"))
    ap.add_argument("--c", action="store_true", help="also build and run the generated C (slow)")
    ap.add_argument("--only", default="", help="substring filter on model names")
    ap.add_argument("--out", default=str(FIXTURE), help="record: the fixture to write (merged into)")
    ap.add_argument("--cache", default=os.environ.get("SWSC_CORPUS_DIR", "/tmp/swsc-corpus"))
    a = ap.parse_args(argv)
    Path(a.cache).mkdir(parents=True, exist_ok=True)
    old = json.loads(FIXTURE.read_text()) if FIXTURE.exists() else {}
    new, failed = {}, 0
    for name, (path_fn, xs_fn) in models(a.cache).items():
        if a.only not in name:
            continue
        path = path_fn()
        rec = fingerprint(path, xs_fn(), with_c=a.c)
        new[name] = rec
        if a.action == "check":
            if name not in old:
                print(f"{name:48s} not in the fixture")
                continue
            if old[name]["model"] != rec["model"]:
                print(f"{name:48s} model differs from the recorded one: not compared")
                continue
            bad = diff(old[name], rec) if a.c else diff({k: v for k, v in old[name].items()
                                                         if not k.endswith("/c")}, rec)
            failed += bool(bad)
            print(f"{name:48s} {'OK' if not bad else 'CHANGED: ' + '; '.join(bad[:4])}", flush=True)
        else:
            print(f"{name:48s} recorded", flush=True)
            _write(Path(a.out), new)   # after every model: a long recording survives a crash
    return 1 if failed else 0


def _write(path: Path, new: dict) -> None:
    if new:
        old = json.loads(path.read_text()) if path.exists() else {}
        merged = {**old, **new}
        # one line per model: diffs of the fixture read model by model
        path.write_text("{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(merged[k], sort_keys=True)}"
                                           for k in sorted(merged)) + "\n}\n")


if __name__ == "__main__":
    sys.exit(main())
