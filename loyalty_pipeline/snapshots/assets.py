"""Snapshots: the day's validated snapshot (loyalty_snapshot) with the checks that guard everything
downstream of it, and the day-over-day deltas (account_deltas).

A blocking check that fails stops everything downstream of its asset in that run: the checks of
loyalty_snapshot guard deltas, events and deliveries. Ops confirm a legitimate big change by
re-running the day with the run tag `loyalty/confirm_volume_change=true` (run_tags.py; README,
"Operations").
"""

import datetime as dt
import warnings
from collections.abc import Iterator

import dagster as dg

from ..ingest.assets import loyalty_export
from ..ingest.files import ExportError
from ..partitions import daily_partitions, day_checks, partition_day
from ..program import Operations, ProgramResource
from ..run_tags import CONFIRM_TAG, HOW_TO_CONFIRM, rebuild_requested, volume_confirmed
from ..warehouse.connection import WAREHOUSE_POOL, latest_earlier_day
from ..warehouse.metadata import counts, query_table, rows_table
from ..warehouse.resources import WarehouseResource
from .steps import build_deltas, build_snapshot, snapshot_figures


@dg.asset(
    partitions_def=daily_partitions,
    pool=WAREHOUSE_POOL,
    group_name="snapshots",
    kinds={"duckdb"},
    deps=[loyalty_export],
    description="One validated row per member per day (table snapshots); rejects go to quarantine.",
)
def loyalty_snapshot(
    context: dg.AssetExecutionContext, program: ProgramResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    day = partition_day(context)
    prog = program.load()
    with warehouse.connect() as con:
        try:
            stats = build_snapshot(con, day, prog, force=rebuild_requested(context))
        except ExportError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        warehouse.publish(con, ["snapshots", "quarantine", "activities"], day, stats["built_at"])
        preview = query_table(
            con,
            "SELECT kind, source_line, customer_id, field, value, reason FROM quarantine "
            "WHERE snapshot_date = $day ORDER BY kind, source_line LIMIT 10", {"day": day})
    return dg.MaterializeResult(metadata={
        "raw_rows": stats["raw_rows"],
        "members": stats["members"],
        "enrolled": stats["enrolled"],
        "quarantined": stats["quarantined"],
        "activities": stats["activities"],
        "reused": stats["reused"],
        **counts("quarantined", stats["quarantined_by_reason"]),
        **counts("flagged", stats["flags"]),
        "quarantine_preview": preview,
    })


# -- the checks of loyalty_snapshot ------------------------------------------------------------------------
# One step runs the four (partitions.day_checks: one step and one connection instead of four, each still
# its own check in the UI); each judges the figures the snapshot step recorded with the day's rows
# (steps.snapshot_figures) instead of scanning the day again.

@day_checks(asset=loyalty_snapshot, descriptions={
    "one_row_per_customer": "One snapshot row per customer and day.",
    "rows_reconcile": "Nothing lost: raw rows = snapshot rows + quarantined rows.",
    "member_count_within_band":
        "Members within ±operations.member_count_band (or ±member_count_floor members) of the latest earlier "
        "snapshot: a half-written export must not look like members leaving.",
    "tiers_known":
        "Every tier is one of the program's. An unknown tier name is configuration drift (the platform renamed "
        "or added a tier), not a bad row: by default one such row stops the day's outbound assets; "
        "operations.unknown_tier_max_share / unknown_tier_floor tolerate some.",
})
def loyalty_snapshot_checks(context: dg.AssetCheckExecutionContext, program: ProgramResource,
                            warehouse: WarehouseResource) -> Iterator[dg.AssetCheckResult]:
    day = partition_day(context)
    prog = program.load()
    selected = {key.name for key in context.selected_asset_check_keys}
    with warehouse.connect(prog) as con:
        figures = snapshot_figures(con, day)
        previous_day = previous = None
        if "member_count_within_band" in selected:
            previous_day = latest_earlier_day(con, "snapshots", day)
            previous = snapshot_figures(con, previous_day)["members"] if previous_day else 0
    confirmed = volume_confirmed(context)
    judged = {
        "one_row_per_customer": lambda: one_row_per_customer(figures),
        "rows_reconcile": lambda: rows_reconcile(figures),
        "member_count_within_band": lambda: member_count_within_band(
            figures["members"], previous_day, previous, day, prog.operations, confirmed),
        "tiers_known": lambda: tiers_known(figures, prog.operations, confirmed),
    }
    for name, judge in judged.items():
        if name in selected:
            yield judge()


def one_row_per_customer(day: dict) -> dg.AssetCheckResult:
    dupes = day["members"] - day["customers"]
    return dg.AssetCheckResult(check_name="one_row_per_customer", passed=dupes == 0,
                               metadata={"duplicate_rows": dupes})


def rows_reconcile(day: dict) -> dg.AssetCheckResult:
    raw, members, quarantined = day["raw_rows"], day["members"], day["quarantined"]
    return dg.AssetCheckResult(check_name="rows_reconcile", passed=raw == members + quarantined,
                               metadata={"raw": raw, "snapshot": members, "quarantined": quarantined})


def relative_change(today: int, previous: int) -> float:
    return (today - previous) / previous if previous else float("inf") if today else 0.0


def member_count_within_band(members: int, previous_day: dt.date | None, previous: int, day: dt.date,
                             ops: Operations, confirmed: bool) -> dg.AssetCheckResult:
    def result(**kwargs) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(check_name="member_count_within_band", **kwargs)

    metadata = {"members": members, "band": ops.member_count_band, "floor": ops.member_count_floor,
                "confirmed": confirmed}
    if previous_day is None:
        return result(passed=True, metadata=metadata, description="first snapshot: nothing to compare")
    change = relative_change(members, previous)
    metadata |= {"previous_members": previous, "previous_snapshot_date": previous_day.isoformat(),
                 "change": dg.MetadataValue.float(round(change, 4) if previous else 0.0)}
    within = abs(change) <= ops.member_count_band or abs(members - previous) <= ops.member_count_floor
    if within or confirmed:
        return result(passed=True, metadata=metadata,
                      description=None if within else f"change {change:+.1%} confirmed by run tag")
    return result(passed=False, metadata=metadata, description=(
        f"{previous} members on {previous_day} → {members} on {day} ({change:+.1%}), outside "
        f"±{ops.member_count_band:.0%} (and more than {ops.member_count_floor} members): "
        + HOW_TO_CONFIRM))


def tiers_known(figures: dict, ops: Operations, confirmed: bool) -> dg.AssetCheckResult:
    max_share, floor = ops.unknown_tier_max_share, ops.unknown_tier_floor
    raw, foreign = figures["raw_rows"], figures["foreign_tiers"]
    # Each spelling as the export wrote it, with its rows (the most frequent): what ops add as an alias.
    unknown, spellings = figures["unknown_tiers"]["rows"], figures["unknown_tiers"]["top"]
    more = figures["unknown_tiers"]["spellings"] - len(spellings)
    values = rows_table([("raw_tier", "VARCHAR"), ("rows", "BIGINT")], spellings)
    share = unknown / raw if raw else 0.0
    tolerated = share <= max_share or unknown <= floor
    named = ", ".join(f"{tier!r} ({n})" for tier, n in spellings) + (f" and {more} more" if more else "")
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
        check_name="tiers_known", passed=foreign == 0 and (tolerated or confirmed),
        metadata={"unknown_tier_rows": unknown, "unknown_tier_share": dg.MetadataValue.float(round(share, 4)),
                  "max_share": max_share, "floor": floor, "confirmed": confirmed, "unknown_tiers": values},
        description=description,
    )


