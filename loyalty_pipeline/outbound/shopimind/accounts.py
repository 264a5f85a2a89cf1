"""LoyaltyAccount upserts: the record of every enrolled member of the newest snapshot whose mapped values
changed since ShopiMind last acknowledged them (sql/shopimind_accounts.sql), `batch_size` per
saveCustomDataRecords call."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any, NamedTuple

import duckdb
from pydantic import ValidationError

from ..core.bootstrap import Bootstrap, Setup
from ..core.candidates import bounded_memory, count_actions, first, select, stream
from ..core.delivery import Delivery
from ..core.outcomes import Outcome, Subject
from ..core.sending import Batches
from .bulk import bulk_outcomes
from .client import ShopiMindClient, ShopiMindError
from .delivery import DEFINITION, DeliverySettings, ledger_for, member_slices, sql
from .models import LoyaltyAccountRecord, contact_of, invalid_payload


class AccountRow(NamedTuple):
    """A member's mapped values, as of `snapshot_date`."""

    customer_id: str
    snapshot_date: dt.date
    points_balance: int
    tier: str
    tier_since: dt.date | None
    next_expiry_date: dt.date | None
    next_expiry_amount: int | None
    payload_hash: str | None  # md5 of the mapped values (None: a re-keyed record, departures.py)

    @property
    def subject(self) -> Subject:
        return Subject("account", self.customer_id, self.snapshot_date, self.customer_id,
                       payload_hash=self.payload_hash)


class _Built(NamedTuple):
    row: AccountRow
    record: dict[str, Any]

    @property
    def subject(self) -> Subject:
        return self.row.subject


def account_record(row: AccountRow) -> dict[str, Any]:
    return LoyaltyAccountRecord(
        contact_id=contact_of(row.customer_id), points_balance=row.points_balance, tier=row.tier,
        tier_since=row.tier_since, next_expiry_date=row.next_expiry_date,
        next_expiry_amount=row.next_expiry_amount, customer_id=row.customer_id,
    ).model_dump(mode="json")


def _build(rows: list[AccountRow]) -> tuple[list[_Built], list[Outcome]]:
    """Each row with its record. A row no record can be made of (a value the API's type cannot carry,
    e.g. a date in year 99999) is `rejected` with the field and value, and never sent: one bad row
    must not stop the others (it is not retried until its values change, or a replay)."""
    built, refused = [], []
    for row in rows:
        try:
            built.append(_Built(row, account_record(row)))
        except ValidationError as exc:
            refused.append(row.subject.outcome(
                "rejected", error=f"not sent, the record cannot be built: {invalid_payload(exc)}"))
    return built, refused


def _save(client: ShopiMindClient, id_definition: int, batch: list[_Built]) -> list[Outcome]:
    records = [b.record for b in batch]
    return bulk_outcomes(client.save_records(id_definition, json.dumps(records).encode()), batch, records)


def upsert(batches: Batches, client: ShopiMindClient, id_definition: int, rows: list[AccountRow]) -> list[Outcome]:
    """Every row's outcome: refused here when no record can be built, else as ShopiMind answered."""
    built, refused = _build(rows)
    return refused + batches.send(built, lambda batch: _save(client, id_definition, batch))


def _params(day: dt.date, destination: str) -> dict:
    return {"day": day, "destination": destination}


def preview_accounts(con: duckdb.DuckDBPyConnection, day: dt.date, destination: str,
                     settings: DeliverySettings | None = None) -> dict:
    """Dry run: what shopimind_accounts would do. Reads only."""
    settings = settings or DeliverySettings()
    with bounded_memory(con, settings.memory_limit):
        query, params, over = sql("shopimind_accounts"), _params(day, destination), member_slices(con, day, settings)
        actions = {a: n for (a,), n in count_actions(con, query, params, over=over).items()}
        statement = select(AccountRow, query, "action = 'send'", "customer_id")
        built, refused = _build(first(con, AccountRow, statement, params, settings.samples, over))
        return {"actions": actions, "samples": [b.record for b in built]
                + [{"customer_id": o.key, "invalid": o.error} for o in refused]}


def deliver_accounts(con: duckdb.DuckDBPyConnection, client: ShopiMindClient, day: dt.date, destination: str,
                     id_definition: int | None, settings: DeliverySettings | None = None,
                     run_id: str | None = None, *, setup: Setup | None = None) -> dict:
    """Upsert the LoyaltyAccount of every enrolled member of `day` whose mapped values changed.

    With `setup`, the definition id comes from `setup(False)`, called only if something is to be sent,
    and a batch refused because the definition is gone gets `setup(True)` and one retry. Without it,
    `id_definition` is used and such a refusal stops the run."""
    settings = settings or DeliverySettings()
    with bounded_memory(con, settings.memory_limit):
        ledger = ledger_for(con, destination, run_id)
        boot = Bootstrap(setup, DEFINITION, "ShopiMind", id_definition)
        query, params, over = sql("shopimind_accounts"), _params(day, destination), member_slices(con, day, settings)
        actions = {a: n for (a,), n in count_actions(con, query, params, over=over).items()}
        with settings.pool() as pool:
            batches = Batches(pool, settings.batch_size)
            delivery = Delivery(ledger, client.time_left, boot)  # not attempted: nothing written, selected again
            chunks = stream(con, AccountRow, select(AccountRow, query, "action = 'send'", "customer_id"), params,
                            settings.chunk_size * settings.batch_size, over)
            delivery.send(chunks, lambda rows, id_definition: upsert(batches, client, id_definition, rows))
        if delivery.stopped:
            raise ShopiMindError(delivery.stopped)
        final = Counter()
        for (status, _), n in ledger.run_summary("account").items():
            final[status] += n
        return {"actions": actions, "final": dict(final), "not_attempted": delivery.not_attempted,
                "batch_size": batches.size, "run_id": ledger.run_id, "definition_id": boot.target,
                "setup_healed": boot.healed}
