"""ShopiMind: bootstrap, LoyaltyAccount upserts and deletions, event triggers (client.py, setup.py,
accounts.py, departures.py, triggers.py, on the delivery core in outbound/core).

The bootstrap is cached per destination (table shopimind_setup: the definition id and a sha256 of what
was declared). Each outbound asset ensures its part of it, from the cache (no request) unless the
program declares something else now, and only once it has something to send: re-running a finished
day makes no request at all. When ShopiMind answers that the definition or an event type is not there
(deleted, a reset shop or emulator), that part is set up again once and the refused batch or event
retried once. So pointing the pipeline at a new shop, or at a freshly started emulator, just works,
and the outbound assets do not depend on `shopimind_setup` (which would also make Dagster skip them in
a dry run, where setup materializes nothing). `shopimind_setup` ensures the whole bootstrap (from the
cache too; op config `force: true` re-checks it at ShopiMind), is in the daily job, and shows the
definition id.

A dry run (op config `dry_run: true`) records an observation with the counts and sample payloads
instead of a materialization: it sends nothing, needs no key and writes no delivery state.
"""

import json
from collections import Counter
from collections.abc import Iterator

import dagster as dg
import duckdb
from pydantic import Field

from ...events.catalogue import CATALOGUE, shopimind_properties
from ...events.derive import enabled_event_types
from ...partitions import daily_partitions, partition_day
from ...program import Program, ProgramResource
from ...snapshots.assets import loyalty_snapshot
from ...warehouse.connection import WAREHOUSE_POOL
from ...warehouse.metadata import counts, query_table
from ...warehouse.resources import WarehouseResource
from ..core.ledger import pending_problems
from .accounts import deliver_accounts, preview_accounts
from .client import ShopiMindClient, ShopiMindError
from .departures import LeavePolicy, deliver_departures, preview_departures
from .models import LOYALTY_ACCOUNT, EventDeclaration
from .resources import ShopiMindConfigError, ShopiMindResource
from .setup import CachedSetup, ensure_setup_cached, stored_setup
from .triggers import deliver_events, preview_events

OUTBOUND = ("shopimind_setup", "shopimind_accounts", "shopimind_events")


def dry_run_config() -> dict:
    """Run config that turns every ShopiMind asset of a run into a dry run."""
    return {"ops": {name: {"config": {"dry_run": True}} for name in OUTBOUND}}


class DeliveryConfig(dg.Config):
    dry_run: bool = Field(default=False, description="Report what would be sent (counts, sample payloads) "
                                                     "as an observation; send nothing, write no delivery state.")


class SetupConfig(DeliveryConfig):
    force: bool = Field(default=False, description="Re-check the whole bootstrap at ShopiMind even when table "
                                                   "shopimind_setup says it is in place.")


