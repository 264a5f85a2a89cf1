"""Operations: what runs the pipeline day after day and tells ops when it does not: the daily job and
its schedule, the export-arrival, run-failure, dead-run and freshness sensors, the freshness checks,
the project's Dagster instance (instance.py), dead runs (dead_runs.py) and the summary of what the
warehouse holds.

`build(assets, program, pull=…)` returns what definitions.py registers, built from the code location's
Program (with, when the program pulls, the API pull's own job and schedule, pull.py: never part of a day's run);
the freshness checks cover every daily-partitioned asset of the code location, whichever stage defines
it. (The volume checks are with the assets they guard: snapshots/assets.py, events/assets.py.)
"""

from dataclasses import dataclass

import dagster as dg

from ..ingest.pull.assets import PULL_ASSET
from ..partitions import daily_partitions
from ..program import Program
from .freshness import build_freshness_checks, build_freshness_sensor
from .pull import build_pull_schedule, pull_job
from .schedules import build_daily_schedule
from .sensors import build_export_sensor, dead_run_reaper, run_failure_notifier

DAILY_JOB = "daily_job"
FRESHNESS_JOB = "freshness_job"


@dataclass
class Operations:
    freshness_checks: list[dg.AssetChecksDefinition]
    jobs: list
    schedules: list
    sensors: list[dg.SensorDefinition]


def build(assets: list, program: Program, *, pull: bool) -> Operations:
    daily_keys = sorted((key for a in assets if isinstance(a, dg.AssetsDefinition)
                         and a.partitions_def == daily_partitions for key in a.keys),
                        key=lambda k: k.to_user_string())
    freshness = build_freshness_checks(daily_keys, program)
    not_daily = dg.AssetSelection.checks(*freshness)
    if pull:
        not_daily |= dg.AssetSelection.assets(PULL_ASSET)
    daily_job = dg.define_asset_job(
        DAILY_JOB,
        # The freshness checks are about "now", not the run's business date: the freshness sensor runs them.
        # The API pull fetches today's export only: a day's run (a backfill above all) never pulls.
        selection=dg.AssetSelection.all() - not_daily,
        description="Everything for one business date: ingest → snapshot → deltas (→ events → outbound).",
    )
    freshness_job = dg.define_asset_job(
        FRESHNESS_JOB, selection=dg.AssetSelection.checks(*freshness),
        description="The freshness checks alone, now: is yesterday's partition of every daily asset done?")
    return Operations(
        freshness_checks=freshness,
        jobs=[daily_job, freshness_job, *([pull_job] if pull else [])],
        schedules=[build_daily_schedule(daily_job, program), *([build_pull_schedule(program)] if pull else [])],
        sensors=[build_export_sensor(DAILY_JOB), run_failure_notifier, dead_run_reaper,
                 build_freshness_sensor(freshness)],
    )
