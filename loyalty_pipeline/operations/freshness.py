"""Freshness: yesterday's partition of every daily asset is materialized by operations.freshness_deadline
(local time, program time zone).

Dagster's time-partition freshness checks say that: from each deadline on, the partition of the last
day completed by then must have a materialization (or an observation: a ShopiMind dry run of that day
counts too). They are about "now", not one business date: the freshness sensor runs them (when never
evaluated, when a passing result may have gone stale, or after a failed asset was materialized again);
a UI materialization or backfill selects them with its assets, and there too they judge "now". The
daily job leaves them out (operations/__init__.py).
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence

import dagster as dg

from ..program import Program
from .schedules import TRIGGER_TAG

FRESHNESS_SENSOR = "freshness_sensor"


def cron_at(time: dt.time) -> str:
    return f"{time.minute} {time.hour} * * *"


# Both builders are marked superseded (not deprecated: no removal planned) in Dagster 1.13, by
# FreshnessPolicy. A FreshnessPolicy.cron judges an asset by its latest materialization of any
# partition: a backfill of an old day before the deadline would pass it while yesterday is missing.
# These check the expected partition itself, which is what the deadline means here.
def build_freshness_checks(asset_keys: Sequence[dg.AssetKey], program: Program) -> list[dg.AssetChecksDefinition]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        return list(dg.build_time_partition_freshness_checks(
            assets=list(asset_keys), deadline_cron=cron_at(program.operations.freshness_deadline),
            timezone=program.timezone))


def build_freshness_sensor(checks: Sequence[dg.AssetChecksDefinition]) -> dg.SensorDefinition:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        return dg.build_sensor_for_freshness_checks(
            freshness_checks=checks, name=FRESHNESS_SENSOR, minimum_interval_seconds=60,
            default_status=dg.DefaultSensorStatus.STOPPED, tags={TRIGGER_TAG: "freshness"})