def event_types(program: Program) -> list[EventDeclaration]:
    """The createEvent bodies of every event type the program enables."""
    return [EventDeclaration(name=CATALOGUE[code].name, code_name=code,
                             properties=shopimind_properties(CATALOGUE[code]))
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


class _Setup:
    """An outbound asset's part of the bootstrap, as `deliver_*(setup=...)` asks for it: `self(False)`
    before the first request (from the cache when it matches), `self(True)` when ShopiMind said it is gone."""

    def __init__(self, context: dg.AssetExecutionContext, con: duckdb.DuckDBPyConnection, client: ShopiMindClient,
                 destination: str, types: list[EventDeclaration], *, definition: bool, events: bool) -> None:
        self.context, self.con, self.client, self.destination, self.types = context, con, client, destination, types
        self.parts = {"definition": definition, "events": events}
        self.results: list[CachedSetup] = []
        self.healed = False

    def __call__(self, heal: bool) -> int:
        if heal:
            self.healed = True
            what = "LoyaltyAccount definition" if self.parts["definition"] else "event types"
            self.context.log.warning(f"ShopiMind says the {what} set up for {self.destination} is not there: "
                                     "setting it up again, then retrying once")
        result = ensure_setup_cached(self.con, self.client, self.destination, self.types, force=heal, **self.parts)
        self.results.append(result)
        return result.definition_id

    def metadata(self) -> dict:
        """What setup did in this run: `not needed` (nothing sent), `cached`, or what was (re-)declared."""
        summary = " → ".join(r.summary for r in self.results) or "not needed (nothing to send)"
        return {"setup": summary, "setup/requests": sum(r.requests for r in self.results),
                "setup/healed": int(self.healed)}


@dg.asset(
    pool=WAREHOUSE_POOL,
    group_name="shopimind",
    kinds={"shopimind", "duckdb"},
    output_required=False,
    description="Idempotent ShopiMind bootstrap: the LoyaltyAccount custom-data definition (found or created) "
                "and every enabled event type declared. Cached in table shopimind_setup (definition id, sha256 "
                "of what was declared): no request while the program declares the same (config force: true "
                "re-checks at ShopiMind).",
)
def shopimind_setup(context: dg.AssetExecutionContext, config: SetupConfig, program: ProgramResource,
                    warehouse: WarehouseResource, shopimind: ShopiMindResource) -> Iterator[dg.MaterializeResult]:
    types = event_types(program.load())
    if config.dry_run:
        _observe(context, {"dry_run": True, "definition": LOYALTY_ACCOUNT.name, "event_types": len(types),
                           "declarations": _json_md([t.model_dump() for t in types])})
        return
    with _client(shopimind) as client, warehouse.connect() as con:
        try:
            setup = ensure_setup_cached(con, client, shopimind.destination, types, force=config.force)
        except ShopiMindError as exc:
            raise _failure(exc) from None
    yield dg.MaterializeResult(metadata={
        "destination": shopimind.destination,
        "definition_id": setup.definition_id,
        "definition": f"{LOYALTY_ACCOUNT.name} ({setup.definition_action})",
        "setup": setup.summary,
        "setup/requests": setup.requests,
        **counts("event_types", Counter(setup.events.values())),
    })


@dg.asset(
    partitions_def=daily_partitions,
    pool=WAREHOUSE_POOL,
    group_name="shopimind",
    kinds={"shopimind", "duckdb"},
    deps=[loyalty_snapshot],
    output_required=False,
    description="Upserts the LoyaltyAccount record of every enrolled member whose mapped fields changed since "
                "the last acknowledged push, from the newest snapshot only, and deletes the records of members "
                "who left (opted out, or missing from removal_grace_days exports; on_leave in program.yaml) "
                "(tables delivery_state, sync_log, account_sync_state).",
)
def shopimind_accounts(context: dg.AssetExecutionContext, config: DeliveryConfig, program: ProgramResource,
                       warehouse: WarehouseResource, shopimind: ShopiMindResource
                       ) -> Iterator[dg.MaterializeResult]:
    day = partition_day(context)
    prog = program.load()
    settings = shopimind.settings(prog.max_event_age_days)
    policy = LeavePolicy(prog.on_leave, prog.removal_grace_days)
    destination = shopimind.destination
    with warehouse.connect() as con:
        if config.dry_run:
            preview = preview_accounts(con, day, destination, settings)
            leaving = preview_departures(con, day, destination, policy, settings)
            _observe(context, {"dry_run": True, **counts("accounts", _zeros(preview["actions"])),
                               **_departure_counts(leaving["actions"], leaving["reasons"]),
                               "samples": _json_md(preview["samples"]),
                               "delete_samples": _json_md(leaving["samples"])})
            return
        with _client(shopimind) as client:
            setup = _Setup(context, con, client, destination, [], definition=True, events=False)
            try:
                stats = deliver_accounts(con, client, day, destination, None, settings, context.run.run_id,
                                         setup=setup)
                left = deliver_departures(con, client, day, destination, policy, settings, context.run.run_id,
                                          id_definition=stats["definition_id"], setup=setup)
            except ShopiMindError as exc:
                raise _failure(exc, setup.metadata()) from None
            requests = dict(client.stats)
        warehouse.publish_current(con, ["delivery_state"])  # the analysts' read path (docs/analysts.md)
        stored = stored_setup(con, destination)
        id_definition = stats["definition_id"] if stats["definition_id"] is not None else (
            stored.definition_id if stored else None)
        metadata = {
            "destination": destination,
            **({"definition_id": id_definition} if id_definition is not None else {}),
            **setup.metadata(),
            **counts("accounts", {**_zeros(stats["actions"]), **_final(stats["final"])}),
            "accounts/not_attempted": stats["not_attempted"],
            **_departure_counts(left["actions"], left["reasons"], left["final"]),
            "deletes/not_attempted": left["not_attempted"],
            "batch_size": stats["batch_size"],
            **counts("http", requests),
            **counts("attention", pending_problems(con, destination)),
            "problems": query_table(
                con, "SELECT key AS customer_id, status, http_status, error FROM delivery_state "
                "WHERE destination = $d AND kind = 'account' AND snapshot_date = $day "
                "AND status IN ('rejected', 'failed', 'uncertain') ORDER BY key LIMIT 10",
                {"d": destination, "day": day}),
            "delete_problems": query_table(
                con, "SELECT key AS customer_id, status, http_status, error FROM delivery_state "
                "WHERE destination = $d AND kind = 'account_delete' AND snapshot_date = $day "
                "AND status IN ('rejected', 'failed', 'uncertain') ORDER BY key LIMIT 10",
                {"d": destination, "day": day}),
        }
    unsettled = stats["final"].get("failed", 0) + stats["final"].get("uncertain", 0) + stats["not_attempted"]
    undeleted = left["final"].get("failed", 0) + left["final"].get("uncertain", 0) + left["not_attempted"]
    if unsettled or undeleted:
        problems = [f"{unsettled} LoyaltyAccount records were not acknowledged"] if unsettled else []
        problems += [f"the deletion of {undeleted} departed members' records was not acknowledged"] if undeleted else []
        raise dg.Failure(description=f"{day}: {' and '.join(problems)} (transport errors, the deadline, or a 2xx "
                                     "answer that did not add up); they are sent again by the next run",
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
            setup = _Setup(context, con, client, destination, event_types(prog), definition=False, events=True)
            try:
                stats = deliver_events(con, client, day, destination, settings, context.run.run_id, setup=setup)
            except ShopiMindError as exc:
                raise _failure(exc, setup.metadata()) from None
            requests = dict(client.stats)
        warehouse.publish_current(con, ["delivery_state"])  # the analysts' read path (docs/analysts.md)
        final: Counter = Counter()
        per_type: dict[str, int] = {}
        for (status, code), n in stats["final"].items():
            final[status] += n
            if status not in ("suppressed_stale", "unaddressable"):  # counted with the selection, above
                per_type[f"{status}/{code}"] = n
        metadata = {
            "destination": destination,
            **setup.metadata(),
            **_event_counts(stats["actions"]),
            **counts("events", _final(final)),
            **counts("by_type", per_type),
            "events/not_attempted": stats["not_attempted"],
            **counts("reconciled", stats["reconciled"]),
            **counts("http", requests),
            **counts("attention", pending_problems(con, destination)),
            "problems": query_table(
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
_EVENT_ACTIONS = ("send", "sent", "rejected", "uncertain", "suppressed_stale", "unaddressable")
_DELETE_FINAL = ("sent", "no_record", "rekeyed", "rejected", "failed", "uncertain")


def _departure_counts(actions: dict[str, int], reasons: dict[str, int], final: dict[str, int] | None = None
                      ) -> dict[str, int]:
    """deletes/*: departed members with a record held, by what is done (every series present), by reason
    (opted_out, absent), and, after a real run, how it ended (`sent`: a record deleted; `no_record`:
    ShopiMind held none; `rekeyed`: upserted with the customer key first)."""
    selection = {"to_send": actions.get("delete", 0) + actions.get("rekey", 0), "kept": actions.get("kept", 0),
                 "previously_rejected": actions.get("previously_rejected", 0),
                 "suppressed_stale": actions.get("suppressed_stale", 0),
                 "opted_out": reasons.get("opted_out", 0), "absent": reasons.get("absent", 0)}
    ended = {} if final is None else {status: final.get(status, 0) for status in _DELETE_FINAL}
    return counts("deletes", {**selection, **ended})


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
             "uncertain": "unresolved", "suppressed_stale": "suppressed_stale", "unaddressable": "unaddressable"}
    total: Counter = Counter()
    per_type: dict[str, int] = {}
    for (action, code), n in actions.items():
        total[names[action]] += n
        per_type[f"{names[action]}/{code}"] = n
    return {**counts("events", {names[a]: total.get(names[a], 0) for a in _EVENT_ACTIONS}),
            **counts("by_type", per_type)}
