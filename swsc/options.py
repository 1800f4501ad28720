"""Compile options, shared by the CLI and the Python API, validated in one place."""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import OptionError

ENCODERS = ("exact", "tsa")
#: a C symbol prefix: every generated symbol is ``<prefix>_<what>``, so at most 24 characters keep
#: them within C99's 31 significant characters of an external identifier (and runtime/cbackend.py's
#: own limit); no trailing '_' so that ``<prefix>_x`` never holds a double underscore
C_PREFIX_RE = re.compile(r"[A-Za-z](?:[A-Za-z0-9_]{0,22}[A-Za-z0-9])?")
C_PREFIX_RULE = "a letter, then at most 23 letters, digits or '_', not ending in '_'"
MAX_STEM = 200


@dataclass
class CompileOptions:
    """What the conversion needs to know.

    ``ts`` is one silent period for every TSA layer, a list (one per TSA layer in
    topological order) or a dict {layer name: ts} (missing layers get ``ts_default``).
    """

    tc: int = 8
    ts: int | list[int] | dict[str, int] = 2
    beta: float = 2.0
    encoder: str = "exact"
    encoder_ts: int = 1
    vth_factor: float = 0.5
    ts_default: int = 2
    membrane_bits: int = 32   # integer mode and C: the register the membrane proof must fit (docs/integer.md)

    def validate(self) -> "CompileOptions":
        if not isinstance(self.tc, int) or self.tc < 1:
            raise OptionError(f"--tc must be an integer >= 1, got {self.tc!r}")
        if self.tc > 32:
            raise OptionError(f"--tc {self.tc} is beyond what the runtimes represent (max 32)")
        if not (isinstance(self.beta, (int, float)) and math.isfinite(self.beta) and self.beta > 1):
            raise OptionError(f"--beta must be a number > 1 (the amplification factor), got {self.beta!r}")
        if self.encoder not in ENCODERS:
            raise OptionError(f"--encoder must be one of {', '.join(ENCODERS)}, got {self.encoder!r}")
        if not isinstance(self.encoder_ts, int) or self.encoder_ts < 0:
            raise OptionError(f"--encoder-ts must be an integer >= 0, got {self.encoder_ts!r}")
        if not (isinstance(self.vth_factor, (int, float)) and 0 < self.vth_factor <= 1):
            raise OptionError(f"--vth-factor must be in (0, 1] (0.5 = the paper's lowered threshold), "
                              f"got {self.vth_factor!r}")
        if not isinstance(self.membrane_bits, int) or not 16 <= self.membrane_bits <= 64:
            raise OptionError(f"--membrane-bits must be an integer from 16 to 64, got {self.membrane_bits!r}")
        ts_values = (self.ts.values() if isinstance(self.ts, dict) else
                     self.ts if isinstance(self.ts, list) else [self.ts])
        for v in list(ts_values) + [self.ts_default]:
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise OptionError(f"silent periods (--ts) must be integers >= 0, got {v!r}")
        return self

    @property
    def code_sum(self) -> float:
        """S = sum_{k=1..Tc} beta^(Tc-k): the largest value a train of +1 spikes encodes."""
        return float(sum(self.beta ** (self.tc - k) for k in range(1, self.tc + 1)))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def parse_ts(text: str):
    """--ts accepts '2', '2,3,1' (per TSA layer in order) or a JSON file {layer: ts}."""
    text = text.strip()
    try:
        if "," in text:
            return [int(v) for v in text.split(",")]
        return int(text)
    except ValueError:
        pass
    path = Path(text)
    if path.suffix == ".json":
        if not path.exists():
            raise OptionError(f"--ts file '{text}' does not exist")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise OptionError(f"--ts file '{text}' is not valid JSON: {e}") from e
        if isinstance(data, dict):
            return {str(k): v for k, v in data.items()}
        if isinstance(data, list):
            return data
    raise OptionError(f"--ts takes an integer, a comma-separated list, or a .json file; got {text!r}")


def check_file_stem(text: str, option: str = "--name") -> str:
    """``text`` as the stem of a file written inside an output directory, or a usage error.

    A stem is one plain file name: no directory part, so nothing can be written outside ``-o``.
    """
    rule = ("a plain file name: not empty, no '/' or '\\', not starting with '.', no control characters, "
            f"at most {MAX_STEM} characters")
    bad = (not text or "/" in text or "\\" in text or text.startswith(".") or len(text) > MAX_STEM
           or any(ord(c) < 32 or ord(c) == 127 for c in text) or Path(text).is_absolute())
    if bad:
        raise OptionError(f"{option} {text!r} is not a valid output name: it must be {rule} "
                         "(the files go inside the -o directory)")
    return text


def default_c_prefix(stem: str) -> str:
    """The C prefix for a model whose user gave no ``--prefix``: its file stem made a valid one.

    Only the default is derived (and printed by ``swsc compile``); an explicit ``--prefix`` is
    checked, never changed. Characters outside the rule become '_', a leading non-letter gets
    an 'm', and the result is cut to the rule's length without a trailing '_'.
    """
    s = re.sub(r"[^A-Za-z0-9_]", "_", stem)
    if not s[:1].isalpha():
        s = "m" + s
    s = s[:24].rstrip("_") or "model"
    return check_c_prefix(s, "the default prefix")


def check_c_prefix(text: str, option: str = "--prefix") -> str:
    """``text`` as the C symbol prefix, unchanged, or a usage error stating the rule.

    Never rewritten: a silently changed prefix could make two models' symbols collide.
    """
    if not C_PREFIX_RE.fullmatch(text or ""):
        raise OptionError(f"{option} {text!r} is not a valid C symbol prefix: it must be {C_PREFIX_RULE}")
    return text
