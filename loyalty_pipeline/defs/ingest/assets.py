"""Ingest: the day's export into raw tables (loyalty_export), then validated snapshots."""

import dagster as dg

from ...sources import ExportError
from ...warehouse.connection import WAREHOUSE_POOL
from ...warehouse.daily import build_snapshot, ingest_export
from ..metadata import counts, md_query
from ..partitions import daily_partitions, partition_day, rebuild_requested
from ..resources import ProgramResource, WarehouseResource


@dg.asset(
    partitions_def=daily_partitions,
    pool=WAREHOUSE_POOL,
    group_name="ingest",
    kinds={"duckdb"},
    description="The day's export file(s) as read (text columns), with lineage: path, sha256, row count.",
)
def loyalty_export(
    context: dg.AssetExecutionContext, program: ProgramResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    day = partition_day(context)
    prog = program.load()
    with warehouse.connect() as con:
        try:
            stats = ingest_export(con, program.exports, day, prog, force=rebuild_requested(context))
        except ExportError as exc:
            raise dg.Failure(description=f"{day}: {exc}", allow_retries=False) from exc
    accounts = stats["accounts"]
    return dg.MaterializeResult(
        metadata={
            "rows": accounts["rows"],
            "activity_rows": stats.get("activities", {}).get("rows", 0),
            "path": dg.MetadataValue.path(accounts["path"]),
            "sha256": accounts["sha256"],
            "format": accounts["format"],
            "reused": stats["reused"],
        },
        data_version=dg.DataVersion(accounts["sha256"][:16]),
    )

@dg.asset(
    partitions_def=daily_partitions,
    pool=WAREHOUSE_POOL,
    group_name="ingest",
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
        preview = md_query(
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
