"""The pull's job and schedule: today's export fetched from the platform's API (source.pull, ingest/pull/).

`pull_job` materializes `loyalty_api_pull` alone; `pull_schedule` runs it every day at source.pull.time
(local, program time zone: late in the day, so that the export holds the day's changes). The day is then
processed like a dropped file: by the export sensor, or by the next morning's daily schedule.
"""

from __future__ import annotations

import dagster as dg

from ..ingest.pull.assets import PULL_ASSET
from ..program import Program
from .schedules import TRIGGER_TAG

PULL_JOB = "pull_job"

pull_job = dg.define_asset_job(
    PULL_JOB, selection=dg.AssetSelection.assets(PULL_ASSET),
    description="Today's export from the loyalty platform's API (source.pull) into the exports folder.")


def build_pull_schedule(program: Program) -> dg.ScheduleDefinition:
    at = program.source.pull.time
    return dg.ScheduleDefinition(
        name="pull_schedule",
        job=pull_job,
        cron_schedule=f"{at.minute} {at.hour} * * *",
        execution_timezone=program.timezone,
        tags={TRIGGER_TAG: "pull_schedule"},
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Every day at source.pull.time (program time zone): pull today's export from the platform's "
                    "API (there only while source.pull.enabled is true).",
    )
