"""What 32-bit membranes cost: integer mode (--membrane-bits 32 and 64) against the float mode and onnxruntime.

Per model, at Ts = Tc - 1 (exact regime) and at the default Ts = 2: the fraction of output
elements equal and the top-1 agreement of the integer mode at 32 bits against the float mode
and against onnxruntime, of the integer mode at 64 bits against onnxruntime, and how many
layers saturate their 32-bit membrane. The integer mode is what the generated C computes bit
for bit (tests/test_cbackend.py), so these are the C's figures too.

    python benchmarks/membrane_agreement.py [samples] [shared] [corpus] [--samples N]

samples: the bundled models on their held-out data; shared: the two MLPerf Tiny models in
../shared/models on uniform random inputs over the input quantizer's range; corpus: every
test-corpus model on random inputs (slow: about 10 minutes).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import corpus  # noqa: E402  (the test corpus generator lives with the tests)

from swsc.check import output_quant_tensors  # noqa: E402
from swsc.compiler import compile_graph, import_onnx  # noqa: E402
from swsc.options import CompileOptions  # noqa: E402
from swsc.oracle import Oracle  # noqa: E402
from swsc.runtime.cbackend import input_quant  # noqa: E402
from swsc.runtime.interpreter import run  # noqa: E402

SHARED = ROOT.parent / "shared" / "models"


def _top1(q):
    return np.argmax(q.reshape(len(q), -1), 1)


def _cmp(a, b) -> str:
    exact = float((np.rint(a) == np.rint(b)).mean())
    return f"{100 * exact:.2f} / {100 * float((_top1(a) == _top1(b)).mean()):.1f}"


def row(path: Path, x: np.ndarray, name: str, tc: int) -> str:
    g = import_onnx(path)
    qn = output_quant_tensors(g)[0]
    ort = Oracle(path, {qn: g.tensors[qn].dtype}).run(x)[qn].astype(np.int64)
    cells = []
    for ts in (tc - 1, 2):
        out = {}
        for bits in (32, 64):
            sg = compile_graph(g, CompileOptions(tc=tc, ts=ts, membrane_bits=bits), integer=True)
            out[bits] = run(sg, x, intermediate=True, mode="int").intermediates[qn]
            if bits == 32:
                qf = np.rint(run(sg, x, intermediate=True).intermediates[qn])
                sat = sum(1 for n in sg.nodes if n.op == "TsaLayer" and n.attrs.get("int_sat"))
        cells += [_cmp(out[32], qf), _cmp(out[32], ort), _cmp(out[64], ort), str(sat)]
    return f"| {name} | " + " | ".join(cells) + " |"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sets", nargs="*", default=["samples", "shared"], choices=("samples", "shared", "corpus"))
    p.add_argument("--samples", type=int, default=200, help="frames per model (default 200)")
    p.add_argument("--tc", type=int, default=8)
    p.add_argument("--corpus", type=Path, default=Path(os.environ.get("SWSC_CORPUS_DIR", ROOT / "tests/.corpus")))
    a = p.parse_args(argv)
    ts7 = a.tc - 1
    print(f"element-exact % / top-1 %; frames per model: {a.samples}")
    print(f"| model | Ts={ts7}: int32 vs float | int32 vs ORT | int64 vs ORT | saturating layers "
          f"| Ts=2: int32 vs float | int32 vs ORT | int64 vs ORT | saturating layers |")
    print("|---" * 9 + "|")
    if "samples" in a.sets:
        for path in sorted((ROOT / "samples").glob("*.onnx")):
            with np.load(path.with_name(path.stem + "_test.npz")) as f:
                x = f["x"][:a.samples].astype(np.float32)
            print(row(path, x, path.stem, a.tc), flush=True)
    if "shared" in a.sets:
        for stem in ("ic_quantized_int8", "ks_quantized_int8"):
            path = SHARED / f"{stem}.onnx"
            if not path.exists():
                print(f"| {stem} | skipped: {path} is missing |")
                continue
            g = import_onnx(path)
            q = input_quant(compile_graph(g, CompileOptions(), integer=True))
            lo, hi = q["scale"] * (q["lo"] - q["zero_point"]), q["scale"] * (q["hi"] - q["zero_point"])
            shape = tuple(g.tensors[g.inputs[0]].shape)
            x = np.random.default_rng(0).uniform(lo, hi, (min(a.samples, 64),) + shape[1:]).astype(np.float32)
            print(row(path, x, stem, a.tc), flush=True)
    if "corpus" in a.sets:
        a.corpus.mkdir(parents=True, exist_ok=True)
        for name in corpus.model_names():
            print(row(corpus.get_model(name, a.corpus), corpus.make_inputs(name, 32, seed=5), name, a.tc),
                  flush=True)


if __name__ == "__main__":
    main()
