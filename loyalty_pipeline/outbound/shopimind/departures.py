"""Members who leave the program: their LoyaltyAccount is deleted from ShopiMind (README "Members who leave").

ShopiMind's loyalty use case defines LoyaltyAccount as "one row per enrolled customer" (shared/seeds/000).
A member who opts out, or who is missing from `removal_grace_days` consecutive exports, has its record
removed with the documented routes (`on_leave: keep` in program.yaml keeps it instead).

Finding the record: bulk-delete takes record ids, and a record stores `contact_id` as ShopiMind's canonical
contact id (resolved server-side from our `{"by": "id_customer"}`), so a listing cannot say which record is
which member. Each record therefore also carries our customer id (`models.CUSTOMER_KEY_FIELD`, added to an
existing definition by the append-only `extend`), and the day's departed members are looked up 100 at a
time: `GET /v1/custom-data-records/{id}` with `filters: [{field: customer_id, operator: IN, values}]`,
`fields: [id, customer_id]`; their ids then go to `POST …/bulk-delete`, at most `batch_size` per call.
Requests are proportional to the departures, not to the records held. Paging through every record instead
would cost total/100 listings on every day with a departure, and still could not map contact ids to
customers; remembering ids is impossible, since saves answer counts only.
Records written before the field existed (account_sync_state.keyed not true) are upserted once with it
("re-keyed": the values ShopiMind last acknowledged) before the lookup. A member the lookup does not find
holds no record (never landed, deleted by hand, definition re-created): that is acknowledged too, except
for a record re-keyed in this very run, which may not be listed yet (writes are asynchronous): it stays
`failed` and the next run deletes it.

Ledger: delivery_state / sync_log kind `account_delete`, key = customer_id, like the upserts. An
acknowledged delete clears the member's account_sync_state, so a member who comes back is written again
and a departed member is deleted once: a re-run finds nothing held and sends nothing. bulk-delete is
idempotent (unknown ids skipped), so a lost answer is simply retried; an answer whose counters do not add
up (`models.read_bulk`, the same reader as the upserts') is `uncertain` and retried by the next run; a
refusal is `rejected` until replayed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import groupby

import duckdb

from ...warehouse.connection import bind
from .client import Result, ShopiMindClient, ShopiMindError
from .delivery import (
    _SETUP_GONE,
    _TOO_LARGE,
    DeliverySettings,
    Ledger,
    Outcome,
    Setup,
    _BatchSize,
    _Bootstrap,
    _healing,
    _save_all,
    _stream,
    sql,
)
from .models import (
    CUSTOMER_KEY_FIELD,
    RecordFilter,
    RecordListing,
    read_bulk,
    read_int,
    read_listing,
    rejected_index,
    rejected_message,
)

PAGE = 100  # members per lookup, and records per listing page (the API's largest page)
_COLUMNS = ("customer_id, reason, snapshot_date, points_balance, tier, tier_since, next_expiry_date, "
            "next_expiry_amount, written_s_ago, action")
_SEND = ("delete", "rekey")


@dataclass(frozen=True)
class LeavePolicy:
    """program.yaml's `on_leave` and `removal_grace_days`."""

    on_leave: str = "delete"  # delete | keep
    grace_days: int = 3


def _params(day: dt.date, destination: str, policy: LeavePolicy) -> dict:
    return {"day": day, "destination": destination, "on_leave": policy.on_leave, "grace_days": policy.grace_days}


def _counts(con: duckdb.DuckDBPyConnection, query: str, params: dict) -> tuple[dict[str, int], dict[str, int]]:
    """(members per action, departures to act on per reason)."""
    statement = f"SELECT action, reason, count(*) FROM ({query}) GROUP BY ALL"
    actions: Counter = Counter()
    reasons: Counter = Counter()
    for action, reason, n in con.execute(statement, bind(statement, params)).fetchall():
        actions[action] += n
        if action in _SEND:
            reasons[reason] += n
    return dict(actions), dict(reasons)


