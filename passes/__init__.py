"""The conversion passes, one module each, and the standard pipeline."""
from __future__ import annotations

from swsc.options import CompileOptions

from .fold_zero_points import FoldZeroPoints
from .insert_encoder import InsertEncoder
from .lower_to_sws import LowerToSws
from .rescale import Rescale
from .schedule_latencies import ScheduleLatencies

PASSES = {p.name: p for p in (FoldZeroPoints, Rescale, InsertEncoder, LowerToSws, ScheduleLatencies)}


def pipeline(options: CompileOptions) -> list:
    """The passes `swsc compile` runs, in order."""
    return [FoldZeroPoints(), Rescale(options), InsertEncoder(options), LowerToSws(options),
            ScheduleLatencies(options)]
