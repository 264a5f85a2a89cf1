"""Events domain: the marketing events each day implies (table loyalty_events)."""

import dagster as dg
from pydantic import Field

from ...events.derive import EventDerivationError, build_events
from ...sources import ExportError
from ...warehouse.connection import WAREHOUSE_POOL
from ..metadata import counts
from ..partitions import daily_partitions, partition_day, rebuild_requested
from ..resources import ProgramResource, WarehouseResource
from ..snapshots.assets import account_deltas


class EventsConfig(dg.Config):
    send_stale: bool = Field(
        default=False,
        description="Mark events older than the program's max_event_age_days as pending (to be sent) "
                    "instead of suppressed_stale. Only for a deliberate re-send of a backfilled period.",
    )


@dg.asset(
    partitions_def=daily_partitions,
    pool=WAREHOUSE_POOL,
    group_name="events",
    kinds={"duckdb"},
    deps=[account_deltas],
    description="Every marketing event the day implies, with a deterministic event_key (table loyalty_events).",
)
def loyalty_events(context: dg.AssetExecutionContext, config: EventsConfig, program: ProgramResource,
                   warehouse: WarehouseResource) -> dg.MaterializeResult:
    day = partition_day(context)
    prog = program.load()
    today = program.today_date()
    with warehouse.connect() as con:
        try:
            stats = build_events(con, day, prog, today, send_stale=config.send_stale,
                                 force=rebuild_requested(context))
        except (ExportError, EventDerivationError) as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        warehouse.publish(con, ["loyalty_events"], day, stats["built_at"])  # analysts read these
    if stats["by_status"]["suppressed_stale"]:
        context.log.info(f"{day} is before {stats['stale_before']} (today {today} - max_event_age_days): "
                         f"{stats['by_status']['suppressed_stale']} events stored as suppressed_stale")
    held_back = stats["held_back"]  # {} when loyalty.enrolled is switched off
    if any(held_back.values()):
        context.log.info(f"{day}: held back {held_back} — enrolments whose member_since is more than "
                         "max_event_age_days before the day are not announced (a migration, a backfill)")
    previous = stats["previous_snapshot_date"]
    return dg.MaterializeResult(metadata={
        "events": stats["events"],
        "baseline": stats["baseline"],
        "reused": stats["reused"],
        "previous_snapshot_date": previous.isoformat() if previous else "none (baseline)",
        "today": today.isoformat(),
        "stale_before": stats["stale_before"].isoformat(),
        "send_stale": stats["send_stale"],
        **counts("events", stats["by_type"]),
        **counts("status", stats["by_status"]),
        **counts("held_back", held_back),
        "tier_migration": dg.MetadataValue.md(stats["tier_matrix"]),
    })
