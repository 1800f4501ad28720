"""Typed errors. Everything a user can cause ends in a SwscError with one clear line.

The CLI prints ``str(error)`` and exits 1 (2 for usage errors); only ``--debug``
shows a traceback. Code must never use ``assert`` to check user input.
"""
from __future__ import annotations


class SwscError(Exception):
    """Base error. Carries where it happened and what the user can do."""

    exit_code = 1

    def __init__(self, message: str, *, file: str | None = None, node: str | None = None,
                 op: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.node = node
        self.op = op
        self.hint = hint

    def with_file(self, file: str) -> "SwscError":
        if self.file is None:
            self.file = file
        return self

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(f"{self.file}: ")
        if self.node is not None or self.op:
            parts.append(f"node '{self.node}' ({self.op}): " if self.node is not None else f"({self.op}): ")
        parts.append(self.message)
        if self.hint:
            parts.append(f" ({self.hint})")
        return "".join(parts).replace("\n", " ")


class UsageError(SwscError):
    """Bad command-line or API option value."""

    exit_code = 2


class OptionError(UsageError):
    """An option value that cannot work (Tc < 1, beta <= 1, ...)."""


class InvalidModelError(SwscError):
    """The file is not a readable, well-formed model."""


class NotQuantizedError(InvalidModelError):
    """A float model where a quantized one is required."""


class UnsupportedOpError(SwscError):
    """One or more nodes use an operator (or a form of it) swsc cannot compile.

    ``nodes`` lists every offending (name, op, why) so the user sees them all at once.
    """

    def __init__(self, nodes: list[tuple[str, str, str]], *, file: str | None = None,
                 hint: str = "see docs/frontend.md for the supported operators"):
        self.nodes = list(nodes)
        groups: dict[tuple[str, str], list[str]] = {}     # nodes refused for one reason, listed once
        for n, op, why in self.nodes:
            groups.setdefault((op, why), []).append(f"'{n}'")
        listing = "; ".join(f"{', '.join(names)} ({op}){': ' + why if why else ''}"
                            for (op, why), names in groups.items())
        super().__init__(f"{len(self.nodes)} unsupported node(s): {listing}", file=file, hint=hint)


class IRVerifyError(SwscError):
    """The IR broke one of its invariants (a compiler bug, or a hand-edited IR file)."""


class PassError(SwscError):
    """A pass failed; names the pass and the passes that ran before it."""


class SwscWarning(UserWarning):
    """Something the user should know that does not stop the run (inputs clamped, ...).

    The CLI prints it as one line, ``swsc: warning: <message>``.
    """
