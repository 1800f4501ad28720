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


def static_copy(model: Path, out: Path) -> Path:
    """The model with its batch pinned to 1 and every computed Reshape shape replaced by its
    value (onnxruntime evaluates it on a zero input), the dead shape nodes dropped:
    emx-onnx-cgen needs static shapes, and MobileNetV2 computes its classifier's Reshape
    shape with Shape/Gather/Unsqueeze/Concat."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper
    m = onnx.load(str(model))
    g = m.graph
    for v in [*g.input, *g.output]:
        for d in v.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.dim_value = 1
    inits = {i.name for i in g.initializer}
    shapes = [n.input[1] for n in g.node if n.op_type == "Reshape" and n.input[1] not in inits]
    probe = onnx.ModelProto()
    probe.CopyFrom(m)
    outs = {o.name for o in g.output}
    every = [o for n in g.node for o in n.output if o and o not in outs]
    for name in every:      # every intermediate: its value fixes shapes, its type goes to value_info
        probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {i.name: np.zeros([d.dim_value for d in i.type.tensor_type.shape.dim], np.float32)
            for i in g.input if i.name not in inits}
    got = dict(zip(every, sess.run(every, feed)))
    values = {k: got[k] for k in shapes}
    del g.value_info[:]
    g.value_info.extend(onnx.helper.make_tensor_value_info(k, onnx.helper.np_dtype_to_tensor_dtype(v.dtype),
                                                           list(v.shape))
                        for k, v in got.items() if k not in values)
    g.initializer.extend(numpy_helper.from_array(v.astype(np.int64), k) for k, v in values.items())
    for n in [n for n in g.node if any(o in values for o in n.output)]:
        g.node.remove(n)
    while True:                      # drop the nodes nobody reads any more
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        dead = [n for n in g.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            g.node.remove(n)
    _matmul_as_conv(g)
    onnx.save(m, str(out))
    return out


def _matmul_as_conv(g) -> None:
    """QLinearMatMul with per-column weight scales (emx-onnx-cgen 1.4 takes only scalar ones)
    as the same arithmetic in a 1x1 QLinearConv, which takes per-output-channel scales:
    [1, K] -> [1, K, 1, 1] -> conv with w [N, K, 1, 1] -> [1, N]."""
    import onnx
    from onnx import helper, numpy_helper
    inits = {i.name: i for i in g.initializer}
    types = {v.name: v for v in g.value_info}
    for idx, n in enumerate(list(g.node)):
        if n.op_type != "QLinearMatMul" or n.input[4] not in inits or numpy_helper.to_array(
                inits[n.input[4]]).size == 1 or n.input[3] not in inits:
            continue
        b = numpy_helper.to_array(inits[n.input[3]])
        k, m = b.shape
        wname = n.input[3] + "_as_conv"
        g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(b.T.reshape(m, k, 1, 1)), wname))
        for shape_name, shape in ((n.name + "_in4d", [1, k, 1, 1]), (n.name + "_out2d", [1, m])):
            g.initializer.append(numpy_helper.from_array(np.array(shape, np.int64), shape_name))
        a4, y4 = n.input[0] + "_4d", n.output[0] + "_4d"
        dt = types[n.output[0]].type.tensor_type.elem_type if n.output[0] in types else onnx.TensorProto.UINT8
        at = types[n.input[0]].type.tensor_type.elem_type if n.input[0] in types else onnx.TensorProto.UINT8
        g.value_info.extend([helper.make_tensor_value_info(a4, at, [1, k, 1, 1]),
                             helper.make_tensor_value_info(y4, dt, [1, m, 1, 1])])
        new = [helper.make_node("Reshape", [n.input[0], n.name + "_in4d"], [a4]),
               helper.make_node("QLinearConv", [a4, n.input[1], n.input[2], wname, n.input[4], n.input[5],
                                                n.input[6], n.input[7]], [y4], kernel_shape=[1, 1]),
               helper.make_node("Reshape", [y4, n.name + "_out2d"], [n.output[0]])]
        g.node.remove(n)
        for j, node in enumerate(new):
            g.node.insert(idx + j, node)


def generate(model: Path, out_dir: Path) -> dict:
    """emx_model.c/.h and emx_main.c in ``out_dir``; returns {fn, in_n, out_n, folded}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    src = out_dir / "emx_model.c"
    folded = False
    while True:
        cmd = ["emx-onnx-cgen", "compile", "--color", "never", *_pins(model), "--large-temp-threshold", "0",
               "--large-weight-threshold", "0", str(model), str(src)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode == 0:
            break
        if folded or "requires static shapes" not in r.stdout + r.stderr:
            raise SwscError(f"emx-onnx-cgen failed on {model.name}: {(r.stdout + r.stderr)[-1500:]}")
        model, folded = static_copy(model, out_dir / "static.onnx"), True
    m = _SIG.search(src.read_text())
    if m is None:
        raise SwscError(f"emx-onnx-cgen's C for {model.name} has no single-input single-output entry point")
    fn = m.group(1)
    sizes = [int(np.prod([int(v) for v in re.findall(r"\[(\d+)\]", g)])) for g in (m.group(2), m.group(3))]
    (out_dir / "emx_model.h").write_text(
        f"#include <stdint.h>\nvoid {fn}({m.group(2)}, {m.group(3)});\n"
        f"#define EMX_FN {fn}\n#define EMX_IN_N {sizes[0]}\n#define EMX_OUT_N {sizes[1]}\n")
    (out_dir / "emx_main.c").write_text(HARNESS)
    return {"fn": fn, "in_n": sizes[0], "out_n": sizes[1], "folded": folded}


def fn_name(out_dir: Path) -> str:
    return re.search(r"#define EMX_FN (\w+)", (out_dir / "emx_model.h").read_text()).group(1)


def _cc(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SwscError(f"build failed ({' '.join(cmd[:6])} ...):\n{(r.stdout + r.stderr)[-1500:]}")


def build_host(out_dir: Path, cc: str, cflags: str) -> Path:
    exe = out_dir / "emx_main"
    _cc([cc, *cflags.split(), "-o", str(exe), str(out_dir / "emx_main.c"), str(out_dir / "emx_model.c"), "-lm"])
    return exe


def build_m4(out_dir: Path, cflags: str, stack_bytes: int, *, psram: bool = False) -> Path:
    """emx_main.elf for QEMU mps2-an386 with swsc's start-up code, linker script and flags;
    ``psram``: the stack in the board's 16 MiB PSRAM (for a frame that exceeds the 4 MiB RAM)."""
    fw.write_files(None, {"prefix": "emx", "info": [("harness", "emx-onnx-cgen benchmark")]}, out_dir)
    flags = [*fw.MCU_FLAGS.split(), *cflags.split(), "-ffunction-sections", "-fdata-sections", "-DEMX_FIRMWARE"]
    objs = []
    for name in ("emx_main", "emx_model", "fw_startup"):
        obj = out_dir / f"m4_{name}.o"
        _cc(["arm-none-eabi-gcc", *flags, "-fstack-usage", "-c", "-o", str(obj), str(out_dir / f"{name}.c")])
        objs.append(str(obj))
    # the entry point's own frame holds every temporary: say so before QEMU overruns the RAM
    frame = max((int(line.split("\t")[1]) for line in (out_dir / "m4_emx_model.su").read_text().splitlines()
                 if line.split("\t")[0].endswith(":" + fn_name(out_dir))), default=0)
    if frame > stack_bytes and not psram:
        raise SwscError(f"does not fit: its entry function's stack frame is {frame:,} bytes (every temporary "
                        f"on the stack), the board's RAM is 4 MiB ({stack_bytes:,} reserved for the stack)")
    elf = out_dir / "emx_main.elf"
    _cc(["arm-none-eabi-gcc", *flags, *fw.LINK_FLAGS.split(), "-T", str(out_dir / "fw_link.ld"),
         f"-Wl,--defsym=__stack_size={stack_bytes}", *(["-Wl,--defsym=__stack_in_psram=1"] if psram else []), "-o", str(elf), *objs, "-lm"])
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
