"""Members who leave the program: their LoyaltyAccount is deleted from ShopiMind (docs/shopimind.md,
"Members who leave").

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
from typing import NamedTuple

import duckdb

from ..core.bootstrap import Bootstrap, Setup
from ..core.candidates import bounded_memory, count_actions, first, select, stream
from ..core.delivery import Delivery
from ..core.outcomes import Failed, Outcome, SetupGone, Subject, Unsent
from ..core.sending import Batches
from .accounts import AccountRow, upsert
from .bulk import bulk_outcomes
from .client import Result, ShopiMindClient, ShopiMindError
from .delivery import DEFINITION, DeliverySettings, ledger_for, member_slices, sql
from .models import CUSTOMER_KEY_FIELD, RecordFilter, RecordListing, read_int, read_listing

PAGE = 100  # members per lookup, and records per listing page (the API's largest page)
_SEND = ("delete", "rekey")
NO_RECORD = "no record held"


@dataclass(frozen=True)
class LeavePolicy:
    """program.yaml's `on_leave` and `removal_grace_days`."""

    on_leave: str = "delete"  # delete | keep
    grace_days: int = 3


class DepartureRow(NamedTuple):
    customer_id: str
    snapshot_date: dt.date  # the day of the run
    reason: str  # opted_out | absent
    held_date: dt.date | None  # the snapshot of the values ShopiMind last acknowledged, which follow
    points_balance: int | None  # (all None when no push was acknowledged: then the action is `delete`)
    tier: str | None
    tier_since: dt.date | None
    next_expiry_date: dt.date | None
    next_expiry_amount: int | None
    written_s_ago: float  # since the record was last written
    action: str  # delete | rekey

    @property
    def subject(self) -> Subject:
        return Subject("account_delete", self.customer_id, self.snapshot_date, self.customer_id)

    def held(self) -> AccountRow:
        """The record as ShopiMind holds it, now with the customer key (re-keyed before deletion)."""
        return AccountRow(self.customer_id, self.held_date, self.points_balance, self.tier, self.tier_since,
                          self.next_expiry_date, self.next_expiry_amount, None)


class _HeldRecord(NamedTuple):
    """A record of a departed member, as bulk-delete takes it: by id."""

    record_id: int
    member: DepartureRow

    @property
    def subject(self) -> Subject:
        return self.member.subject


def _params(day: dt.date, destination: str, policy: LeavePolicy) -> dict:
    return {"day": day, "destination": destination, "on_leave": policy.on_leave, "grace_days": policy.grace_days}


def _counts(con: duckdb.DuckDBPyConnection, query: str, params: dict, over: tuple
            ) -> tuple[dict[str, int], dict[str, int]]:
    """(members per action, departures to act on per reason)."""
    actions: Counter = Counter()
    reasons: Counter = Counter()
    for (action, reason), n in count_actions(con, query, params, "reason", over=over).items():
        actions[action] += n
        if action in _SEND:
            reasons[reason] += n
    return dict(actions), dict(reasons)


def preview_departures(con: duckdb.DuckDBPyConnection, day: dt.date, destination: str, policy: LeavePolicy,
                       settings: DeliverySettings | None = None) -> dict:
    """Dry run: which members' records shopimind_accounts would delete. Reads only (record ids are
    looked up at ShopiMind when it is done for real)."""
    settings = settings or DeliverySettings()
    with bounded_memory(con, settings.memory_limit):
        query, params = sql("shopimind_departures"), _params(day, destination, policy)
        over = member_slices(con, day, settings)
        actions, reasons = _counts(con, query, params, over)
        statement = select(DepartureRow, query, f"action IN {_SEND}", "customer_id")
        sample = first(con, DepartureRow, statement, params, settings.samples, over)
        return {"actions": actions, "reasons": reasons,
                "samples": [{"customer_id": r.customer_id, "reason": r.reason, "action": r.action} for r in sample]}


# -- ShopiMind side: find the records, delete them ---------------------------------------------------

def _lookup_failed(result: Result, error: str | None = None) -> Unsent:
    """A lookup that failed: `failed` whatever the answer (retried next run), unless the definition is gone."""
    kind = SetupGone if not result.ok and isinstance(result.fate(), SetupGone) else Failed
    return kind(error or result.error, http_status=result.status, requests=result.requests)


def _find_records(client: ShopiMindClient, id_definition: int, keys: list[str]) -> tuple[dict[str, list[int]], int]:
    """Record ids per customer among `keys`, and the requests it took; raises the lookup's fate."""
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
                raise _lookup_failed(result)
            page = read_listing(result.body)
            if page is None or page.size != len(page.items):
                raise _lookup_failed(result, f"unreadable record listing: {result.describe()}")
            for row in page.items:
                key, record_id = row.get(CUSTOMER_KEY_FIELD), read_int(row.get("id"))
                if key not in wanted:  # never delete what was not asked for
                    raise _lookup_failed(result, f"record listing ignored the {CUSTOMER_KEY_FIELD} filter "
                                                 f"(answered {str(key)[:80]!r})")
                if record_id is None:
                    raise _lookup_failed(result, f"unreadable record id {str(row.get('id'))[:80]!r}")
                found[key].append(record_id)
            if not page.more:
                break
            offset += page.size
    return dict(found), requests


