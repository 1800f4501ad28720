"""The generated C as Cortex-M4 firmware in QEMU (mps2-an386), against the numpy integer mode.

Every bundled sample's firmware runs a few hundred of its test frames in one QEMU run and must
give the numpy integer mode's outputs and per-layer spike counts bit for bit; the instruction
count, stack mark and section sizes it reports are checked for consistency. Skips where
arm-none-eabi-gcc, newlib or qemu-system-arm are missing (.ci/run installs them).
"""
from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from swsc.check import check, output_quant_tensors
from swsc.compiler import compile_graph, import_onnx
from swsc.errors import SwscError
from swsc.options import CompileOptions
from swsc.runtime import cbackend as cb
from swsc.runtime import firmware as fw
from swsc.runtime.interpreter import run

REPO = Path(__file__).resolve().parents[1]
SAMPLES = sorted((REPO / "samples").glob("*.onnx"))
FRAMES = 256

pytestmark = pytest.mark.skipif(fw.missing_tools() is not None, reason=f"Cortex-M4 firmware: {fw.missing_tools()}")


def _numpy_int(sg, x):
    """The oracle: the numpy runtime's integer mode, outputs flat in graph order, spike counts."""
    res = run(sg, x, mode="int", intermediate=True)
    q = np.concatenate([res.intermediates[t].reshape(len(x), -1) for t in output_quant_tensors(sg)], axis=1)
    return q.astype(np.int64), {s.name: (s.spikes_pos, s.spikes_neg) for s in res.layers}


def _sample(model: Path, n: int):
    sg = compile_graph(import_onnx(model), CompileOptions(), integer=True)
    x = np.load(model.with_name(model.stem + "_test.npz"))["x"][:n].astype(np.float32)
    return sg, x


@pytest.mark.parametrize("model", SAMPLES, ids=lambda p: p.stem)
def test_sample_firmware_bit_exact(model, tmp_path):
    sg, x = _sample(model, FRAMES)
    report = cb.emit_c(sg, tmp_path, prefix="m", header_info={"source": model.name})
    elf = fw.build(tmp_path)
    out, counts, st = fw.run(elf, cb.quantize_input(sg, x))
    q, ref_counts = _numpy_int(sg, x)
    np.testing.assert_array_equal(out.reshape(len(x), -1), q)
    assert counts == ref_counts and list(counts) == list(ref_counts)
    assert st.frames == len(x)
    # the network's stack: within what is reserved, and no more than the scratch the report counts
    # (work_bytes bounds the vector form; the M4 builds the event-driven form, which keeps less)
    assert 0 < st.stack_bytes < fw.STACK_BYTES
    assert st.stack_bytes <= report.work_bytes + 1024
    assert 10_000 < st.instructions_per_frame < 1e9
    sz = fw.sizes(tmp_path, st.stack_bytes)
    # every constant lands in flash (arrays in .rodata; one-value tables as literals in the code)
    assert sz["code"] + sz["const"] >= report.flash_bytes > 0
    assert sz["code"] > 0 and sz["flash"] == sz["code"] + sz["const"] + sz["data"]
    assert sz["bss"] >= report.arena_bytes and sz["ram"] == sz["data"] + sz["bss"] + st.stack_bytes


