"""Blocking volume checks that stop a day's outbound assets, and the freshness check.

A blocking check that fails stops everything downstream of its asset in that run: the member and
tier checks guard deltas, events and deliveries; the event-volume check guards the deliveries.
Ops confirm a legitimate big change by re-running the day with the run tag
`loyalty/confirm_volume_change=true` (README, "Operations").
"""

import datetime as dt
from collections.abc import Sequence

import dagster as dg

from ...program import Program
from ...warehouse.connection import WAREHOUSE_POOL
from ..events.assets import loyalty_events
from ..ingest.assets import loyalty_snapshot
from ..metadata import md_query
from ..partitions import daily_partitions, partition_day
from ..resources import ProgramResource, WarehouseResource

CONFIRM_TAG = "loyalty/confirm_volume_change"
_HOW_TO_CONFIRM = (f"if the change is real, re-run the day with run tag {CONFIRM_TAG}=true; "
                   "if the export is incomplete, replace it (the export sensor relaunches the day)")


def volume_confirmed(context: dg.AssetCheckExecutionContext) -> bool:
    return context.run.tags.get(CONFIRM_TAG, "").strip().lower() in {"true", "1", "yes"}


def relative_change(today: int, previous: int) -> float:
    return (today - previous) / previous if previous else float("inf") if today else 0.0


@dg.asset_check(asset=loyalty_snapshot, blocking=True, partitions_def=daily_partitions, pool=WAREHOUSE_POOL,
                description="Members within ±operations.member_count_band (or ±member_count_floor members) of the "
                            "latest earlier snapshot: a half-written export must not look like members leaving.")
def member_count_within_band(context: dg.AssetCheckExecutionContext, program: ProgramResource,
                             warehouse: WarehouseResource) -> dg.AssetCheckResult:
    day = partition_day(context)
    ops = program.load().operations
    with warehouse.connect() as con:
        members, previous_day, previous = con.execute(
            "WITH prev AS (SELECT max(snapshot_date) AS d FROM snapshots WHERE snapshot_date < $day) "
            "SELECT (SELECT count(*) FROM snapshots WHERE snapshot_date = $day), prev.d, "
            "(SELECT count(*) FROM snapshots s WHERE s.snapshot_date = prev.d) FROM prev", {"day": day}).fetchone()
    metadata = {"members": members, "band": ops.member_count_band, "floor": ops.member_count_floor,
                "confirmed": volume_confirmed(context)}
    if previous_day is None:
        return dg.AssetCheckResult(passed=True, metadata=metadata, description="first snapshot: nothing to compare")
    change = relative_change(members, previous)
    metadata |= {"previous_members": previous, "previous_snapshot_date": previous_day.isoformat(),
                 "change": dg.MetadataValue.float(round(change, 4) if previous else 0.0)}
    within = abs(change) <= ops.member_count_band or abs(members - previous) <= ops.member_count_floor
    if within or metadata["confirmed"]:
        return dg.AssetCheckResult(passed=True, metadata=metadata,
                                   description=None if within else f"change {change:+.1%} confirmed by run tag")
    return dg.AssetCheckResult(passed=False, metadata=metadata, description=(
        f"{previous} members on {previous_day} → {members} on {day} ({change:+.1%}), outside "
        f"±{ops.member_count_band:.0%} (and more than {ops.member_count_floor} members): "
        + _HOW_TO_CONFIRM))


@dg.asset_check(asset=loyalty_snapshot, blocking=True, partitions_def=daily_partitions, pool=WAREHOUSE_POOL,
                description="Every tier is one of the program's. An unknown tier name is configuration drift (the "
                            "platform renamed or added a tier), not a bad row: by default one such row stops the "
                            "day's outbound assets; operations.unknown_tier_max_share / unknown_tier_floor tolerate "
                            "some.")
