"""Delivery to ShopiMind: what to send (set-based SQL), sending it (threads), and what happened (ledger).

DuckDB is only touched from the calling thread: candidates stream from a cursor in chunks, a thread
pool sends a chunk (sharing one client, one rate limit), and the chunk's outcomes are written in one
transaction. Memory is flat in the number of members.

Guarantees (DESIGN.md invariants 5-9, 15, 16):
- a key is `sent` only on a 2xx for its request and its absence from `rejected_items`; a 2xx whose bulk
  envelope does not add up (`read_bulk`) makes its batch `uncertain`: sent again by the next run;
- a record or trigger body that cannot be built from a row is `rejected` with the reason, alone;
- an event is committed `in_flight` before its request leaves; an `in_flight` or `uncertain` event is
  looked up in the event histories before anything is resent; `sent`/`rejected` events are never resent;
- an account is sent only when its mapped values differ from the last acknowledged push, and only from
  the newest snapshot, so an old day never overwrites newer state;
- nothing to send, no request: the bootstrap (`setup`) is asked for only before the first record or
  trigger goes out, and histories are searched only for in_flight/uncertain events. When ShopiMind
  answers that the bootstrap is gone (definition or event type not found), setup is re-run once
  (`setup(True)`) and the refused batch or event retried once; refused again, the run stops as failed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
from pydantic import ValidationError

from ...warehouse.connection import bind, sql_files, transaction
from .client import AuthError, Result, ShopiMindClient, ShopiMindError
from .models import (
    ContactResolver,
    LoyaltyAccountRecord,
    TriggerBody,
    Unaddressable,
    invalid_payload,
    read_bulk,
    read_listing,
    read_trigger,
    rejected_index,
    rejected_message,
)

_STATUS = {"ok": "sent", "rejected": "rejected", "failed": "failed", "uncertain": "uncertain"}
_TOO_LARGE = re.compile(r"too (many|large|long|big)|maximum|\bmax\b|limit|exceed", re.IGNORECASE)
# Whole-request refusals that say the bootstrap is gone (deleted or deactivated, a shop reset, a stale
# cache): not the rows' fault, so they are `failed`, never `rejected`: setup is re-run and they are
# retried once; refused again, the run stops.
_SETUP_GONE = re.compile(r"definition.*(not found|not active|inactive)|event .*not found", re.IGNORECASE)
HISTORY_PAGE = 100

sql = sql_files(__package__)


@dataclass(frozen=True)
class DeliverySettings:
    batch_size: int = 20  # records per saveCustomDataRecords call (the API: 20, maybe 50)
    concurrency: int = 8  # requests in flight
    # A chunk = concurrency x chunk_batches requests: marked in flight and recorded in one transaction
    # each (a merge into delivery_state, whose cost grows with the table, so chunks are large).
    chunk_batches: int = 128
    history_visibility_s: float = 5.0  # an event may take this long to show in the histories
    reconcile_margin_s: float = 300.0  # clock skew allowance when searching the histories
    resend_rounds: int = 3  # reconcile-then-resend rounds for events that went uncertain during the run
    carry_days: int = 3  # failed events of this many earlier days are retried by a day's run
    samples: int = 3  # sample payloads in a dry run's metadata

    @property
    def chunk_size(self) -> int:
        return self.concurrency * self.chunk_batches


@dataclass
class Outcome:
    kind: str  # account | event
    key: str
    snapshot_date: dt.date
    customer_id: str
    code_name: str | None
    status: str
    http_status: int | None = None
    error: str | None = None
    requests: int = 0
    attempt_inc: int = 0
    payload_hash: str | None = None
    note: str | None = None
    fatal: bool = False  # the whole run must stop (bad key): recorded, then raised
    setup_gone: bool = False  # refused because the definition or event type is not there


# Setup as delivery sees it: setup(heal) -> the definition id; heal=True re-runs it from scratch.
Setup = Callable[[bool], int]


class _Bootstrap:
    """The bootstrap of one delivery run: asked for lazily, before the first request that relies on it
    (so a day with nothing to send makes no setup request), and re-run at most once per run."""

    def __init__(self, setup: Setup | None, id_definition: int | None) -> None:
        self.setup, self.id_definition = setup, id_definition
        self.ready_done = setup is None
        self.healed = False

    def ready(self) -> int | None:
        if not self.ready_done:
            self.id_definition = self.setup(False)
            self.ready_done = True
        return self.id_definition

    def can_heal(self) -> bool:
        return self.setup is not None and not self.healed

    def heal(self) -> int:
        self.healed = self.ready_done = True
        self.id_definition = self.setup(True)
        return self.id_definition

    def gone_hint(self, what: str) -> str:
        """What a "not found" refusal means now, for the error recorded with it."""
        if self.can_heal():
            return f"{what} is not there (deleted, or a reset shop): setup is re-run and this retried once"
        if self.healed:
            return (f"{what} is still refused after setup was re-run in this run (deleted again?); check it "
                    "in ShopiMind, then re-run")
        return f"{what} changed during the run; re-run to set it up"


def _healing(outcome: Outcome) -> Outcome:
    """A setup-gone refusal that setup re-run is about to answer: recorded, not fatal, retried."""
    return dataclasses.replace(outcome, fatal=False, note="setup gone: setup re-run, then retried once")


_OUTCOME_SCHEMA = pa.schema([
    ("kind", pa.string()), ("key", pa.string()), ("snapshot_date", pa.date32()), ("customer_id", pa.string()),
    ("code_name", pa.string()), ("status", pa.string()), ("http_status", pa.int32()), ("error", pa.string()),
    ("requests", pa.int32()), ("attempt_inc", pa.int32()), ("payload_hash", pa.string()), ("note", pa.string()),
])


class Ledger:
    """The warehouse side of delivery: delivery_state (current), sync_log (append-only), acknowledgements."""

    def __init__(self, con: duckdb.DuckDBPyConnection, destination: str, run_id: str | None = None) -> None:
        self.con, self.destination = con, destination
        self.run_id = run_id or f"adhoc-{uuid.uuid4()}"

    def _params(self, statement: str) -> dict:
        return bind(statement, {"destination": self.destination, "run_id": self.run_id})

    def mark_in_flight(self, rows: list[tuple]) -> None:
        """rows: (key, snapshot_date, customer_id, code_name). Committed before anything is sent."""
        batch = pa.table({"key": [r[0] for r in rows], "snapshot_date": pa.array([r[1] for r in rows], pa.date32()),
                          "customer_id": [r[2] for r in rows], "code_name": [r[3] for r in rows]})
        statement = sql("shopimind_mark_in_flight")
        self.con.register("batch", batch)
        try:
            with transaction(self.con):
                self.con.execute(statement, self._params(statement))
        finally:
            self.con.unregister("batch")

    def record(self, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        columns = {name: [getattr(o, name) for o in outcomes] for name in _OUTCOME_SCHEMA.names}
        table = pa.Table.from_pydict(columns, schema=_OUTCOME_SCHEMA)
        self.con.register("outcomes", table)
        try:
            with transaction(self.con):
                for name in ("shopimind_state_merge", "shopimind_log_insert", "shopimind_ack_merge",
                             "shopimind_delete_ack"):
                    statement = sql(name)
                    self.con.execute(statement, self._params(statement))
        finally:
            self.con.unregister("outcomes")

    def run_summary(self, kind: str) -> dict[tuple[str, str | None], int]:
        """Final status of every key this run touched: {(status, code_name): count}."""
        rows = self.con.execute(
            "SELECT d.status, d.code_name, count(*) FROM delivery_state d WHERE d.destination = $destination "
            "AND d.kind = $kind AND d.key IN (SELECT key FROM sync_log WHERE run_id = $run_id AND kind = $kind "
            "AND destination = $destination) GROUP BY ALL",
            {"destination": self.destination, "kind": kind, "run_id": self.run_id}).fetchall()
        return {(status, code): n for status, code, n in rows}


def _stream(con: duckdb.DuckDBPyConnection, query: str, params: dict, size: int) -> Iterator[list[tuple]]:
    """Rows of `query` in chunks, from a cursor of their own so the caller can write meanwhile."""
    cursor = con.cursor()
    try:
        cursor.execute(query, bind(query, params))
        while rows := cursor.fetchmany(size):
            yield rows
    finally:
        cursor.close()


def _actions(con: duckdb.DuckDBPyConnection, query: str, params: dict, by: str) -> dict[tuple, int]:
    statement = f"SELECT action, {by}, count(*) FROM ({query}) GROUP BY ALL"
    return {(a, b): n for a, b, n in con.execute(statement, bind(statement, params)).fetchall()}


# -- accounts ---------------------------------------------------------------------------------------

_ACCOUNT_COLUMNS = ("customer_id, points_balance, tier, tier_since, next_expiry_date, next_expiry_amount, "
                    "payload_hash")


def contact_of(customer_id: str) -> ContactResolver:
    """The member's ShopiMind contact: by the shop's customer id, or by email when the member's id is an
    address (a Yotpo customer report has no shop id and keys members by email, ingest/platforms/yotpo.py)."""
    return ContactResolver(by="email" if "@" in customer_id else "id_customer", value=customer_id)


def account_record(row: tuple) -> dict[str, Any]:
    customer_id, balance, tier, tier_since, expiry_date, expiry_amount = row[:6]
    return LoyaltyAccountRecord(
        contact_id=contact_of(customer_id), points_balance=balance, tier=tier,
        tier_since=tier_since, next_expiry_date=expiry_date, next_expiry_amount=expiry_amount,
        customer_id=customer_id,
    ).model_dump(mode="json")


def _account_records(rows: list[tuple], day: dt.date) -> tuple[list[tuple[tuple, dict]], list[Outcome]]:
    """Each row with its record. A row no record can be made of (a value the API's type cannot carry,
    e.g. a date in year 99999) is `rejected` with the field and value, and never sent: one bad row
    must not stop the others (it is not retried until its values change, or a replay)."""
    built, refused = [], []
    for row in rows:
        try:
            built.append((row, account_record(row)))
        except ValidationError as exc:
            refused.append(Outcome("account", row[0], day, row[0], None, "rejected", payload_hash=row[6],
                                   error=f"not sent, the record cannot be built: {invalid_payload(exc)}"))
    return built, refused


class _BatchSize:
    """Shrinks for the rest of the run when the API says a batch is too large."""

    def __init__(self, size: int) -> None:
        self.size, self.lock = size, threading.Lock()

    def shrink(self, size: int) -> None:
        with self.lock:
            self.size = max(1, min(self.size, size))


def _save(client: ShopiMindClient, id_definition: int, rows: list[tuple], records: list[dict], day: dt.date,
          sizer: _BatchSize, gone_hint: str = "the LoyaltyAccount definition changed during the run; re-run "
                                                "to set it up") -> list[Outcome]:
    def outcome(i: int, status: str, result: Result | None, error: str | None = None, note: str | None = None
                ) -> Outcome:
        return Outcome("account", rows[i][0], day, rows[i][0], None, status,
                       http_status=result.status if result else None, error=error,
                       requests=result.requests if result else 0, attempt_inc=1, payload_hash=rows[i][6],
                       note=note)

    try:
        result = client.save_records(id_definition, json.dumps(records).encode())
    except AuthError as exc:
        return [Outcome("account", r[0], day, r[0], None, "failed", error=str(exc), attempt_inc=1,
                        payload_hash=r[6], fatal=True) for r in rows]
    if result.outcome in ("failed", "uncertain"):  # upserts are idempotent: failed, retried next run
        return [outcome(i, "failed", result, result.error) for i in range(len(rows))]
    if result.ok:
        rejected, problem = read_bulk(result.body, records)
        if problem:  # ShopiMind may hold any, all or none of them: not acknowledged, sent again next run
            error = f"2xx answer that does not add up ({problem}): {result.describe()}"
            return [outcome(i, "uncertain", result, error) for i in range(len(rows))]
        return [outcome(i, "rejected", result, rejected[i]) if i in rejected else outcome(i, "sent", result)
                for i in range(len(rows))]
    items = result.body.get("rejected_items") if isinstance(result.body, dict) else None
    items = items if isinstance(items, list) else []
    if not items:
        if len(rows) > 1 and _TOO_LARGE.search(result.error or ""):
            half = len(rows) // 2
            sizer.shrink(half)
            return (_save(client, id_definition, rows[:half], records[:half], day, sizer, gone_hint)
                    + _save(client, id_definition, rows[half:], records[half:], day, sizer, gone_hint))
        if _SETUP_GONE.search(result.error or ""):
            error = f"{result.error}: {gone_hint}"
            return [Outcome("account", r[0], day, r[0], None, "failed", http_status=result.status, error=error,
                            requests=result.requests, attempt_inc=1, payload_hash=r[6], fatal=True,
                            setup_gone=True) for r in rows]
        return [outcome(i, "rejected", result, result.error) for i in range(len(rows))]
    # A whole-request refusal listing items: each gets its own reason where it can be told, the rest
    # are refused with the request.
    reasons = {index: rejected_message(item) for item in items
               if (index := rejected_index(item, records)) is not None}
    return [outcome(i, "rejected", result, reasons.get(i, result.error)) for i in range(len(rows))]


def _account_params(day: dt.date, destination: str) -> dict:
    return {"day": day, "destination": destination}


def preview_accounts(con: duckdb.DuckDBPyConnection, day: dt.date, destination: str,
                     settings: DeliverySettings = DeliverySettings()) -> dict:
    """Dry run: what shopimind_accounts would do. Reads only."""
    query, params = sql("shopimind_accounts"), _account_params(day, destination)
    actions = {a: n for (a, _), n in _actions(con, query, params, "NULL").items()}
    statement = f"SELECT {_ACCOUNT_COLUMNS} FROM ({query}) WHERE action = 'send' ORDER BY customer_id LIMIT $n"
    sample = con.execute(statement, bind(statement, {**params, "n": settings.samples})).fetchall()
    built, refused = _account_records(sample, day)
    return {"actions": actions, "samples": [record for _, record in built]
            + [{"customer_id": o.key, "invalid": o.error} for o in refused]}


def _save_all(pool: ThreadPoolExecutor, client: ShopiMindClient, id_definition: int, rows: list[tuple],
              day: dt.date, sizer: _BatchSize, gone_hint: str) -> list[Outcome]:
    built, refused = _account_records(rows, day)
    size = sizer.size
    batches = [built[i:i + size] for i in range(0, len(built), size)]
    results = pool.map(lambda b: _save(client, id_definition, [row for row, _ in b], [rec for _, rec in b], day,
                                       sizer, gone_hint), batches)
    return refused + [o for batch in results for o in batch]


def deliver_accounts(con: duckdb.DuckDBPyConnection, client: ShopiMindClient, day: dt.date, destination: str,
                     id_definition: int | None, settings: DeliverySettings = DeliverySettings(),
                     run_id: str | None = None, *, setup: Setup | None = None) -> dict:
    """Upsert the LoyaltyAccount of every enrolled member of `day` whose mapped values changed.

    With `setup`, the definition id comes from `setup(False)`, called only if something is to be sent,
    and a batch refused because the definition is gone gets `setup(True)` and one retry. Without it,
    `id_definition` is used and such a refusal stops the run."""
    ledger = Ledger(con, destination, run_id)
    boot = _Bootstrap(setup, id_definition)
    query, params = sql("shopimind_accounts"), _account_params(day, destination)
    actions = {a: n for (a, _), n in _actions(con, query, params, "NULL").items()}
    sizer = _BatchSize(settings.batch_size)
    not_attempted = 0
    fatal: str | None = None
    what = "the LoyaltyAccount definition"
    select = f"SELECT {_ACCOUNT_COLUMNS} FROM ({query}) WHERE action = 'send' ORDER BY customer_id"
    with ThreadPoolExecutor(settings.concurrency, thread_name_prefix="shopimind") as pool:
        for rows in _stream(con, select, params, settings.chunk_size * settings.batch_size):
            if fatal or client.time_left() <= 0:
                not_attempted += len(rows)  # no state written: the diff selects them again next run
                continue
            outcomes = _save_all(pool, client, boot.ready(), rows, day, sizer, boot.gone_hint(what))
            if boot.can_heal() and any(o.setup_gone for o in outcomes):
                gone = {o.key for o in outcomes if o.setup_gone}
                ledger.record([_healing(o) if o.setup_gone else o for o in outcomes])
                id_definition = boot.heal()  # a setup that fails raises: the refused rows stay failed
                outcomes = _save_all(pool, client, id_definition, [r for r in rows if r[0] in gone], day, sizer,
                                     boot.gone_hint(what))
            ledger.record(outcomes)
            fatal = next((o.error for o in outcomes if o.fatal), None)
    if fatal:
        raise ShopiMindError(fatal)
    final = Counter()
    for (status, _), n in ledger.run_summary("account").items():
        final[status] += n
    return {"actions": actions, "final": dict(final), "not_attempted": not_attempted,
            "batch_size": sizer.size, "run_id": ledger.run_id, "definition_id": boot.id_definition,
            "setup_healed": boot.healed}


# -- events -----------------------------------------------------------------------------------------

_EVENT_COLUMNS = "event_key, snapshot_date, customer_id, email, code_name, metadata"


def trigger_body(row: tuple) -> bytes:
    """The triggerEvent body of an event row; ValueError (naming the field) when none can be made."""
    key, _, _, email, _, metadata = row[:6]
    values = json.loads(metadata) if isinstance(metadata, str) else None
    if not isinstance(values, dict):
        raise ValueError(f"metadata: must be a JSON object (got {metadata!r:.100})")
    try:
        return TriggerBody.for_event(email, values, key).to_json()
    except ValidationError as exc:
        raise ValueError(invalid_payload(exc)) from None


def _trigger(client: ShopiMindClient, row: tuple, gone_hint: str = "event type undeclared during the run; re-run "
                                                                  "to declare it") -> Outcome:
    key, day, customer_id, _, code_name, _ = row[:6]
    try:
        body = trigger_body(row)
    except Unaddressable as exc:  # the selection leaves them out; never sent if one slips through
        return Outcome("event", key, day, customer_id, code_name, "unaddressable", error=str(exc))
    except ValueError as exc:  # never sent: a payload the API would refuse anyway
        return Outcome("event", key, day, customer_id, code_name, "rejected",
                       error=f"not sent, the trigger cannot be built: {exc}")
    try:
        result = client.trigger(code_name, body)
    except AuthError as exc:
        return Outcome("event", key, day, customer_id, code_name, "failed", error=str(exc), fatal=True)
    if result.outcome == "rejected" and _SETUP_GONE.search(result.error or ""):
        return Outcome("event", key, day, customer_id, code_name, "failed", http_status=result.status,
                       error=f"{result.error}: {gone_hint}", requests=result.requests, fatal=True, setup_gone=True)
    if result.ok and (problem := read_trigger(result.body)):
        # A 2xx that is not ShopiMind's answer (a portal, a misrouted balancer): looked up, never trusted.
        return Outcome("event", key, day, customer_id, code_name, "uncertain", http_status=result.status,
                       error=f"2xx answer that is not ShopiMind's ({problem}): {result.describe()}",
                       requests=result.requests)
    return Outcome("event", key, day, customer_id, code_name, _STATUS[result.outcome], http_status=result.status,
                   error=result.error, requests=result.requests)


def _event_params(day: dt.date, destination: str, settings: DeliverySettings) -> dict:
    return {"day": day, "destination": destination, "carry_days": settings.carry_days}


def preview_events(con: duckdb.DuckDBPyConnection, day: dt.date, destination: str,
                   settings: DeliverySettings = DeliverySettings()) -> dict:
    """Dry run: what shopimind_events would do. Reads only."""
    query, params = sql("shopimind_events"), _event_params(day, destination, settings)
    actions = _actions(con, query, params, "code_name")
    statement = (f"SELECT {_EVENT_COLUMNS} FROM ({query}) WHERE action = 'send' "
                 "ORDER BY snapshot_date, code_name, event_key LIMIT $n")
    sample = con.execute(statement, bind(statement, {**params, "n": settings.samples})).fetchall()
    return {"actions": actions, "samples": [_preview_trigger(r) for r in sample]}


def _preview_trigger(row: tuple) -> dict[str, Any]:
    try:
        return {"code_name": row[4], "body": json.loads(trigger_body(row))}
    except ValueError as exc:
        return {"code_name": row[4], "event_key": row[0], "invalid": str(exc)}


def _history_key(row: dict[str, Any]) -> str | None:
    """Our event_key inside a history row (payload.metaData in the emulator; tolerate flatter shapes)."""
    payload = row.get("payload") if isinstance(row.get("payload"), dict) else {}
    for meta in (payload.get("metaData"), row.get("metaData"), payload):
        if isinstance(meta, dict) and isinstance(meta.get("event_key"), str):
            return meta["event_key"]
    return None


def _find_in_histories(client: ShopiMindClient, code_name: str, since: str, wanted: set[str]
                       ) -> tuple[set[str] | None, int, str | None]:
    """Which of `wanted` ShopiMind recorded for `code_name` since `since`: (found, requests, error)."""
    found: set[str] = set()
    offset = requests = 0
    while found != wanted:
        result = client.histories({
            "limit": HISTORY_PAGE, "offset": offset, "order": [{"field": "id", "type": "asc"}],
            "filter": [{"field": "code_name", "operator": "EQUALS", "values": code_name},
                       {"field": "date_creation", "operator": "GREATER_THAN_OR_EQUAL_TO", "values": since}],
        })
        requests += result.requests
        page = read_listing(result.body) if result.ok else None
        if page is None:
            return None, requests, result.error or f"unreadable event histories: {result.describe()}"
        found |= {k for row in page.items if (k := _history_key(row)) in wanted}
        if not page.more:
            break
        offset += page.size
    return found, requests, None


def reconcile(con: duckdb.DuckDBPyConnection, client: ShopiMindClient, ledger: Ledger,
              settings: DeliverySettings, keys: list[str] | None = None) -> dict[str, int]:
    """Settle in_flight/uncertain events (all of the destination, or `keys`) against the histories:
    found → sent; not found → failed (resent by the caller); histories unreachable → stay uncertain."""
    query = ("SELECT key, snapshot_date, customer_id, code_name, "
             "strftime(first_attempt_at AT TIME ZONE 'UTC' - to_seconds($margin), '%Y-%m-%dT%H:%M:%S.%gZ'), "
             "epoch(now()) - epoch(last_attempt_at) FROM delivery_state WHERE destination = $destination "
             "AND kind = 'event' AND status IN ('in_flight', 'uncertain')"
             + (" AND key IN (SELECT unnest($keys))" if keys is not None else ""))
    params = {"destination": ledger.destination, "margin": settings.reconcile_margin_s, "keys": keys}
    rows = con.execute(query, bind(query, params)).fetchall()
    stats = Counter()
    if not rows:
        return dict(stats)
    # An accepted trigger may take a moment to be listed: do not conclude "lost" too early.
    youngest = min(r[5] for r in rows)
    if youngest < settings.history_visibility_s:
        time.sleep(min(settings.history_visibility_s - youngest, max(client.time_left(), 0)))
    groups: dict[str, list[tuple]] = {}
    for row in rows:
        groups.setdefault(row[3], []).append(row)
    for code_name, group in groups.items():
        since = min(r[4] for r in group)
        found, requests, error = _find_in_histories(client, code_name, since, {r[0] for r in group})
        outcomes = []
        for key, day, customer_id, _, _, _ in group:
            if found is None:
                status, note = "uncertain", f"reconcile failed: {error}"
            elif key in found:
                status, note = "sent", "reconciled: found in event histories"
            else:
                status, note = "failed", "reconciled: not in event histories, to be resent"
            stats[status] += 1
            outcomes.append(Outcome("event", key, day, customer_id, code_name, status, requests=requests,
                                    error=None if status == "sent" else note, note=note))
        ledger.record(outcomes)
    return {{"sent": "found", "failed": "not_found", "uncertain": "unresolved"}[k]: v for k, v in stats.items()}


def _trigger_all(pool: ThreadPoolExecutor, client: ShopiMindClient, rows: list[tuple], gone_hint: str
                 ) -> list[Outcome]:
    return list(pool.map(lambda r: _trigger(client, r, gone_hint), rows))


def _send_events(con: duckdb.DuckDBPyConnection, client: ShopiMindClient, ledger: Ledger, pool: ThreadPoolExecutor,
                 chunks: Iterator[list[tuple]], boot: _Bootstrap) -> tuple[list[str], int, str | None]:
    """Mark each chunk in flight (committed), trigger it concurrently, record the outcomes; events refused
    because their type is gone are retried once after setup is re-run (if it was not already).
    Returns (keys that went uncertain, events not attempted for lack of time, fatal error)."""
    uncertain: list[str] = []
    not_attempted = 0
    fatal: str | None = None
    for rows in chunks:
        if fatal or client.time_left() <= 0:
            # Recorded as failed so that the next run (or the next day's, within carry_days) retries them.
            reason = fatal or "not attempted: run deadline reached"
            ledger.record([Outcome("event", r[0], r[1], r[2], r[4], "failed", error=reason) for r in rows])
            not_attempted += len(rows)
            continue
        boot.ready()
        ledger.mark_in_flight([(r[0], r[1], r[2], r[4]) for r in rows])
        outcomes = _trigger_all(pool, client, rows, boot.gone_hint("the event type"))
        if boot.can_heal() and any(o.setup_gone for o in outcomes):
            # A 400 is a refusal: ShopiMind recorded none of these, so resending them duplicates nothing.
            gone = {o.key for o in outcomes if o.setup_gone}
            ledger.record([_healing(o) if o.setup_gone else o for o in outcomes])
            boot.heal()  # a setup that fails raises: the refused events stay failed, retried next run
            retry = [r for r in rows if r[0] in gone]
            ledger.mark_in_flight([(r[0], r[1], r[2], r[4]) for r in retry])
            outcomes = _trigger_all(pool, client, retry, boot.gone_hint("the event type"))
        ledger.record(outcomes)
        uncertain += [o.key for o in outcomes if o.status == "uncertain"]
        fatal = fatal or next((o.error for o in outcomes if o.fatal), None)
    return uncertain, not_attempted, fatal


def deliver_events(con: duckdb.DuckDBPyConnection, client: ShopiMindClient, day: dt.date, destination: str,
                   settings: DeliverySettings = DeliverySettings(), run_id: str | None = None, *,
                   setup: Setup | None = None) -> dict:
    """Trigger every pending event of `day` (and failed ones of the carry window) not yet delivered.

    With `setup`, `setup(False)` is called before the first trigger (not at all when nothing is to be
    sent), and `setup(True)` once if ShopiMind answers that an event type is not found: the refused
    events are then retried once. Without it, such a refusal stops the run."""
    ledger = Ledger(con, destination, run_id)
    boot = _Bootstrap(setup, None)
    reconciled = Counter(reconcile(con, client, ledger, settings))  # crash leftovers first
    query, params = sql("shopimind_events"), _event_params(day, destination, settings)
    actions = _actions(con, query, params, "code_name")

    # Stale events: recorded once as suppressed_stale, never sent.
    stale = f"SELECT {_EVENT_COLUMNS} FROM ({query}) WHERE action = 'suppressed_stale' AND NOT already_suppressed"
    for rows in _stream(con, stale, params, 10_000):
        ledger.record([Outcome("event", r[0], r[1], r[2], r[4], "suppressed_stale",
                               note="older than max_event_age_days when derived") for r in rows])
    # Members ShopiMind cannot be addressed for (the trigger's contact takes an email, a phone or its own
    # numeric id; the exports carry only the email): recorded once as unaddressable, never sent.
    unaddressable = (f"SELECT {_EVENT_COLUMNS} FROM ({query}) WHERE action = 'unaddressable' "
                     "AND NOT already_unaddressable")
    for rows in _stream(con, unaddressable, params, 10_000):
        ledger.record([Outcome("event", r[0], r[1], r[2], r[4], "unaddressable",
                               error="no email or phone to address the contact by") for r in rows])

    select = (f"SELECT {_EVENT_COLUMNS} FROM ({query}) WHERE action = 'send' "
              "ORDER BY snapshot_date, code_name, event_key")
    with ThreadPoolExecutor(settings.concurrency, thread_name_prefix="shopimind") as pool:
        uncertain, not_attempted, fatal = _send_events(
            con, client, ledger, pool, _stream(con, select, params, settings.chunk_size), boot)
        # Lost answers during this run: look them up, resend those ShopiMind never recorded.
        for _ in range(settings.resend_rounds):
            if not uncertain or fatal or client.time_left() <= 0:
                break
            reconciled.update(reconcile(con, client, ledger, settings, uncertain))
            resend = ("SELECT e.event_key, e.snapshot_date, e.customer_id, e.email, e.code_name, e.metadata "
                      "FROM loyalty_events e JOIN delivery_state d ON d.destination = $destination "
                      "AND d.kind = 'event' AND d.key = e.event_key AND d.status = 'failed' "
                      "WHERE e.event_key IN (SELECT unnest($keys)) ORDER BY e.event_key")
            uncertain, late, fatal = _send_events(
                con, client, ledger, pool,
                _stream(con, resend, {"destination": destination, "keys": uncertain}, settings.chunk_size), boot)
            not_attempted += late
    if fatal:
        raise ShopiMindError(fatal)
    return {"actions": actions, "final": ledger.run_summary("event"), "reconciled": dict(reconciled),
            "not_attempted": not_attempted, "run_id": ledger.run_id, "setup_healed": boot.healed}


def pending_problems(con: duckdb.DuckDBPyConnection, destination: str) -> dict[str, int]:
    """Keys that need attention at this destination, whatever their day: {status: count}."""
    return dict(con.execute(
        "SELECT kind || '/' || status, count(*) FROM delivery_state WHERE destination = $destination "
        "AND status IN ('rejected', 'failed', 'uncertain', 'in_flight') GROUP BY ALL",
        {"destination": destination}).fetchall())


def replay(con: duckdb.DuckDBPyConnection, *, destination: str | None = None, kind: str | None = None,
           day: dt.date | None = None, code_name: str | None = None) -> int:
    """Make rejected keys eligible again once their cause is fixed (data corrected, event type
    redeclared...). They go out with the next run of their day (events; or of a day within carry_days
    after it) or of the newest day (accounts). Returns how many keys were released."""
    where = ["status = 'rejected'"]
    params: dict[str, Any] = {}
    for column, value in (("destination", destination), ("kind", kind), ("snapshot_date", day),
                          ("code_name", code_name)):
        if value is not None:
            where.append(f"{column} = ${column}")
            params[column] = value
    condition = " AND ".join(where)
    with transaction(con):
        n = con.execute(f"SELECT count(*) FROM delivery_state WHERE {condition}", params).fetchone()[0]
        # failed with no payload_hash: no longer matches the refused payload, so it is retried like a failure.
        con.execute("UPDATE delivery_state SET status = 'failed', payload_hash = NULL, updated_at = now(), "
                    "error = 'replay requested; was rejected: ' || coalesce(error, '') "
                    f"WHERE {condition}", params)
    return n