def test_make_run_with_swsc_raw(tmp_path):
    """The documented path: swsc raw writes the input, make TARGET=cortex-m4 run runs QEMU."""
    model = REPO / "samples" / "vgg_digits_qdq.onnx"
    sg, x = _sample(model, 40)
    data = tmp_path / "x.npz"
    np.savez(data, x=x)
    cb.emit_c(sg, tmp_path / "c", prefix="vgg")
    subprocess.run([sys.executable, "-m", "swsc", "raw", str(model), "--data", str(data), "-o",
                    str(tmp_path / "c" / "in.bin")], check=True, capture_output=True)
    r = subprocess.run(["make", "-s", "-C", str(tmp_path / "c"), "TARGET=cortex-m4", "run", "IN=in.bin",
                        "OUT=out.bin"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "fw: frames 40 " in r.stdout + r.stderr
    man = json.loads((tmp_path / "c" / "manifest.json").read_text())
    out, counts = cb.parse_results(man, (tmp_path / "c" / "out.bin").read_bytes(), len(x))
    q, ref_counts = _numpy_int(sg, x)
    np.testing.assert_array_equal(out, q)
    assert counts == ref_counts


def test_check_target_cortex_m4():
    model = REPO / "samples" / "vgg_digits_qdq.onnx"
    rep = check(model, model.with_name("vgg_digits_qdq_test.npz"), backend="c", mode="int", target="cortex-m4",
                limit=24, progress=False)
    assert rep["backend_identical"] is True and rep["target"] == "cortex-m4"
    assert rep["m4_instructions_per_frame"] > 0 and rep["m4_flash_bytes"] > rep["flash_bytes"]


def test_instruction_count_is_deterministic_and_additive(tmp_path):
    """-icount makes the count a property of the program: the same frames give the same
    count, and twice the frames twice the count (within SysTick's 40-instruction step)."""
    sg, x = _sample(REPO / "samples" / "vgg_digits_qdq.onnx", 8)
    cb.emit_c(sg, tmp_path, prefix="m")
    elf = fw.build(tmp_path)
    xq = cb.quantize_input(sg, x)
    a = fw.run(elf, xq)[2].instructions
    b = fw.run(elf, xq)[2].instructions
    c = fw.run(elf, np.concatenate([xq, xq]))[2].instructions
    assert a == b
    assert abs(c - 2 * a) <= 2 * len(xq) * fw.NS_PER_TICK


def test_firmware_errors_are_reported(tmp_path):
    sg, x = _sample(REPO / "samples" / "vgg_digits_qdq.onnx", 2)
    cb.emit_c(sg, tmp_path, prefix="m")
    elf = fw.build(tmp_path)
    (tmp_path / "half.bin").write_bytes(cb.quantize_input(sg, x).tobytes()[:100])   # 1.5 samples
    with pytest.raises(SwscError, match="exited with 2.*truncated input sample"):
        fw.qemu(elf, ["half.bin", "o.bin"], tmp_path, timeout=60)
    with pytest.raises(SwscError, match="exited with 2.*cannot open"):
        fw.qemu(elf, ["missing.bin", "o.bin"], tmp_path, timeout=60)
    with pytest.raises(SwscError, match="plain file name"):
        fw.qemu(elf, ["a,b"], tmp_path)


def _unicorn_instructions(elf: Path, fn: str, data: bytes) -> tuple[int, bytes]:
    """Instructions that ``fn(input, output)`` of ``elf`` executes in the unicorn emulator (a
    second, independent Cortex-M4 model), counted per translated block by decoding the Thumb-2
    encodings (16 or 32 bits); and the first 64 output bytes."""
    unicorn = pytest.importorskip("unicorn")
    from unicorn import arm_const as A
    uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
    uc.ctl_set_cpu_model(A.UC_CPU_ARM_CORTEX_M4)
    uc.mem_map(0, 4 << 20)
    uc.mem_map(0x20000000, 4 << 20)
    b = elf.read_bytes()
    phoff, = struct.unpack_from("<I", b, 28)
    phentsize, phnum = struct.unpack_from("<HH", b, 42)
    for i in range(phnum):     # PT_LOAD segments at their run addresses (.data as if copied)
        typ, off, vaddr, _, filesz = struct.unpack_from("<5I", b, phoff + i * phentsize)
        if typ == 1 and filesz:
            uc.mem_write(vaddr, b[off:off + filesz])
    nm = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    entry = next(int(p[0], 16) for p in map(str.split, nm.splitlines()) if len(p) == 3 and p[2] == fn)
    inp, out, stop = 0x20300000, 0x20380000, 0x00300000
    uc.mem_write(inp, data)
    count, cache = [0], {}

    def block(uc, addr, size, _):
        n = cache.get((addr, size))
        if n is None:
            code, n, i = bytes(uc.mem_read(addr, size)), 0, 0
            while i < size:
                i += 4 if (code[i + 1] >> 3) in (0x1D, 0x1E, 0x1F) else 2
                n += 1
            cache[(addr, size)] = n
        count[0] += n

    uc.hook_add(unicorn.UC_HOOK_BLOCK, block)
    for reg, v in ((A.UC_ARM_REG_SP, 0x20400000 - 256), (A.UC_ARM_REG_LR, stop | 1), (A.UC_ARM_REG_R0, inp),
                   (A.UC_ARM_REG_R1, out)):
        uc.reg_write(reg, v)
    uc.emu_start(entry | 1, stop)
    return count[0], bytes(uc.mem_read(out, 64))


def test_instruction_count_matches_unicorn(tmp_path):
    """QEMU's -icount SysTick reading agrees with an instruction-by-instruction count of the
    same function in another emulator, to the timer's 40-instruction step plus the hooks."""
    sg, x = _sample(REPO / "samples" / "vgg_digits_qdq.onnx", 1)
    cb.emit_c(sg, tmp_path, prefix="m")
    elf = fw.build(tmp_path)
    xq = cb.quantize_input(sg, x)
    out, _, st = fw.run(elf, xq)
    n, out_uc = _unicorn_instructions(elf, "m_run", xq.tobytes())
    assert np.frombuffer(out_uc[:4 * out.size], np.int32).tolist() == out.reshape(-1).tolist()
    assert n > 1_000_000 and abs(st.instructions - n) <= fw.NS_PER_TICK + 100, (st.instructions, n)
