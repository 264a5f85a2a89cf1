"""Snapshots domain: day-over-day deltas, and the checks that guard everything downstream."""

import dagster as dg

from ...sources import ExportError
from ...warehouse.connection import WAREHOUSE_POOL
from ...warehouse.daily import build_deltas
from ..ingest.assets import loyalty_snapshot
from ..metadata import counts, md_query
from ..partitions import daily_partitions, partition_day, rebuild_requested
from ..resources import WarehouseResource

# Deltas read the day's snapshot and the previous day's: this mapping tells Dagster so, which makes
# backfills run days in order. A missing earlier day is allowed (the deltas then reach further back).
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
        matrix = md_query(
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

@dg.asset_check(asset=loyalty_snapshot, blocking=True, partitions_def=daily_partitions, pool=WAREHOUSE_POOL,
                description="One snapshot row per customer and day.")
def one_row_per_customer(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
                         ) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        dupes = con.execute(
            "SELECT count(*) - count(DISTINCT customer_id) FROM snapshots WHERE snapshot_date = $day",
            {"day": partition_day(context)}).fetchone()[0]
    return dg.AssetCheckResult(passed=dupes == 0, metadata={"duplicate_rows": dupes})

@dg.asset_check(asset=loyalty_snapshot, blocking=True, partitions_def=daily_partitions, pool=WAREHOUSE_POOL,
                description="Nothing lost: raw rows = snapshot rows + quarantined rows.")
def rows_reconcile(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
                   ) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        raw, members, quarantined = con.execute(
            "SELECT (SELECT count(*) FROM raw_accounts WHERE snapshot_date = $day), "
            "(SELECT count(*) FROM snapshots WHERE snapshot_date = $day), "
            "(SELECT count(*) FROM quarantine WHERE snapshot_date = $day AND kind = 'accounts')",
            {"day": partition_day(context)}).fetchone()
    return dg.AssetCheckResult(passed=raw == members + quarantined,
                               metadata={"raw": raw, "snapshot": members, "quarantined": quarantined})
