"""Progress for long work, on stderr: a tqdm bar on a terminal, optional plain lines elsewhere.

``Progress(total, label)`` is called with the count done so far (the runtimes' and the
oracle's ``progress(done)`` protocol); ``status(text)`` says what is being done now. On a
terminal that is a tqdm bar; when stderr is not a terminal it is silent, unless ``lines``
asks for one line per update (for work whose steps are long, like a sweep's grid points, so a
log shows it is moving).
"""
from __future__ import annotations

import sys
import time

from tqdm import tqdm


class Progress:
    def __init__(self, total: int, label: str, *, enabled: bool | None = None, stream=None,
                 lines: bool = False, unit: str = "it", leave: bool = True):
        self.total, self.label = max(int(total), 1), label
        self.stream = stream or sys.stderr
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = tty if enabled is None else enabled
        self.lines = lines and enabled is not False and not tty
        self.start = time.perf_counter()
        self.done = 0
        self.text = ""
        self.bar = (tqdm(total=self.total, desc=label, file=self.stream, unit=unit, leave=leave,
                         dynamic_ncols=True) if self.enabled and not self.lines else None)

    def status(self, text: str) -> None:
        """What is being worked on now (shown beside the bar, or in the next line)."""
        self.text = text
        if self.bar is not None:
            self.bar.set_postfix_str(text)
        elif self.lines:
            self._line(f"[{min(self.done + 1, self.total)}/{self.total}] {text} "
                       f"({time.perf_counter() - self.start:.1f} s)")

    def note(self, text: str) -> None:
        """Work before the counted steps (shown beside the bar, or as its own line)."""
        if self.bar is not None:
            self.bar.set_postfix_str(text)
        elif self.lines:
            self._line(text)

    def __call__(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(done - self.done)
        elif self.lines and not self.text:    # with status(), its line already marks each step
            self._line(f"{done}/{self.total} ({time.perf_counter() - self.start:.1f} s)")
        self.done = done

    def _line(self, text: str) -> None:
        self.stream.write(f"{self.label}: {text}\n")
        self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.lines and self.text:
            self._line(f"{self.done}/{self.total} done ({time.perf_counter() - self.start:.1f} s)")
            self.text = ""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
