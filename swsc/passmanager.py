"""The pass manager: runs passes in order, verifies after each, times them, dumps IR.

A pass is a class with a stable kebab-case ``name``, a docstring that states what it
*requires* and *guarantees*, and ``run(graph) -> bool`` (True if it changed the graph).
Passes never print IR themselves: printing is an instrumentation of the manager,
configured by ``IRPrintOptions`` (CLI flags ``--print-ir-*``/``--dump-ir`` or the
environment variables ``SWSC_PRINT_IR_AFTER_ALL=1`` and ``SWSC_DUMP_IR=DIR``).
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .errors import PassError, SwscError, UsageError
from .ir import Graph
from .ops import verify
from .text import to_text


class Pass:
    """Base class. Subclasses set ``name`` and implement ``run``."""

    name = "pass"

    def run(self, graph: Graph) -> bool:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class IRPrintOptions:
    after_all: bool = False
    after: set[str] = field(default_factory=set)
    before: set[str] = field(default_factory=set)
    dump_dir: str | None = None
    stream: TextIO | None = None

    @classmethod
    def from_env(cls, base: "IRPrintOptions | None" = None) -> "IRPrintOptions":
        o = base or cls()
        if os.environ.get("SWSC_PRINT_IR_AFTER_ALL", "") not in ("", "0"):
            o.after_all = True
        if os.environ.get("SWSC_DUMP_IR") and not o.dump_dir:
            o.dump_dir = os.environ["SWSC_DUMP_IR"]
        return o


@dataclass
class PassRecord:
    name: str
    seconds: float
    changed: bool


class PassManager:
    def __init__(self, passes: list[Pass], *, verify: bool = True, print_options: IRPrintOptions | None = None):
        names = [p.name for p in passes]
        self.passes = passes
        self.verify = verify
        self.print_options = IRPrintOptions.from_env(print_options)
        self.records: list[PassRecord] = []
        known = set(names)
        unknown = (self.print_options.after | self.print_options.before) - known
        if unknown:
            raise UsageError(f"--print-ir-before/after names unknown pass(es) {sorted(unknown)}; "
                             f"passes are: {', '.join(names)}")

    def _emit(self, graph: Graph, label: str, index: int, pass_name: str) -> None:
        o = self.print_options
        text = to_text(graph, produced_by=label)
        if o.dump_dir:
            d = Path(o.dump_dir)
            try:
                d.mkdir(parents=True, exist_ok=True)
                (d / f"{index:02d}_{pass_name}.ir").write_text(text)
            except OSError as e:      # e.g. DIR is an existing file: the user's mistake, not a crash
                raise UsageError(f"cannot write the IR dump to directory '{d}': {e.strerror or e}",
                                 hint="--dump-ir DIR (or SWSC_DUMP_IR) names a directory, created if "
                                      "missing") from e
        return text

    def _print(self, text: str) -> None:
        (self.print_options.stream or sys.stderr).write(text)

    def run(self, graph: Graph) -> Graph:
        """Run all passes on a clone of ``graph`` and return the result."""
        g = graph.clone()
        o = self.print_options
        if o.dump_dir:
            self._emit(g, "pass \"import\" (#0)", 0, "import")
        done: list[str] = []
        for i, p in enumerate(self.passes, start=1):
            if p.name in o.before:
                self._print(to_text(g, produced_by=f"pass \"{done[-1] if done else 'import'}\" "
                                                   f"(before \"{p.name}\")"))
            t = time.perf_counter()
            try:
                changed = bool(p.run(g))
                if self.verify:
                    verify(g)
            except SwscError as e:
                if isinstance(e, PassError):
                    raise
                raise PassError(f"pass '{p.name}' failed (after {', '.join(done) or 'import'}): {e}",
                                file=e.file) from e
            except Exception as e:
                raise PassError(f"pass '{p.name}' crashed (after {', '.join(done) or 'import'}): "
                                f"{type(e).__name__}: {e}", hint="this is a swsc bug; rerun with --debug "
                                "and report it with the model") from e
            self.records.append(PassRecord(p.name, time.perf_counter() - t, changed))
            done.append(p.name)
            g.meta["produced_by"] = f"pass \"{p.name}\" (#{i})"
            if o.after_all or p.name in o.after or o.dump_dir:
                text = self._emit(g, g.meta["produced_by"], i, p.name)
                if o.after_all or p.name in o.after:
                    self._print(text)
        return g
