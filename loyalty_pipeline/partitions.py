"""One daily partition per business date of the export, in the program's time zone."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from .program import load_program
from .settings import program_path

_program = load_program(program_path())

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=_program.partitions_start.isoformat(), timezone=_program.timezone
)


def partition_day(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> dt.date:
    return dt.date.fromisoformat(context.partition_key)