def preview_departures(con: duckdb.DuckDBPyConnection, day: dt.date, destination: str, policy: LeavePolicy,
                       settings: DeliverySettings | None = None) -> dict:
    """Dry run: which members' records shopimind_accounts would delete. Reads only (record ids are
    looked up at ShopiMind when it is done for real)."""
    settings = settings or DeliverySettings()
    query, params = sql("shopimind_departures"), _params(day, destination, policy)
    actions, reasons = _counts(con, query, params)
    statement = (f"SELECT customer_id, reason, action FROM ({query}) WHERE action IN ('delete', 'rekey') "
                 "ORDER BY customer_id LIMIT $n")
    sample = con.execute(statement, bind(statement, {**params, "n": settings.samples})).fetchall()
    return {"actions": actions, "reasons": reasons,
            "samples": [{"customer_id": c, "reason": r, "action": a} for c, r, a in sample]}


# -- ShopiMind side: find the records, delete them ---------------------------------------------------

@dataclass
class _Call:
    """What one request (or a lookup's requests) came to, for the members it concerned."""

    status: str  # sent | rejected | failed | uncertain | gone (the definition is not there)
    result: Result | None = None
    error: str | None = None
    requests: int = 0


def _failed(result: Result, error: str | None = None) -> _Call:
    gone = result.outcome == "rejected" and _SETUP_GONE.search(result.error or "")
    return _Call("gone" if gone else "failed", result, error or result.error, result.requests)


def _find_records(client: ShopiMindClient, id_definition: int, keys: list[str]
                  ) -> tuple[dict[str, list[int]], _Call | None, int]:
    """Record ids per customer among `keys`: (found, the failure if the lookup failed, requests)."""
    found: dict[str, list[int]] = defaultdict(list)
    requests = 0
    for start in range(0, len(keys), PAGE):
        wanted = set(keys[start:start + PAGE])
        offset = 0
        while True:
            listing = RecordListing(filters=[RecordFilter(field=CUSTOMER_KEY_FIELD, operator="IN",
                                                          values=sorted(wanted))],
                                    fields=["id", CUSTOMER_KEY_FIELD], order=[{"field": "id", "type": "asc"}],
                                    limit=PAGE, offset=offset)
            result = client.get(f"/v1/custom-data-records/{id_definition}", listing.params())
            requests += result.requests
            if not result.ok:
                return found, _failed(result), requests
            page = read_listing(result.body)
            if page is None or page.size != len(page.items):
                return found, _failed(result, f"unreadable record listing: {result.describe()}"), requests
            for row in page.items:
                key, record_id = row.get(CUSTOMER_KEY_FIELD), read_int(row.get("id"))
                if key not in wanted:  # never delete what was not asked for
                    return found, _failed(result, f"record listing ignored the {CUSTOMER_KEY_FIELD} filter "
                                                  f"(answered {str(key)[:80]!r})"), requests
                if record_id is None:
                    return found, _failed(result, f"unreadable record id {str(row.get('id'))[:80]!r}"), requests
                found[key].append(record_id)
            if not page.more:
                break
            offset += page.size
    return dict(found), None, requests


