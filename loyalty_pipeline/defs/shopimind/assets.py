"""ShopiMind domain: bootstrap, LoyaltyAccount upserts, event triggers (logic in loyalty_pipeline/shopimind/).

Each outbound asset re-checks its part of the bootstrap first (one or a few requests): it is what makes
pointing the pipeline at a new shop, or at a freshly started emulator, just work, so they do not depend
on `shopimind_setup` (which would also make Dagster skip them in a dry run, where setup materializes
nothing). `shopimind_setup` does the whole bootstrap, is in the daily job, and shows the definition id.

A dry run (op config `dry_run: true`) records an observation with the counts and sample payloads
instead of a materialization: it sends nothing, needs no key and writes no delivery state.
"""

import json
from collections import Counter
from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from ...events.catalogue import CATALOGUE, shopimind_properties
from ...events.derive import enabled_event_types
from ...program import Program
from ...shopimind.client import ShopiMindClient, ShopiMindError
from ...shopimind.delivery import (
    deliver_accounts,
    deliver_events,
    pending_problems,
    preview_accounts,
    preview_events,
)
from ...shopimind.models import LOYALTY_ACCOUNT, EventType
from ...shopimind.setup import SetupResult, ensure_definition, ensure_event_types, store_setup, stored_setup
from ...warehouse.connection import WAREHOUSE_POOL
from ..ingest.assets import loyalty_snapshot
from ..metadata import counts, md_query
from ..partitions import daily_partitions, partition_day
from ..resources import ProgramResource, WarehouseResource
from .resources import ShopiMindConfigError, ShopiMindResource

OUTBOUND = ("shopimind_setup", "shopimind_accounts", "shopimind_events")


def dry_run_config() -> dict:
    """Run config that turns every ShopiMind asset of a run into a dry run."""
    return {"ops": {name: {"config": {"dry_run": True}} for name in OUTBOUND}}


class DeliveryConfig(dg.Config):
    dry_run: bool = Field(default=False, description="Report what would be sent (counts, sample payloads) "
                                                     "as an observation; send nothing, write no delivery state.")


def event_types(program: Program) -> list[EventType]:
    """The createEvent bodies of every event type the program enables."""
    return [EventType(name=CATALOGUE[code].name, code_name=code, properties=shopimind_properties(CATALOGUE[code]))
            for code in enabled_event_types(program)]


def _client(shopimind: ShopiMindResource) -> ShopiMindClient:
    try:
        return shopimind.client()
    except ShopiMindConfigError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None


def _failure(exc: ShopiMindError, metadata: dict | None = None) -> dg.Failure:
    return dg.Failure(description=str(exc), metadata=metadata or {}, allow_retries=False)


def _observe(context: dg.AssetExecutionContext, metadata: dict) -> None:
    context.log_event(dg.AssetObservation(asset_key=context.asset_key, partition=context.partition_key
                                          if context.has_partition_key else None, metadata=metadata))


def _json_md(samples: list) -> dg.MetadataValue:
    return dg.MetadataValue.md("```json\n" + json.dumps(samples, indent=2, ensure_ascii=False) + "\n```")


@dg.asset(
    pool=WAREHOUSE_POOL,
    group_name="shopimind",
    kinds={"shopimind", "duckdb"},
    output_required=False,
    description="Idempotent ShopiMind bootstrap: the LoyaltyAccount custom-data definition (found or created) "
                "and every enabled event type declared; the definition id is kept in table shopimind_setup.",
)
def shopimind_setup(context: dg.AssetExecutionContext, config: DeliveryConfig, program: ProgramResource,
                    warehouse: WarehouseResource, shopimind: ShopiMindResource) -> Iterator[dg.MaterializeResult]:
    types = event_types(program.load())
    if config.dry_run:
        _observe(context, {"dry_run": True, "definition": LOYALTY_ACCOUNT.name, "event_types": len(types),
                           "declarations": _json_md([t.model_dump() for t in types])})
        return
    with _client(shopimind) as client:
        try:
            id_definition, action = ensure_definition(client)
            declared = ensure_event_types(client, types)
        except ShopiMindError as exc:
            raise _failure(exc) from None
    with warehouse.connect() as con:
        store_setup(con, shopimind.destination, SetupResult(id_definition, action, declared))
    yield dg.MaterializeResult(metadata={
        "destination": shopimind.destination,
        "definition_id": id_definition,
        "definition": f"{LOYALTY_ACCOUNT.name} ({action})",
        **counts("event_types", Counter(declared.values())),
    })


