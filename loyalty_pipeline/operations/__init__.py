"""Operations: what runs the pipeline day after day and tells ops when it does not: the daily and freshness
schedules, the export-arrival, run-failure and dead-run sensors, the freshness check, the project's
Dagster instance (instance.py), dead runs (dead_runs.py) and the summary of what the warehouse holds.

`build(assets, daily_job_name)` returns what definitions.py registers; the freshness check covers every
daily-partitioned asset of the code location, whichever stage defines it. (The volume checks are with
the assets they guard: snapshots/assets.py, events/assets.py.)
"""

from dataclasses import dataclass, field

import dagster as dg

from ..partitions import daily_partitions
from .freshness import build_freshness_check
from .schedules import build_schedules
from .sensors import build_export_sensor, dead_run_reaper, run_failure_notifier

FRESHNESS_JOB = "freshness_job"


@dataclass
class Operations:
    asset_checks: list = field(default_factory=list)
    jobs: list = field(default_factory=list)
    schedules: list = field(default_factory=list)
    sensors: list = field(default_factory=list)
    freshness_check: dg.AssetChecksDefinition | None = None


def build(assets: list, daily_job_name: str = "daily_job") -> Operations:
    daily_keys = sorted((key for a in assets if isinstance(a, dg.AssetsDefinition)
                         and a.partitions_def == daily_partitions for key in a.keys),
                        key=lambda k: k.to_user_string())
    freshness = build_freshness_check(daily_keys)
    freshness_job = dg.define_asset_job(
        FRESHNESS_JOB, selection=dg.AssetSelection.checks(freshness),
        description="The freshness checks alone: is yesterday's partition of every daily asset done?")
    return Operations(
        asset_checks=[freshness],
        jobs=[freshness_job],
        schedules=build_schedules(daily_job_name, FRESHNESS_JOB),
        sensors=[build_export_sensor(daily_job_name), run_failure_notifier, dead_run_reaper],
        freshness_check=freshness,
    )
