"""Reelevant: the "Loyalty Programme" datasource file of each day (see feed.py)."""

import dagster as dg

from ...partitions import daily_partitions, partition_day
from ...program import ProgramResource
from ...snapshots.assets import loyalty_snapshot
from ...warehouse.connection import WAREHOUSE_POOL
from ...warehouse.metadata import counts, query_table
from ...warehouse.resources import WarehouseResource
from ..resources import OutboundResource
from .feed import FeedError, feed_params, feed_sql, write_feed


@dg.asset(
    partitions_def=daily_partitions,
    pool=WAREHOUSE_POOL,
    group_name="reelevant",
    kinds={"duckdb", "json"},
    deps=[loyalty_snapshot],
    description="Reelevant 'Loyalty Programme' datasource: one JSON object per member of the day's snapshot "
                "in <outbound>/reelevant/<date>.jsonl, and latest.jsonl when the day is the newest.",
)
def reelevant_datasource(context: dg.AssetExecutionContext, program: ProgramResource,
                         warehouse: WarehouseResource, outbound: OutboundResource) -> dg.MaterializeResult:
    day = partition_day(context)
    prog = program.load()
    with warehouse.connect(prog) as con:
        try:
            stats = write_feed(con, day, prog, outbound.folder("reelevant"))
        except FeedError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        preview = query_table(
            con, f"SELECT * FROM ({feed_sql()}) ORDER BY customer_id LIMIT 5", feed_params(day, prog))
    if stats["leftovers_removed"]:
        context.log.info(f"removed temp files left by killed writers: {', '.join(stats['leftovers_removed'])}")
    if not stats["latest_updated"]:
        context.log.info(f"{day} is older than {stats['latest_date']}: latest.jsonl left as it was")
    return dg.MaterializeResult(
        metadata={
            "records": stats["rows"],
            "members": stats["members"],
            "non_members": stats["non_members"],
            **counts("tier", stats["by_tier"]),
            "bytes": stats["bytes"],
            "sha256": stats["sha256"],
            "path": dg.MetadataValue.path(stats["path"]),
            "latest_updated": stats["latest_updated"],
            "latest_date": stats["latest_date"].isoformat(),
            "leftovers_removed": len(stats["leftovers_removed"]),
            "preview": preview,
        },
        data_version=dg.DataVersion(stats["sha256"][:16]),
    )