def tiers_known(context: dg.AssetCheckExecutionContext, program: ProgramResource,
                warehouse: WarehouseResource) -> dg.AssetCheckResult:
    day = partition_day(context)
    prog = program.load()
    max_share, floor = prog.operations.unknown_tier_max_share, prog.operations.unknown_tier_floor
    unknown_rows = ("FROM quarantine q JOIN raw_accounts r ON r.snapshot_date = q.snapshot_date "
                    "AND r.source_line = q.source_line WHERE q.snapshot_date = $day AND q.kind = 'accounts' "
                    "AND list_contains(json_extract_string(q.problems, '$[*].reason'), 'unknown_tier')")
    with warehouse.connect(prog) as con:
        raw, foreign = con.execute(
            "SELECT (SELECT count(*) FROM raw_accounts WHERE snapshot_date = $day), "
            "(SELECT count(*) FROM snapshots WHERE snapshot_date = $day AND tier IS NOT NULL "
            "   AND tier NOT IN (SELECT name FROM tiers))", {"day": day}).fetchone()
        # Each spelling as the export wrote it, with its rows: what ops add as an alias.
        spellings = con.execute(f"SELECT r.tier, count(*) AS n {unknown_rows} GROUP BY ALL ORDER BY n DESC, r.tier",
                                {"day": day}).fetchall()
        values = md_query(con, f"SELECT r.tier AS raw_tier, count(*) AS rows {unknown_rows} "
                               "GROUP BY ALL ORDER BY rows DESC, raw_tier LIMIT 20", {"day": day})
    unknown = sum(n for _, n in spellings)
    share = unknown / raw if raw else 0.0
    tolerated = share <= max_share or unknown <= floor
    confirmed = volume_confirmed(context)
    named = ", ".join(f"{tier!r} ({n})" for tier, n in spellings[:20]) + (
        f" and {len(spellings) - 20} more" if len(spellings) > 20 else "")
    if foreign:
        description = f"{foreign} snapshot rows have a tier program.yaml no longer defines: re-run the day"
    elif not unknown:
        description = None
    elif tolerated or confirmed:
        description = (f"{unknown} row(s) quarantined as unknown_tier ({named}), "
                       + ("confirmed by run tag" if not tolerated else "within the configured tolerance"))
    else:
        description = (f"{unknown} of {raw} rows ({share:.1%}) have a tier the program does not know: {named}. "
                       "Add each name to a tier's aliases in program.yaml (or add the tier) and re-run the day: "
                       f"the rows become snapshot rows. To send the day without them, re-run with run tag "
                       f"{CONFIRM_TAG}=true")
    return dg.AssetCheckResult(
        passed=foreign == 0 and (tolerated or confirmed),
        metadata={"unknown_tier_rows": unknown, "unknown_tier_share": dg.MetadataValue.float(round(share, 4)),
                  "max_share": max_share, "floor": floor, "confirmed": confirmed, "unknown_tiers": values},
        description=description,
    )


@dg.asset_check(asset=loyalty_events, blocking=True, partitions_def=daily_partitions, pool=WAREHOUSE_POOL,
                description="Events rise at most operations.event_volume_band above the latest earlier day "
                            "with events, unless there are at most operations.event_volume_floor of them.")
def event_volume_within_band(context: dg.AssetCheckExecutionContext, program: ProgramResource,
                             warehouse: WarehouseResource) -> dg.AssetCheckResult:
    day = partition_day(context)
    ops = program.load().operations
    with warehouse.connect() as con:
        events, previous_day, previous = con.execute(
            "WITH prev AS (SELECT max(snapshot_date) AS d FROM loyalty_events WHERE snapshot_date < $day) "
            "SELECT (SELECT count(*) FROM loyalty_events WHERE snapshot_date = $day), prev.d, "
            "(SELECT count(*) FROM loyalty_events e WHERE e.snapshot_date = prev.d) FROM prev",
            {"day": day}).fetchone()
    # Fewer events never spam anyone: the band is one-sided.
    limit = max(ops.event_volume_floor, int(previous * (1 + ops.event_volume_band))) if previous_day else None
    metadata = {"events": events, "floor": ops.event_volume_floor, "band": ops.event_volume_band,
                "confirmed": volume_confirmed(context)}
    if limit is None:
        return dg.AssetCheckResult(passed=True, metadata=metadata, description="no earlier day with events")
    metadata |= {"previous_events": previous, "previous_date": previous_day.isoformat(), "limit": limit}
    within = events <= limit
    if within or metadata["confirmed"]:
        return dg.AssetCheckResult(passed=True, metadata=metadata,
                                   description=None if within else f"{events} events confirmed by run tag")
    return dg.AssetCheckResult(passed=False, metadata=metadata, description=(
        f"{events} events on {day} vs {previous} on {previous_day}: above the limit of {limit} "
        f"(+{ops.event_volume_band:.0%}, floor {ops.event_volume_floor}); " + _HOW_TO_CONFIRM))


# -- freshness ---------------------------------------------------------------------------------------------

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
