"""The code location's program, and one daily partition per business date of the export, in the
program's time zone.

program.yaml (LOYALTY_PROGRAM) is read here once, when the code location loads: every stage's assets
need the partitions when they are defined, and definitions.py builds the daily schedule and the
freshness checks from this same Program. Each run parses the file once more (ProgramResource), so an
edit of tiers or thresholds applies from the next run; one of `timezone`, `partitions_start`,
`operations.schedule_time`, `operations.freshness_deadline`, `source.pull.enabled` or `source.pull.time`
once the code location is reloaded.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable, Iterator
from typing import TypeVar

import dagster as dg

from .program import load_program
from .settings import program_path
from .warehouse.connection import WAREHOUSE_POOL

LOCATION_PROGRAM = load_program(program_path())
T = TypeVar("T")

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=LOCATION_PROGRAM.partitions_start.isoformat(), timezone=LOCATION_PROGRAM.timezone
)


def partition_day(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> dt.date:
    return dt.date.fromisoformat(context.partition_key)


def day_check(*, asset: dg.AssetsDefinition, description: str
              ) -> Callable[[Callable[..., dg.AssetCheckResult]], dg.AssetChecksDefinition]:
    """`@day_check(asset=…)`: a blocking check of one business date of `asset`, reading the warehouse
    (in its pool, like the assets)."""
    decorate = dg.asset_check(asset=asset, blocking=True, partitions_def=daily_partitions, pool=WAREHOUSE_POOL,
                              description=description)
    return lambda fn: _partitioned_check(lambda: decorate(fn))


def day_checks(*, asset: dg.AssetsDefinition, descriptions: dict[str, str]
               ) -> Callable[[Callable[..., Iterator[dg.AssetCheckResult]]], dg.AssetChecksDefinition]:
    """`@day_checks(asset=…, descriptions={name: description})`: several blocking checks of one business
    date of `asset` run by one step, as day_check would run each (same keys, names and descriptions in
    the UI), one warehouse connection for all of them. The function yields an AssetCheckResult with
    `check_name` for each check of `context.selected_asset_check_keys` (a re-run of one check alone
    runs the step for it only)."""
    specs = _partitioned_check(lambda: [
        dg.AssetCheckSpec(name, asset=asset, blocking=True, partitions_def=daily_partitions, description=description)
        for name, description in descriptions.items()])
    decorate = dg.multi_asset_check(specs=specs, can_subset=True, pool=WAREHOUSE_POOL)
    return lambda fn: _partitioned_check(lambda: decorate(fn))


def _partitioned_check(build: Callable[[], T]) -> T:
    """`build()`, which gives a check a partitions_def: a Preview API in Dagster 1.13, its warning silenced.

    Without it the check still runs in the day's run, but its result is recorded for no day: the UI
    would show the last run's verdict on the asset, and a failed day would look fixed once a later day
    passes. Safe to silence here: pyproject keeps Dagster on 1.13, and the checks' tests run real
    partitioned runs (results per day, a failed check stopping downstream), so a breaking change in a
    patch release fails the suite rather than the daily run."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return build()
