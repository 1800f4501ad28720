"""The peer for bench_c.py: the same quantized ONNX model compiled to C by emx-onnx-cgen.

``generate(model, out_dir)`` runs ``emx-onnx-cgen compile`` (batch pinned to 1, weights inline,
every temporary on the stack, so nothing is on the heap and the painted stack measures all of
its working memory), then writes a harness ``emx_main.c`` with the same contract as swsc's:
raw float32 frames in (INPUT or stdin), raw float32 outputs out, and on the Cortex-M4 the
start-up code's hooks around every call. ``build_host`` / ``build_m4`` compile it with the
flags given; the M4 build shares swsc's start-up code and linker script (runtime/firmware.py).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from swsc.errors import SwscError
from swsc.runtime import firmware as fw

_SIG = re.compile(r"^void (\w+)\((const float \w+\[[^)]*\]), (float \w+\[[^)]*\])\) \{$", re.M)

HARNESS = """/* emx_main.c: raw float32 frames in, raw float32 outputs out (bench_c.py's harness for
   emx-onnx-cgen's C); on the Cortex-M4 the start-up code counts instructions per call */
#include <stdio.h>
#include "emx_model.h"
#ifdef EMX_FIRMWARE
void emx_fw_frame_begin(void);
void emx_fw_frame_end(void);
#define FRAME_BEGIN() emx_fw_frame_begin()
#define FRAME_END() emx_fw_frame_end()
#else
#define FRAME_BEGIN() ((void)0)
#define FRAME_END() ((void)0)
#endif

static float x[EMX_IN_N], y[EMX_OUT_N];

int main(int argc, char **argv)
{
    FILE *in = argc > 1 ? fopen(argv[1], "rb") : stdin;
    FILE *out = argc > 2 ? fopen(argv[2], "wb") : stdout;
    if (!in || !out) {
        fprintf(stderr, "emx_main: cannot open the input or output\\n");
        return 2;
    }
    while (fread(x, sizeof x[0], EMX_IN_N, in) == EMX_IN_N) {
        FRAME_BEGIN();
        EMX_FN((const void *)x, (void *)y);
        FRAME_END();
        if (fwrite(y, sizeof y[0], EMX_OUT_N, out) != EMX_OUT_N) return 2;
    }
    return out != stdout && fclose(out) != 0 ? 2 : 0;
}
"""


def available() -> str | None:
    """Why emx-onnx-cgen cannot run here, or None."""
    return None if shutil.which("emx-onnx-cgen") else "emx-onnx-cgen not found (pip install emx-onnx-cgen)"


def _pins(model: Path) -> list[str]:
    """--input-dim options fixing every symbolic input dimension (the batch) to 1."""
    import onnx
    m = onnx.load(str(model), load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    out = []
    for inp in m.graph.input:
        if inp.name in inits:
            continue
        for axis, d in enumerate(inp.type.tensor_type.shape.dim):
            if not d.HasField("dim_value"):
                out += ["--input-dim", f"{inp.name}:{axis}=1"]
    return out


def generate(model: Path, out_dir: Path) -> dict:
    """emx_model.c/.h and emx_main.c in ``out_dir``; returns {fn, in_n, out_n}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    src = out_dir / "emx_model.c"
    cmd = ["emx-onnx-cgen", "compile", "--color", "never", *_pins(model), "--large-temp-threshold", "0",
           "--large-weight-threshold", "0", str(model), str(src)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SwscError(f"emx-onnx-cgen failed on {model.name}: {(r.stdout + r.stderr)[-1500:]}")
    m = _SIG.search(src.read_text())
    if m is None:
        raise SwscError(f"emx-onnx-cgen's C for {model.name} has no single-input single-output entry point")
    fn = m.group(1)
    sizes = [int(np.prod([int(v) for v in re.findall(r"\[(\d+)\]", g)])) for g in (m.group(2), m.group(3))]
    (out_dir / "emx_model.h").write_text(
        f"#include <stdint.h>\nvoid {fn}({m.group(2)}, {m.group(3)});\n"
        f"#define EMX_FN {fn}\n#define EMX_IN_N {sizes[0]}\n#define EMX_OUT_N {sizes[1]}\n")
    (out_dir / "emx_main.c").write_text(HARNESS)
    return {"fn": fn, "in_n": sizes[0], "out_n": sizes[1]}


def _cc(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SwscError(f"build failed ({' '.join(cmd[:6])} ...):\n{(r.stdout + r.stderr)[-1500:]}")


def build_host(out_dir: Path, cc: str, cflags: str) -> Path:
    exe = out_dir / "emx_main"
    _cc([cc, *cflags.split(), "-o", str(exe), str(out_dir / "emx_main.c"), str(out_dir / "emx_model.c"), "-lm"])
    return exe


def build_m4(out_dir: Path, cflags: str, stack_bytes: int) -> Path:
    """emx_main.elf for QEMU mps2-an386 with swsc's start-up code, linker script and flags."""
    fw.write_files(None, {"prefix": "emx", "info": [("harness", "emx-onnx-cgen benchmark")]}, out_dir)
    flags = [*fw.MCU_FLAGS.split(), *cflags.split(), "-ffunction-sections", "-fdata-sections", "-DEMX_FIRMWARE"]
    objs = []
    for name in ("emx_main", "emx_model", "fw_startup"):
        obj = out_dir / f"m4_{name}.o"
        _cc(["arm-none-eabi-gcc", *flags, "-c", "-o", str(obj), str(out_dir / f"{name}.c")])
        objs.append(str(obj))
    elf = out_dir / "emx_main.elf"
    _cc(["arm-none-eabi-gcc", *flags, *fw.LINK_FLAGS.split(), "-T", str(out_dir / "fw_link.ld"),
         f"-Wl,--defsym=__stack_size={stack_bytes}", "-o", str(elf), *objs, "-lm"])
    return elf


def run_host(exe: Path, x: np.ndarray) -> np.ndarray:
    r = subprocess.run([str(exe)], input=np.ascontiguousarray(x, dtype=np.float32).tobytes(), capture_output=True)
    if r.returncode != 0:
        raise SwscError(f"emx_main exited with {r.returncode}: {r.stderr[-500:]!r}")
    return np.frombuffer(r.stdout, dtype=np.float32).reshape(len(x), -1)


def run_m4(elf: Path, x: np.ndarray, timeout: float) -> tuple[np.ndarray, fw.FwStats]:
    import tempfile
    with tempfile.TemporaryDirectory(prefix="emx-fw-") as d:
        (Path(d) / "in.bin").write_bytes(np.ascontiguousarray(x, dtype=np.float32).tobytes())
        _, st = fw.qemu(elf, ["in.bin", "out.bin"], d, timeout)
        y = np.frombuffer((Path(d) / "out.bin").read_bytes(), dtype=np.float32).reshape(len(x), -1)
    return y, st


def sizes(out_dir: Path, stack_bytes: int) -> dict:
    s = fw.section_sizes([out_dir / "m4_emx_model.o"])
    s["flash"] = s["code"] + s["const"] + s["data"]
    s["ram"] = s["data"] + s["bss"] + stack_bytes
    s["stack"] = stack_bytes
    return s
