"""The daily schedule: at operations.schedule_time (local, program time zone), the daily job for the
previous business date."""

from __future__ import annotations

import dagster as dg

from ..program import Program

SERIAL_TAG = "loyalty/serial"  # the instance runs runs with this tag one at a time, oldest first (instance.py)
TRIGGER_TAG = "loyalty/trigger"


def build_daily_schedule(daily_job: dg.UnresolvedAssetJobDefinition, program: Program):
    """Dagster's schedule for a partitioned job: each tick runs the last complete daily partition (the
    previous business date, in the partitions' time zone: the program's), with the run key set to it.
    Before partitions_start there is no partition: the tick is skipped. A missing export fails the run
    loudly (the run-failure sensor reports it): no silent skip."""
    at = program.operations.schedule_time
    return dg.build_schedule_from_partitioned_job(
        daily_job,
        name="daily_schedule",
        hour_of_day=at.hour,
        minute_of_hour=at.minute,
        tags={TRIGGER_TAG: "schedule", SERIAL_TAG: "daily"},
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Every day at operations.schedule_time (program time zone): the whole daily job for "
                    "the previous business date.",
    )
