"""The freshness check: is the expected business date of every daily asset materialized by
operations.freshness_deadline? It is about "now", not one business date: it runs in its own job
(freshness_job), never in the daily one.
"""

import datetime as dt
from collections.abc import Sequence

import dagster as dg

from ..program import Program, ProgramResource

FRESHNESS_CHECK = "done_by_deadline"


class FreshnessConfig(dg.Config):
    as_of: str | None = None  # ISO timestamp the check is evaluated at; the freshness schedule passes its tick


def expected_partition(as_of: dt.datetime, program: Program) -> dt.date:
    """The newest business date that must be done at `as_of`: yesterday once today's deadline has passed."""
    local = as_of.astimezone(program.tz)
    deadline_passed = local.time() >= program.operations.freshness_deadline
    return local.date() - dt.timedelta(days=1 if deadline_passed else 2)


def build_freshness_check(asset_keys: Sequence[dg.AssetKey]) -> dg.AssetChecksDefinition:
    """One non-partitioned check per daily asset: is the expected business date materialized?"""

    @dg.multi_asset_check(
        specs=[dg.AssetCheckSpec(FRESHNESS_CHECK, asset=key, description=(
            "Yesterday's partition is materialized by operations.freshness_deadline (local time)."))
            for key in asset_keys],
        can_subset=True,
        name="freshness_checks",
    )
    def freshness_checks(context: dg.AssetCheckExecutionContext, config: FreshnessConfig,
                         program: ProgramResource):
        if {"dagster/partition", "dagster/asset_partition_range_start"} & set(context.run.tags):
            # A backfill or a UI materialization selects every check of its assets, this one too; mid-run
            # it would only report the run's own progress. freshness_job evaluates it.
            context.log.info("freshness is evaluated by freshness_job, not inside a partitioned run")
            return
        prog = program.load()
        as_of = dt.datetime.fromisoformat(config.as_of) if config.as_of else dt.datetime.now(dt.UTC)
        if as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=prog.tz)
        day = expected_partition(as_of, prog)
        for check_key in context.selected_asset_check_keys:
            if day < prog.partitions_start:
                yield dg.AssetCheckResult(asset_key=check_key.asset_key, check_name=check_key.name, passed=True,
                                          metadata={"expected_partition": day.isoformat()})
                continue
            records = context.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=check_key.asset_key, asset_partitions=[day.isoformat()]), limit=1
            ).records
            done = bool(records)
            metadata = {"expected_partition": day.isoformat(), "as_of": as_of.isoformat(),
                        "deadline": prog.operations.freshness_deadline.strftime("%H:%M")}
            if done:
                metadata["materialized_at"] = dg.MetadataValue.timestamp(records[0].timestamp)
            yield dg.AssetCheckResult(
                asset_key=check_key.asset_key, check_name=check_key.name, passed=done, metadata=metadata,
                description=None if done else (
                    f"{check_key.asset_key.to_user_string()} has no materialization for {day} as of "
                    f"{as_of:%Y-%m-%d %H:%M %Z}: look for that day's failed run or failed blocking check, "
                    "or a missing export (README, Operations)"),
            )

    return freshness_checks