def _bulk_delete(client: ShopiMindClient, id_definition: int, ids: list[int], sizer: _BatchSize
                 ) -> dict[int, _Call]:
    """Delete `ids` (one call, split if ShopiMind finds it too large): the outcome of each id."""
    result = client.request("POST", f"/v1/custom-data-records/{id_definition}/bulk-delete",
                            content=json.dumps(ids).encode())  # idempotent: retried on lost answers
    if result.outcome in ("failed", "uncertain"):
        return dict.fromkeys(ids, _Call("failed", result, result.error, result.requests))
    if result.ok:
        refused, problem = read_bulk(result.body, ids)
        if problem:  # which ids were taken is unknown: retried by the next run (deleting is idempotent)
            return dict.fromkeys(ids, _Call("uncertain", result, f"2xx answer that does not add up ({problem}): "
                                            f"{result.describe()}", result.requests))
        return {i: _Call("rejected", result, refused[n], result.requests) if n in refused
                else _Call("sent", result, None, result.requests) for n, i in enumerate(ids)}
    items = result.body.get("rejected_items") if isinstance(result.body, dict) else None
    if not isinstance(items, list) or not items:
        if len(ids) > 1 and _TOO_LARGE.search(result.error or ""):
            half = len(ids) // 2
            sizer.shrink(half)
            return {**_bulk_delete(client, id_definition, ids[:half], sizer),
                    **_bulk_delete(client, id_definition, ids[half:], sizer)}
        return dict.fromkeys(ids, _failed(result) if _SETUP_GONE.search(result.error or "")
                             else _Call("rejected", result, result.error, result.requests))
    # A whole-request refusal listing items (all invalid): each id refused, with its own reason if told.
    reasons = {index: rejected_message(item) for item in items if (index := rejected_index(item, ids)) is not None}
    return {i: _Call("rejected", result, reasons.get(n, result.error), result.requests) for n, i in enumerate(ids)}


def _delete_all(pool: ThreadPoolExecutor, client: ShopiMindClient, id_definition: int, ids: list[int],
                sizer: _BatchSize) -> dict[int, _Call]:
    size = sizer.size
    batches = [ids[i:i + size] for i in range(0, len(ids), size)]
    out: dict[int, _Call] = {}
    for calls in pool.map(lambda b: _bulk_delete(client, id_definition, b, sizer), batches):
        out.update(calls)
    return out


_WORST = ("gone", "failed", "uncertain", "rejected", "sent")  # a member's outcome is its worst id's
NO_RECORD = "no record held"


def _outcome(key: str, day: dt.date, status: str, call: _Call, note: str | None = None) -> Outcome:
    """The account_delete outcome of one member; `gone` (the definition is not there) is recorded failed."""
    result = call.result
    return Outcome("account_delete", key, day, key, None, "failed" if status == "gone" else status,
                   http_status=result.status if result else None, error=None if status == "sent" else call.error,
                   requests=call.requests, attempt_inc=1, note=note, setup_gone=status == "gone")


def _depart(pool: ThreadPoolExecutor, client: ShopiMindClient, id_definition: int, rows: list[tuple],
            day: dt.date, sizer: _BatchSize, settings: DeliverySettings, gone_hint: str
            ) -> tuple[list[Outcome], list[Outcome]]:
    """Re-key what needs it, find the records, delete them: (upsert outcomes, delete outcomes)."""
    upserts: list[Outcome] = []
    rekey = sorted((r for r in rows if r[9] == "rekey"), key=lambda r: r[2])
    for snapshot_date, group in groupby(rekey, key=lambda r: r[2]):
        # The values ShopiMind last acknowledged (from that snapshot), now with the customer key.
        records = [(r[0], r[3], r[4], r[5], r[6], r[7], None) for r in group]
        upserts += [dataclasses.replace(o, note="re-keyed before deletion")
                    for o in _save_all(pool, client, id_definition, records, snapshot_date, sizer, gone_hint)]
    rekeyed = {o.key for o in upserts if o.status == "sent"}
    deletes = [_outcome(o.key, day, "gone" if o.setup_gone else o.status,
                        _Call(o.status, None, f"could not re-key the record: {o.error}", o.requests))
               for o in upserts if o.status != "sent"]
    targets = [r for r in rows if r[9] == "delete" or r[0] in rekeyed]
    if not targets:
        return upserts, deletes
    # A write may take a moment to be listed: do not conclude "no record held" too early.
    youngest = 0.0 if rekeyed else min(r[8] for r in targets)
    if youngest < settings.history_visibility_s:
        time.sleep(min(settings.history_visibility_s - youngest, max(client.time_left(), 0)))
    keys = [r[0] for r in targets]
    found, failure, lookup_requests = _find_records(client, id_definition, keys)
    if failure is not None:
        return upserts, deletes + [_outcome(k, day, failure.status, failure) for k in keys]
    calls = _delete_all(pool, client, id_definition, [i for k in keys for i in found.get(k, [])], sizer)
    lookup = _Call("sent", None, None, lookup_requests)
    for key in keys:
        ids = found.get(key, [])
        if not ids and key in rekeyed:
            late = "re-keyed in this run but not listed yet (writes are asynchronous): deleted by the next run"
            deletes.append(_outcome(key, day, "failed", _Call("failed", None, late)))
        elif not ids:
            deletes.append(_outcome(key, day, "sent", lookup, NO_RECORD))
        else:
            worst = min((calls[i] for i in ids), key=lambda c: _WORST.index(c.status))
            deletes.append(_outcome(key, day, worst.status, worst,
                                    f"deleted record ids {ids}" if worst.status == "sent" else None))
    return upserts, deletes