def _bulk_delete(client: ShopiMindClient, id_definition: int, batch: list[_HeldRecord]) -> list[Outcome]:
    ids = [r.record_id for r in batch]
    result = client.request("POST", f"/v1/custom-data-records/{id_definition}/bulk-delete",
                            content=json.dumps(ids).encode())  # idempotent: retried on lost answers
    return bulk_outcomes(result, batch, ids)


def _worst(outcome: Outcome) -> int:
    """A member's outcome is its worst record's: gone, failed, uncertain, rejected, sent."""
    if isinstance(outcome.cause, SetupGone):
        return 0
    return 1 + ("failed", "uncertain", "rejected", "sent").index(outcome.status)


class _Departures:
    """One run's deletions: re-key what needs it, find the records, delete them."""

    def __init__(self, client: ShopiMindClient, pool: ThreadPoolExecutor, settings: DeliverySettings) -> None:
        self.client, self.settings = client, settings
        size = min(settings.batch_size, 20)  # the SDK chunks bulk-delete at 20
        self.upserts, self.deletes = Batches(pool, size), Batches(pool, size)

    def __call__(self, rows: list[DepartureRow], id_definition: int) -> list[Outcome]:
        """The chunk's outcomes: re-key upserts (kind account), then one per member (account_delete)."""
        upserts = [dataclasses.replace(o, note="re-keyed before deletion")
                   for o in upsert(self.upserts, self.client, id_definition,
                                   [r.held() for r in rows if r.action == "rekey"])]
        rekeyed = {o.key for o in upserts if o.status == "sent"}
        members = {r.customer_id: r for r in rows}
        deletes = [members[o.key].subject.outcome(o.status, error=f"could not re-key the record: {o.error}",
                                                  requests=o.requests, attempt_inc=1, cause=o.cause)
                   for o in upserts if o.status != "sent"]
        targets = [r for r in rows if r.action == "delete" or r.customer_id in rekeyed]
        if targets:
            deletes += self._delete(targets, rekeyed, id_definition)
        return upserts + deletes

    def _delete(self, targets: list[DepartureRow], rekeyed: set[str], id_definition: int) -> list[Outcome]:
        # A write may take a moment to be listed: do not conclude "no record held" too early.
        youngest = 0.0 if rekeyed else min(r.written_s_ago for r in targets)
        if youngest < self.settings.history_visibility_s:
            time.sleep(min(self.settings.history_visibility_s - youngest, max(self.client.time_left(), 0)))
        try:
            found, lookup_requests = _find_records(self.client, id_definition, [r.customer_id for r in targets])
        except Unsent as exc:
            return [r.subject.fate(exc, attempt_inc=1) for r in targets]
        held = [_HeldRecord(i, r) for r in targets for i in found.get(r.customer_id, [])]
        per_member: dict[str, list[Outcome]] = defaultdict(list)
        for outcome in self.deletes.send(held, lambda batch: _bulk_delete(self.client, id_definition, batch)):
            per_member[outcome.key].append(outcome)
        outcomes = []
        for member in targets:
            ids = found.get(member.customer_id, [])
            if not ids and member.customer_id in rekeyed:
                late = "re-keyed in this run but not listed yet (writes are asynchronous): deleted by the next run"
                outcomes.append(member.subject.outcome("failed", error=late, attempt_inc=1))
            elif not ids:
                outcomes.append(member.subject.outcome("sent", requests=lookup_requests, attempt_inc=1,
                                                       note=NO_RECORD))
            else:
                worst = min(per_member[member.customer_id], key=_worst)
                outcomes.append(dataclasses.replace(worst, note=f"deleted record ids {ids}")
                                if worst.status == "sent" else worst)
        return outcomes


def deliver_departures(con: duckdb.DuckDBPyConnection, client: ShopiMindClient, day: dt.date, destination: str,
                       policy: LeavePolicy, settings: DeliverySettings | None = None,
                       run_id: str | None = None, *, id_definition: int | None = None,
                       setup: Setup | None = None) -> dict:
    """Delete the LoyaltyAccount of every member who left by `day` and whose record ShopiMind may hold.

    The definition id is `id_definition` when known, else `setup(False)` (called only if something is to
    be deleted); a request refused because the definition is gone gets `setup(True)` and one retry."""
    settings = settings or DeliverySettings()
    with bounded_memory(con, settings.memory_limit):
        ledger = ledger_for(con, destination, run_id)
        boot = Bootstrap(setup, DEFINITION, "ShopiMind", id_definition)
        query, params = sql("shopimind_departures"), _params(day, destination, policy)
        over = member_slices(con, day, settings)
        actions, reasons = _counts(con, query, params, over)
        final: Counter = Counter()

        def tally(outcomes: list[Outcome]) -> None:
            for o in outcomes:
                if o.kind == "account_delete":
                    final["no_record" if o.note == NO_RECORD else o.status] += 1
                elif o.status == "sent":
                    final["rekeyed"] += 1

        delivery = Delivery(ledger, client.time_left, boot)  # not attempted: nothing written, selected again
        if actions.get("delete") or actions.get("rekey"):
            with settings.pool() as pool:
                chunks = stream(con, DepartureRow, select(DepartureRow, query, f"action IN {_SEND}", "customer_id"),
                                params, settings.chunk_size, over)
                delivery.send(chunks, _Departures(client, pool, settings), tally)
        if delivery.stopped:
            raise ShopiMindError(delivery.stopped)
        return {"actions": actions, "reasons": reasons, "final": dict(final), "not_attempted": delivery.not_attempted,
                "run_id": ledger.run_id, "setup_healed": boot.healed}