# -- deltas ------------------------------------------------------------------------------------------------

# Deltas read the day's snapshot and the previous day's: this mapping tells Dagster so, which makes
# backfills run days in order. A missing earlier day is allowed (the deltas then reach further back).
with warnings.catch_warnings():
    # allow_nonexistent_upstream_partitions is a Beta parameter in Dagster 1.13. Without it a backfill
    # that includes partitions_start fails: that day's "yesterday" is no partition. Safe to silence
    # here: pyproject keeps Dagster on 1.13 (Beta parameters change with minor releases), and the
    # backfill test on the real daemon (operations/test_e2e_dagster.py) goes through this mapping.
    warnings.simplefilter("ignore", dg.BetaWarning)
    _today_and_yesterday = dg.TimeWindowPartitionMapping(
        start_offset=-1, end_offset=0, allow_nonexistent_upstream_partitions=True
    )


@dg.asset(
    partitions_def=daily_partitions,
    pool=WAREHOUSE_POOL,
    group_name="snapshots",
    kinds={"duckdb"},
    deps=[dg.AssetDep(loyalty_snapshot, partition_mapping=_today_and_yesterday)],
    description="Each member's change against the latest earlier snapshot (table account_deltas).",
    # A UI backfill of days ..D also selects the deltas of D+1 (they read D's snapshot). If D+1 was
    # never ingested there is nothing to compare yet: skip (no materialization, downstream skipped).
    output_required=False,
)
def account_deltas(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    day = partition_day(context)
    with warehouse.connect() as con:
        ingested = con.execute("SELECT count(*) FROM export_files WHERE snapshot_date = $day",
                               {"day": day}).fetchone()[0]
        if not ingested:
            context.log.info(f"{day} has not been ingested yet: no deltas to compute, skipped")
            return
        try:
            stats = build_deltas(con, day, force=rebuild_requested(context))
        except ExportError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        warehouse.publish(con, ["account_deltas"], day, stats["built_at"])
        matrix = query_table(
            con,
            "SELECT coalesce(tier_before, '(none)') AS tier_before, coalesce(tier_after, '(none)') "
            "AS tier_after, count(*) AS members FROM account_deltas "
            "WHERE snapshot_date = $day AND tier_direction IS NOT NULL GROUP BY ALL ORDER BY ALL", {"day": day})
    previous = stats["previous_snapshot_date"]
    yield dg.MaterializeResult(metadata={
        "rows": stats["rows"],
        "baseline": stats["baseline"],
        "reused": stats["reused"],
        "previous_snapshot_date": previous.isoformat() if previous else "none (baseline)",
        "gap_days": stats["gap_days"] or 0,
        **counts("kind", stats["by_kind"]),
        **counts("tier", stats["tier_moves"]),
        "tier_moves": matrix,
    })
