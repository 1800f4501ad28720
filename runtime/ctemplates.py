"""Where the C backend's jinja2 templates live, and the firmware start-up files.

Two folders hold templates: ``runtime/templates`` (the files of the generated project:
header, core, weights, harness, Makefile, firmware start-up) and ``swsc/ops`` (each op's
own fragment beside its module, e.g. ``swsc/ops/conv.c.j2``), which the loader finds
under the prefix ``ops/`` (``ops/conv.c.j2``). Both ship as package data.
"""
from __future__ import annotations

from pathlib import Path

import jinja2

import swsc.ops

TEMPLATES = Path(__file__).resolve().parent / "templates"
OP_TEMPLATES = Path(swsc.ops.__file__).resolve().parent

#: QEMU's mps2 SYSCLK drives SysTick's processor clock; with -icount shift=0 one instruction is 1 ns
SYSCLK_HZ = 25_000_000
NS_PER_TICK = 1_000_000_000 // SYSCLK_HZ
#: the stack reserved at the top of RAM (the network needs about ACC_BLOCK_BYTES + a few hundred)
STACK_BYTES = 64 * 1024
FW_FILES = {"fw_startup.c": "firmware/startup.c.j2", "fw_link.ld": "firmware/link.ld.j2"}


def env() -> jinja2.Environment:
    """The templates' environment: strict (an undefined name is an error), no escaping."""
    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(TEMPLATES)),
                                  jinja2.PrefixLoader({"ops": jinja2.FileSystemLoader(str(OP_TEMPLATES))})])
    return jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              autoescape=False, trim_blocks=True, lstrip_blocks=True)


def write_firmware_files(environment, ctx: dict, out_dir: Path) -> list[Path]:
    """Render the Cortex-M4 start-up code and linker script into ``out_dir`` (called by
    ``emit_c``; also usable for another harness, given ``{"prefix", "info"}`` and
    ``environment=None``)."""
    environment = environment or env()
    ctx = dict(ctx, ns_per_tick=NS_PER_TICK, sysclk_mhz=SYSCLK_HZ // 1_000_000, stack_bytes=STACK_BYTES)
    written = []
    for fname, tpl in FW_FILES.items():
        path = Path(out_dir) / fname
        path.write_text(environment.get_template(tpl).render(**ctx), encoding="ascii")
        written.append(path)
    return written
