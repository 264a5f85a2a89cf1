"""Ingest: the day's export into raw tables (loyalty_export)."""

import dagster as dg

from ..partitions import daily_partitions, partition_day
from ..program import ProgramResource
from ..run_tags import rebuild_requested
from ..warehouse.connection import WAREHOUSE_POOL
from ..warehouse.resources import WarehouseResource
from .files import ExportError
from .steps import ingest_export


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
