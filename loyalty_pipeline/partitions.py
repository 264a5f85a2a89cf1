"""The code location's program, and one daily partition per business date of the export, in the
program's time zone.

program.yaml (LOYALTY_PROGRAM) is read here once, when the code location loads: every stage's assets
need the partitions when they are defined, and definitions.py builds the daily schedule and the
freshness checks from this same Program. Each run parses the file once more (ProgramResource), so an
edit of tiers or thresholds applies from the next run; one of `timezone`, `partitions_start`,
`operations.schedule_time` or `operations.freshness_deadline` once the code location is reloaded.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from .program import load_program
from .settings import program_path

LOCATION_PROGRAM = load_program(program_path())

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=LOCATION_PROGRAM.partitions_start.isoformat(), timezone=LOCATION_PROGRAM.timezone
)


def partition_day(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> dt.date:
    return dt.date.fromisoformat(context.partition_key)

