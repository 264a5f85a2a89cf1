"""Events: the marketing events each day implies (loyalty_events), and the event-volume check that
guards their delivery (a blocking check: when it fails, the day's outbound assets do not run)."""

import dagster as dg
from pydantic import Field

from ..ingest.files import ExportError
from ..partitions import daily_partitions, day_check, partition_day
from ..program import ProgramResource
from ..run_tags import HOW_TO_CONFIRM, rebuild_requested, volume_confirmed
from ..snapshots.assets import account_deltas
from ..warehouse.connection import WAREHOUSE_POOL, count_day_and_previous
from ..warehouse.metadata import counts
from ..warehouse.resources import WarehouseResource
from .derive import EventDerivationError, build_events


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


@day_check(asset=loyalty_events,
           description="Events rise at most operations.event_volume_band above the latest earlier day "
                       "with events, unless there are at most operations.event_volume_floor of them.")
def event_volume_within_band(context: dg.AssetCheckExecutionContext, program: ProgramResource,
                             warehouse: WarehouseResource) -> dg.AssetCheckResult:
    day = partition_day(context)
    ops = program.load().operations
    with warehouse.connect() as con:
        events, previous_day, previous = count_day_and_previous(con, "loyalty_events", day)
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
        f"(+{ops.event_volume_band:.0%}, floor {ops.event_volume_floor}); " + HOW_TO_CONFIRM))