@dg.asset(
    partitions_def=daily_partitions,
    pool=WAREHOUSE_POOL,
    group_name="shopimind",
    kinds={"shopimind", "duckdb"},
    deps=[loyalty_snapshot],
    output_required=False,
    description="Upserts the LoyaltyAccount record of every enrolled member whose mapped fields changed since "
                "the last acknowledged push, from the newest snapshot only (tables delivery_state, sync_log, "
                "account_sync_state).",
)
def shopimind_accounts(context: dg.AssetExecutionContext, config: DeliveryConfig, program: ProgramResource,
                       warehouse: WarehouseResource, shopimind: ShopiMindResource
                       ) -> Iterator[dg.MaterializeResult]:
    day = partition_day(context)
    settings = shopimind.settings(program.load().max_event_age_days)
    destination = shopimind.destination
    with warehouse.connect() as con:
        if config.dry_run:
            preview = preview_accounts(con, day, destination, settings)
            _observe(context, {"dry_run": True, **counts("accounts", _zeros(preview["actions"])),
                               "samples": _json_md(preview["samples"])})
            return
        with _client(shopimind) as client:
            try:
                stored = stored_setup(con, destination)
                id_definition, action = ensure_definition(client)
                if stored is None or stored[0] != id_definition:
                    store_setup(con, destination, SetupResult(id_definition, action, {}))
                stats = deliver_accounts(con, client, day, destination, id_definition, settings, context.run.run_id)
            except ShopiMindError as exc:
                raise _failure(exc) from None
            requests = dict(client.stats)
        warehouse.publish_current(con, ["delivery_state"])  # the analysts' read path (README, Operations)
        metadata = {
            "destination": destination,
            "definition_id": id_definition,
            **counts("accounts", {**_zeros(stats["actions"]), **_final(stats["final"])}),
            "accounts/not_attempted": stats["not_attempted"],
            "batch_size": stats["batch_size"],
            **counts("http", requests),
            **counts("attention", pending_problems(con, destination)),
            "problems": md_query(
                con, "SELECT key AS customer_id, status, http_status, error FROM delivery_state "
                "WHERE destination = $d AND kind = 'account' AND snapshot_date = $day "
                "AND status IN ('rejected', 'failed') ORDER BY key LIMIT 10", {"d": destination, "day": day}),
        }
    unsettled = stats["final"].get("failed", 0) + stats["not_attempted"]
    if unsettled:
        raise dg.Failure(description=f"{day}: {unsettled} LoyaltyAccount records were not acknowledged "
                                     "(transport errors or deadline); they are sent again by the next run",
                         metadata=metadata)
    yield dg.MaterializeResult(metadata=metadata)


