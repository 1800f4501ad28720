"""Benchmark: swsc's generated C against emx-onnx-cgen's C of the same quantized model, on this
machine and on a Cortex-M4 (QEMU mps2-an386).

For every model (default: samples/*.onnx, then ../shared/models/mobilenetv2-12-int8.onnx on
photos from samples/photos.py where ../shared is present) this compiles the integer SWS graph
with swsc's public C path (``cbackend.emit_c`` / ``build``, ``firmware.build``) and the same
ONNX file with ``emx-onnx-cgen compile``, then measures, same inputs for both:

* host us/frame: both harnesses built with the same ``--cc`` and ``--cflags``, each run on N
  frames in one process (its start-up, measured on one frame, subtracted), the contenders timed
  in alternation, best of ``--repeats``;
* Cortex-M4 instructions per frame: both built with arm-none-eabi-gcc, the same ``--cflags``
  and ``-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16``, run in
  ``qemu-system-arm -icount shift=0`` on ``--m4-frames`` frames: SysTick read around every call
  (runtime/firmware.py says why that is an instruction count);
* flash = code + constants (+ .data's image) and RAM = .data + .bss + the measured stack
  high-water mark, from ``arm-none-eabi-size`` of each network's own objects (not the harness
  or newlib).

    python benchmarks/bench_c.py [MODEL.onnx ...] [--samples 256] [--m4-frames 16] [--cflags "-std=c99 -O2"]
                                 [--callgrind N]   (x86 instruction counts too, valgrind)
"""
from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from swsc.compiler import compile_graph, import_onnx
from swsc.options import CompileOptions
from swsc.runtime import cbackend as cb
from swsc.runtime import firmware as fw

import emx_c  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from common import best_of, inputs, parser  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MOBILENET = ROOT.parent / "shared" / "models" / "mobilenetv2-12-int8.onnx"
#: emx-onnx-cgen keeps every temporary of the network on the stack (see emx_c.generate)
EMX_STACK = 3 * 1024 * 1024 + 512 * 1024
EMX_PSRAM_STACK = 12 * 1024 * 1024


def _photos(n: int) -> np.ndarray:
    sys.path.insert(0, str(ROOT))
    from samples.photos import TEST_SOURCES, imagenet_photos
    x, _ = imagenet_photos(TEST_SOURCES, views=("center", "flip"))
    return x[:n]


def host_times(sws_exe, sws_x, emx_exe, emx_x, repeats: int) -> tuple[float, float]:
    """us/frame of both harnesses, alternated, best of ``repeats``, start-up subtracted."""
    t = best_of(lambda: cb.run_binary(sws_exe, sws_x[:1]), lambda: cb.run_binary(sws_exe, sws_x),
                lambda: emx_c.run_host(emx_exe, emx_x[:1]), lambda: emx_c.run_host(emx_exe, emx_x),
                repeats=repeats)
    per = max(len(sws_x) - 1, 1)
    return 1e6 * max(t[1] - t[0], 0) / per, 1e6 * max(t[3] - t[2], 0) / per


