"""The conversion passes, one module each, and the standard pipeline."""
from __future__ import annotations

from swsc.options import CompileOptions

from .fold_zero_points import FoldZeroPoints
from .insert_encoder import InsertEncoder
from .lower_to_integer import LowerToInteger
from .lower_to_sws import LowerToSws
from .rescale import Rescale
from .schedule_latencies import ScheduleLatencies

PASSES = {p.name: p for p in (FoldZeroPoints, Rescale, InsertEncoder, LowerToSws, ScheduleLatencies,
                              LowerToInteger)}


def pipeline(options: CompileOptions, *, integer: bool = False) -> list:
    """The passes `swsc compile` runs, in order (plus lower-to-integer for integer targets)."""
    passes = [FoldZeroPoints(), Rescale(options), InsertEncoder(options), LowerToSws(options),
              ScheduleLatencies(options)]
    return passes + [LowerToInteger(options)] if integer else passes
