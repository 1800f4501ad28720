"""The generated C as bare-metal firmware for an Arm Cortex-M4F, run in QEMU (board mps2-an386).

``emit_c`` also writes ``fw_startup.c`` (vector table, reset handler, semihosting argv and exit,
SysTick instruction counter, stack painting) and ``fw_link.ld`` (the board's 4 MiB code memory
at 0x0 and 4 MiB data memory at 0x20000000); the generated Makefile builds them with the
ordinary ``main.c`` harness into ``<prefix>_main.elf`` (``make TARGET=cortex-m4``) and runs it
(``make TARGET=cortex-m4 run IN=x.bin OUT=y.bin``). This module does the same from Python:

    elf = build(out_dir)                        # arm-none-eabi-gcc, newlib rdimon
    q, spikes, st = run(elf, x_q)               # qemu-system-arm -icount shift=0 -semihosting
    st.instructions_per_frame, st.stack_bytes   # measured in the firmware
    sizes(out_dir)                              # arm-none-eabi-size of the network's objects

Instruction counting: with ``-icount shift=0`` QEMU advances its virtual clock by exactly 1 ns
per executed guest instruction, and the Cortex-M SysTick (processor clock, the board's 25 MHz
SYSCLK in QEMU) counts that clock: ticks x 40 = instructions, each frame's reading exact to
one tick (40 instructions) plus the hooks' few. The count covers ``<prefix>_run`` only (the
harness's hooks read SysTick before and after), not the semihosting I/O; tests/test_firmware.py
checks it against the unicorn emulator counting the same call instruction by instruction.
It is an instruction count, not a cycle count: QEMU models no pipeline, wait states or
multi-cycle instructions.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from swsc.errors import SwscError

from . import cbackend
from .ctemplates import FW_FILES as FILES  # noqa: F401
from .ctemplates import NS_PER_TICK, STACK_BYTES, SYSCLK_HZ  # noqa: F401
from .ctemplates import write_firmware_files as write_files  # noqa: F401

TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm", "make")
FW_CFLAGS = "-std=c99 -O2 -Wall -Wextra"
#: the generated Makefile's MCUFLAGS and link flags (for builds outside it, e.g. the benchmark's peer)
MCU_FLAGS = "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16"
LINK_FLAGS = "-nostartfiles --specs=rdimon.specs -Wl,--gc-sections"
_STATS_RE = re.compile(r"fw: frames (\d+) ticks (\d+) ns_per_tick (\d+) stack (\d+)( overflow)? rc (\d+)")
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass
class FwStats:
    frames: int
    instructions: int           # over all frames, <prefix>_run only
    stack_bytes: int            # high-water mark below the harness's call of <prefix>_run

    @property
    def instructions_per_frame(self) -> float:
        return self.instructions / max(self.frames, 1)


def missing_tools() -> str | None:
    """Why the firmware cannot be built and run here, or None."""
    gone = [t for t in TOOLS if shutil.which(t) is None]
    if gone:
        return (f"{', '.join(gone)} not found (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
                "qemu-system-arm)")
    return None


def _tools() -> None:
    why = missing_tools()
    if why:
        raise SwscError(f"cannot build the Cortex-M4 firmware: {why}")


def build(out_dir, cflags: str = FW_CFLAGS, *, ldflags: str = "") -> Path:
    """``make TARGET=cortex-m4`` in a directory written by ``emit_c``; returns the .elf."""
    _tools()
    out_dir = Path(out_dir)
    exe = _manifest(out_dir)["exe"]
    cmd = ["make", "-B", "-s", "-C", str(out_dir), "TARGET=cortex-m4", f"CFLAGS={cflags}", f"LDFLAGS={ldflags}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SwscError(f"firmware build failed ({' '.join(cmd)}):\n{r.stdout}{r.stderr}")
    return out_dir / f"{exe}.elf"


def _manifest(out_dir: Path) -> dict:
    return json.loads((Path(out_dir) / "manifest.json").read_text())


def qemu(elf, args: list[str], cwd, timeout: float = 600) -> tuple[str, FwStats]:
    """Run ``elf`` in qemu-system-arm (mps2-an386, -icount shift=0, semihosting with argv
    ``[elf, *args]``; files are opened relative to ``cwd``). Returns (console text, stats)."""
    elf = Path(elf).resolve()
    for a in args:
        if not _PLAIN_NAME.match(a):
            raise SwscError(f"firmware argument {a!r} must be a plain file name (semihosting splits at spaces)")
    semi = ",".join(["enable=on", "target=native", f"arg={elf.name}", *(f"arg={a}" for a in args)])
    cmd = ["qemu-system-arm", "-M", "mps2-an386", "-display", "none", "-monitor", "none", "-serial", "none",
           "-icount", "shift=0", "-semihosting-config", semi, "-kernel", str(elf)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=str(cwd), timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise SwscError(f"{elf.name} did not finish in QEMU within {timeout:.0f} s") from e
    text = r.stdout + r.stderr
    m = _STATS_RE.search(text)
    if r.returncode != 0 or m is None:
        raise SwscError(f"{elf.name} in QEMU exited with {r.returncode}: {text[-2000:]}")
    if m.group(5):
        raise SwscError(f"{elf.name}: the stack overflowed its reserve (fw_link.ld's __stack_size)")
    st = FwStats(frames=int(m.group(1)), instructions=int(m.group(2)) * int(m.group(3)), stack_bytes=int(m.group(4)))
    return text, st


def run(elf, x_q, *, per_sample: bool = False, timeout: float = 600):
    """Run the firmware on quantized inputs ``x_q`` [N, ...] in QEMU; returns
    ``(outputs_q, spikes, FwStats)``, the first two as ``cbackend.run_binary`` returns them."""
    _tools()
    elf = Path(elf)
    man = _manifest(elf.parent)
    data, n = cbackend.input_bytes(man, x_q)
    with tempfile.TemporaryDirectory(prefix="swsc-fw-") as d:
        (Path(d) / "in.bin").write_bytes(data)
        _, st = qemu(elf, ["in.bin", "out.bin"], d, timeout)
        raw = (Path(d) / "out.bin").read_bytes()
    if st.frames != n:
        raise SwscError(f"{elf.name} ran {st.frames} frames of {n}")
    outs, counts = cbackend.parse_results(man, raw, n, per_sample=per_sample, who=elf.name)
    return outs, counts, st


def section_sizes(objects) -> dict:
    """Bytes of code (.text), constants (.rodata), initialised data (.data) and .bss of
    ``objects`` (``arm-none-eabi-size -A``)."""
    tot = {"code": 0, "const": 0, "data": 0, "bss": 0}
    kinds = ((".text", "code"), (".rodata", "const"), (".data", "data"), (".bss", "bss"))
    for obj in objects:
        r = subprocess.run(["arm-none-eabi-size", "-A", str(obj)], capture_output=True, text=True, check=True)
        for line in r.stdout.splitlines():
            parts = line.split()
            if len(parts) < 2 or not parts[1].isdigit():
                continue
            kind = next((k for pre, k in kinds if parts[0] == pre or parts[0].startswith(pre + ".")), None)
            if kind:
                tot[kind] += int(parts[1])
    return tot


def sizes(out_dir, stack_bytes: int | None = None) -> dict:
    """The network's own footprint on the target, from its two objects of the last ``build``:
    flash = code + constants + .data's initial image; RAM = .data + .bss (+ ``stack_bytes``,
    the measured high-water mark, where given)."""
    out_dir = Path(out_dir)
    prefix = _manifest(out_dir)["prefix"]
    s = section_sizes([out_dir / f"m4_{prefix}.o", out_dir / f"m4_{prefix}_weights.o"])
    s["flash"] = s["code"] + s["const"] + s["data"]
    s["ram"] = s["data"] + s["bss"] + (stack_bytes or 0)
    if stack_bytes is not None:
        s["stack"] = stack_bytes
    return s


def run_graph(sg, x, timeout: float = 600):
    """Emit, build and run an integer-lowered graph on float inputs ``x`` as Cortex-M4 firmware
    (for ``swsc check --target cortex-m4``). Returns (q [N, ...] int64, spikes, CReport, FwStats, sizes)."""
    _tools()
    with tempfile.TemporaryDirectory(prefix="swsc-m4-") as d:
        creport = cbackend.emit_c(sg, d, prefix="sws", header_info={"model": sg.meta.get("source", sg.name)})
        elf = build(d)
        out, counts, st = run(elf, cbackend.quantize_input(sg, x), timeout=timeout)
        sz = sizes(d, st.stack_bytes)
    return out.astype(np.int64), counts, creport, st, sz