def callgrind_per_frame(exe: Path, data: bytes, frame_bytes: int) -> float:
    """x86 instructions per frame of a harness, counted by valgrind's callgrind (the run on
    the frames minus the run on no input, so start-up and I/O set-up drop out)."""
    def refs(inp: bytes) -> int:
        r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", str(exe)],
                           input=inp, capture_output=True)
        m = re.search(rb"refs:\s+([\d,]+)", r.stderr)
        if r.returncode != 0 or m is None:
            raise SystemExit(f"bench_c: callgrind failed on {exe}: {r.stderr[-300:]!r}")
        return int(m.group(1).replace(b",", b""))
    return (refs(data) - refs(b"")) / (len(data) // frame_bytes)


def bench(model: Path, a, work: Path, x: np.ndarray | None = None, *, m4_frames: int, callgrind: int) -> dict:
    shape = (1, *x.shape[1:]) if x is not None else None
    graph = import_onnx(model, shape)
    x = inputs(model, graph, a.samples) if x is None else x
    sg = compile_graph(graph, CompileOptions(tc=a.tc, ts=a.ts), integer=True)
    sws_dir, emx_dir = work / model.stem / "swsc", work / model.stem / "emx"
    cb.emit_c(sg, sws_dir, prefix="m", header_info={"source": model.name})
    sws_exe = cb.build(sws_dir, cc=a.cc, cflags=a.cflags)
    if emx_c.generate(model, emx_dir)["folded"]:
        r_note = ("emx-onnx-cgen compiled its static-shape copy (batch 1, Reshape shapes evaluated by "
                  "onnxruntime, the per-channel QLinearMatMul as a 1x1 QLinearConv; see emx_c.static_copy)")
    else:
        r_note = None
    emx_exe = emx_c.build_host(emx_dir, a.cc, a.cflags)
    x_q = cb.quantize_input(sg, x)
    r = {"frames": len(x), "notes": [r_note] if r_note else []}
    r["sws_us"], r["emx_us"] = host_times(sws_exe, x_q, emx_exe, x, a.repeats)
    q, _ = cb.run_binary(sws_exe, x_q)          # both compute the same classifier: top-1 agreement
    y = emx_c.run_host(emx_exe, x)
    r["top1"] = float((q.reshape(len(x), -1).argmax(1) == y.argmax(1)).mean())
    if callgrind:
        n = min(callgrind, len(x))
        xf = x[:n].astype(np.float32)
        sw = callgrind_per_frame(sws_exe, x_q[:n].tobytes(), x_q[0].nbytes)
        em = callgrind_per_frame(emx_exe, xf.tobytes(), xf[0].nbytes)
        r["notes"].append(f"x86 instructions per frame (callgrind, {n} frames): swsc {sw:,.0f}, emx {em:,.0f}, "
                          f"ratio {sw / em:.2f}")
    if fw.missing_tools() is None and m4_frames > 0:
        n = min(m4_frames, len(x))
        elf = fw.build(sws_dir, cflags=a.cflags)
        _, _, st = fw.run(elf, x_q[:n], timeout=a.m4_timeout)
        r["sws_ipf"], r["sws_m4"] = st.instructions_per_frame, fw.sizes(sws_dir, st.stack_bytes)
        try:
            elf = emx_c.build_m4(emx_dir, a.cflags, EMX_STACK)
        except emx_c.SwscError as e:   # its stack does not fit the RAM: count it with the stack in PSRAM
            r["notes"].append(f"emx on the M4 {e}; its instructions were counted with the stack in the "
                              "board's 16 MiB PSRAM (fw_link.ld __stack_in_psram)")
            elf = emx_c.build_m4(emx_dir, a.cflags, EMX_PSRAM_STACK, psram=True)
        _, st = emx_c.run_m4(elf, x[:n], a.m4_timeout)
        r["emx_ipf"], r["emx_m4"] = st.instructions_per_frame, emx_c.sizes(emx_dir, st.stack_bytes)
    return r


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def row(name: str, r: dict) -> str:
    sm, em = r.get("sws_m4", {}), r.get("emx_m4", {})
    si, ei = r.get("sws_ipf"), r.get("emx_ipf")
    ratio = lambda s, e: None if s is None or e is None else s / e  # noqa: E731
    return (f"| {name} | {r['sws_us']:.0f} | {r['emx_us']:.0f} | {r['sws_us'] / max(r['emx_us'], 1e-9):.2f} | "
            f"{_fmt(si, ',.0f')} | {_fmt(ei, ',.0f')} | {_fmt(ratio(si, ei), '.2f')} | "
            f"{_fmt(sm.get('flash'), ',')} | {_fmt(em.get('flash'), ',')} | "
            f"{_fmt(sm.get('ram'), ',')} ({_fmt(sm.get('stack'), ',')}) | {_fmt(em.get('ram'), ',')} "
            f"({_fmt(em.get('stack'), ',')}) | {100 * r['top1']:.1f}% |")


HEADER = ("| model | swsc us/frame | emx us/frame | swsc/emx | swsc M4 instr/frame | emx M4 instr/frame | "
          "swsc/emx | swsc flash | emx flash | swsc RAM (stack) | emx RAM (stack) | same top-1 |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--cc", default="gcc")
    p.add_argument("--cflags", default="-std=c99 -O2", help="for both contenders, host and M4 (default -std=c99 -O2)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--m4-frames", type=int, default=16, help="frames per QEMU run (0: skip the M4)")
    p.add_argument("--m4-timeout", type=float, default=1200)
    p.add_argument("--callgrind", type=int, default=0, metavar="N",
                   help="also count x86 instructions per frame of both harnesses with valgrind on N frames")
    p.add_argument("--mobilenet-m4-frames", type=int, default=1,
                   help="MobileNetV2 frames in QEMU (default 1: about half a minute each for swsc's firmware)")
    p.add_argument("--mobilenet-frames", type=int, default=4, help="photos for MobileNetV2 (0: skip it)")
    a = p.parse_args(argv)
    why = emx_c.available()
    if why:
        sys.exit(f"bench_c: {why}")
    if fw.missing_tools():
        print(f"note: no Cortex-M4 columns: {fw.missing_tools()}")
    photos = lambda m: _photos(a.mobilenet_frames) if m.name == MOBILENET.name else None  # noqa: E731
    jobs = [(m, photos(m)) for m in (a.models or sorted((ROOT / "samples").glob("*.onnx")))]
    if not a.models and a.mobilenet_frames > 0:
        if MOBILENET.exists():
            jobs.append((MOBILENET, _photos(a.mobilenet_frames)))
        else:
            print(f"note: {MOBILENET} is missing: no MobileNetV2 row")
    print(f"Tc={a.tc} Ts={a.ts}; host: {a.cc} {a.cflags}; M4: arm-none-eabi-gcc {fw.MCU_FLAGS} {a.cflags}")
    print(HEADER)
    notes = []
    with tempfile.TemporaryDirectory(prefix="swsc-bench-c-") as tmp:
        for m, x in jobs:
            big = x is not None       # MobileNetV2: fewer M4 frames, and x86 counts beside them
            r = bench(m, a, Path(tmp), x, m4_frames=a.mobilenet_m4_frames if big else a.m4_frames,
                      callgrind=max(a.callgrind, 1 if big else 0))
            if big and not a.mobilenet_m4_frames:
                r["notes"].append("no M4 run (--mobilenet-m4-frames 0)")
            print(row(m.stem, r))
            notes += [f"{m.stem}: {n}" for n in r["notes"]]
            sys.stdout.flush()
    for n in notes:
        print("note:", n)


if __name__ == "__main__":
    main()