@dg.asset(
    partitions_def=daily_partitions,
    pool=WAREHOUSE_POOL,
    group_name="shopimind",
    kinds={"shopimind", "duckdb"},
    deps=[dg.AssetKey("loyalty_events")],
    output_required=False,
    description="Triggers each pending event of the day (POST /v1/events/trigger/{code_name}), many in flight "
                "within the rate limit, effectively once: in-flight state is committed before sending and "
                "uncertain deliveries are reconciled against the event histories (tables delivery_state, "
                "sync_log).",
)
def shopimind_events(context: dg.AssetExecutionContext, config: DeliveryConfig, program: ProgramResource,
                     warehouse: WarehouseResource, shopimind: ShopiMindResource) -> Iterator[dg.MaterializeResult]:
    day = partition_day(context)
    prog = program.load()
    settings = shopimind.settings(prog.max_event_age_days)
    destination = shopimind.destination
    with warehouse.connect() as con:
        if config.dry_run:
            preview = preview_events(con, day, destination, settings)
            _observe(context, {"dry_run": True, **_event_counts(preview["actions"]),
                               "samples": _json_md(preview["samples"])})
            return
        with _client(shopimind) as client:
            try:
                types = event_types(prog)
                declared = ensure_event_types(client, types)
                stored = stored_setup(con, destination)
                if stored is None or not set(declared) <= stored[1]:
                    id_definition = stored[0] if stored else ensure_definition(client)[0]
                    store_setup(con, destination, SetupResult(id_definition, "found", declared))
                stats = deliver_events(con, client, day, destination, settings, context.run.run_id)
            except ShopiMindError as exc:
                raise _failure(exc) from None
            requests = dict(client.stats)
        warehouse.publish_current(con, ["delivery_state"])  # the analysts' read path (README, Operations)
        final: Counter = Counter()
        per_type: dict[str, int] = {}
        for (status, code), n in stats["final"].items():
            final[status] += n
            if status != "suppressed_stale":  # counted with the selection, above
                per_type[f"{status}/{code}"] = n
        metadata = {
            "destination": destination,
            **_event_counts(stats["actions"]),
            **counts("events", _final(final)),
            **counts("by_type", per_type),
            "events/not_attempted": stats["not_attempted"],
            **counts("reconciled", stats["reconciled"]),
            **counts("http", requests),
            **counts("attention", pending_problems(con, destination)),
            "problems": md_query(
                con, "SELECT key AS event_key, code_name, status, http_status, error FROM delivery_state "
                "WHERE destination = $d AND kind = 'event' AND snapshot_date = $day "
                "AND status IN ('rejected', 'failed', 'uncertain') ORDER BY key LIMIT 10",
                {"d": destination, "day": day}),
        }
    unsettled = final.get("failed", 0) + final.get("uncertain", 0) + final.get("in_flight", 0)
    if unsettled:
        raise dg.Failure(description=f"{day}: {unsettled} events are not settled (failed or uncertain); the next "
                                     "run reconciles and retries them (none is resent blindly)", metadata=metadata)
    yield dg.MaterializeResult(metadata=metadata)


_ACCOUNT_ACTIONS = ("send", "unchanged", "suppressed_stale", "rejected_unchanged")
_EVENT_ACTIONS = ("send", "sent", "rejected", "uncertain", "suppressed_stale")


def _zeros(actions: dict[str, int]) -> dict[str, int]:
    """Account actions with every series present (the UI plots a missing one as a gap)."""
    keys = {"send": "to_send", "unchanged": "unchanged", "suppressed_stale": "suppressed_stale",
            "rejected_unchanged": "rejected_unchanged"}
    return {keys[a]: actions.get(a, 0) for a in _ACCOUNT_ACTIONS}


def _final(final: dict[str, int]) -> dict[str, int]:
    return {status: final.get(status, 0) for status in ("sent", "rejected", "failed", "uncertain")}


def _event_counts(actions: dict[tuple, int]) -> dict[str, int]:
    """Selection counts per action (previously sent = "unchanged"), overall and per event type."""
    names = {"send": "to_send", "sent": "unchanged", "rejected": "previously_rejected",
             "uncertain": "unresolved", "suppressed_stale": "suppressed_stale"}
    total: Counter = Counter()
    per_type: dict[str, int] = {}
    for (action, code), n in actions.items():
        total[names[action]] += n
        per_type[f"{names[action]}/{code}"] = n
    return {**counts("events", {names[a]: total.get(names[a], 0) for a in _EVENT_ACTIONS}),
            **counts("by_type", per_type)}