def deliver_departures(con: duckdb.DuckDBPyConnection, client: ShopiMindClient, day: dt.date, destination: str,
                       policy: LeavePolicy, settings: DeliverySettings | None = None,
                       run_id: str | None = None, *, id_definition: int | None = None,
                       setup: Setup | None = None) -> dict:
    """Delete the LoyaltyAccount of every member who left by `day` and whose record ShopiMind may hold.

    The definition id is `id_definition` when known, else `setup(False)` (called only if something is to
    be deleted); a request refused because the definition is gone gets `setup(True)` and one retry."""
    settings = settings or DeliverySettings()
    ledger = Ledger(con, destination, run_id)
    boot = _Bootstrap(setup, id_definition)
    boot.ready_done = boot.ready_done or id_definition is not None
    query, params = sql("shopimind_departures"), _params(day, destination, policy)
    actions, reasons = _counts(con, query, params)
    final: Counter = Counter()
    not_attempted = 0
    fatal: str | None = None
    if actions.get("delete") or actions.get("rekey"):
        sizer = _BatchSize(min(settings.batch_size, 20))  # the SDK chunks bulk-delete at 20
        select = f"SELECT {_COLUMNS} FROM ({query}) WHERE action IN ('delete', 'rekey') ORDER BY customer_id"
        what = "the LoyaltyAccount definition"
        with ThreadPoolExecutor(settings.concurrency, thread_name_prefix="shopimind") as pool:
            for rows in _stream(con, select, params, settings.chunk_size):
                if fatal or client.time_left() <= 0:
                    not_attempted += len(rows)  # no state written: selected again by the next run
                    continue
                upserts, deletes = _depart(pool, client, boot.ready(), rows, day, sizer, settings, boot.gone_hint(what))
                if boot.can_heal() and any(o.setup_gone for o in upserts + deletes):
                    # Records go with their definition: on the one set up again, the lookup finds what is left.
                    ledger.record([_healing(o) if o.setup_gone else o for o in upserts + deletes])
                    id_definition = boot.heal()  # a setup that fails raises: what was refused stays failed
                    upserts, deletes = _depart(pool, client, id_definition, rows, day, sizer, settings,
                                               boot.gone_hint(what))
                deletes = [dataclasses.replace(o, error=f"{o.error}: {boot.gone_hint(what)}", fatal=True)
                           if o.setup_gone else o for o in deletes]
                ledger.record(upserts + deletes)
                final.update("no_record" if o.note == NO_RECORD else o.status for o in deletes)
                final.update("rekeyed" for o in upserts if o.status == "sent")
                fatal = next((o.error for o in deletes if o.fatal), None)
    if fatal:
        raise ShopiMindError(fatal)
    return {"actions": actions, "reasons": reasons, "final": dict(final), "not_attempted": not_attempted,
            "run_id": ledger.run_id, "setup_healed": boot.healed}
