"""Event triggers: each pending event of the day (and failed ones of the carry window) not yet delivered
(sql/shopimind_events.sql), one triggerEvent call each, effectively once: committed in_flight before its
request leaves, and an answer lost on the way is looked up in the histories (reconcile.py), never resent
blindly."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any, NamedTuple

import duckdb
from pydantic import ValidationError

from ..core.bootstrap import Bootstrap, Setup
from ..core.candidates import bounded_memory, count_actions, fetch, select, stream
from ..core.delivery import Delivery
from ..core.outcomes import Outcome, Subject, Uncertain
from ..core.sending import Batches
from .client import ShopiMindClient, ShopiMindError
from .delivery import DeliverySettings, ledger_for, sql
from .models import TriggerBody, Unaddressable, invalid_payload, read_trigger
from .reconcile import reconcile

RECORDED = 10_000  # rows per write when recording a selection that is not sent


class EventRow(NamedTuple):
    event_key: str
    snapshot_date: dt.date
    customer_id: str
    email: str | None
    code_name: str
    metadata: str | None  # JSON text

    @property
    def subject(self) -> Subject:
        return Subject("event", self.event_key, self.snapshot_date, self.customer_id, self.code_name)


# Events that went uncertain during the run and that the histories did not list: sent again once.
_RESEND = ("SELECT e.event_key, e.snapshot_date, e.customer_id, e.email, e.code_name, e.metadata "
           "FROM loyalty_events e JOIN delivery_state d ON d.destination = $destination "
           "AND d.kind = 'event' AND d.key = e.event_key AND d.status = 'failed' "
           "WHERE e.event_key IN (SELECT unnest($keys)) ORDER BY e.event_key")


def trigger_body(row: EventRow) -> bytes:
    """The triggerEvent body of an event row; ValueError (naming the field) when none can be made."""
    values = json.loads(row.metadata) if isinstance(row.metadata, str) else None
    if not isinstance(values, dict):
        raise ValueError(f"metadata: must be a JSON object (got {row.metadata!r:.100})")
    try:
        return TriggerBody.for_event(row.email, values, row.event_key).to_json()
    except ValidationError as exc:
        raise ValueError(invalid_payload(exc)) from None


def trigger(client: ShopiMindClient, row: EventRow) -> Outcome:
    """One event's outcome; raises the request's fate when it is not a plain answer (core.outcomes)."""
    try:
        body = trigger_body(row)
    except Unaddressable as exc:  # the selection leaves them out; never sent if one slips through
        return row.subject.outcome("unaddressable", error=str(exc))
    except ValueError as exc:  # never sent: a payload the API would refuse anyway
        return row.subject.outcome("rejected", error=f"not sent, the trigger cannot be built: {exc}")
    result = client.trigger(row.code_name, body)
    if not result.ok:
        raise result.fate()
    if problem := read_trigger(result.body):
        # A 2xx that is not ShopiMind's answer (a portal, a misrouted balancer): looked up, never trusted.
        raise Uncertain(f"2xx answer that is not ShopiMind's ({problem}): {result.describe()}",
                        http_status=result.status, requests=result.requests)
    return row.subject.outcome("sent", http_status=result.status, requests=result.requests)


def _params(day: dt.date, destination: str, settings: DeliverySettings) -> dict:
    return {"day": day, "destination": destination, "carry_days": settings.carry_days}


def preview_events(con: duckdb.DuckDBPyConnection, day: dt.date, destination: str,
                   settings: DeliverySettings | None = None) -> dict:
    """Dry run: what shopimind_events would do. Reads only."""
    settings = settings or DeliverySettings()
    with bounded_memory(con, settings.memory_limit):
        query, params = sql("shopimind_events"), _params(day, destination, settings)
        statement = select(EventRow, query, "action = 'send'", "snapshot_date, code_name, event_key") + " LIMIT $n"
        sample = fetch(con, EventRow, statement, {**params, "n": settings.samples})
        return {"actions": count_actions(con, query, params, "code_name"), "samples": [_preview(r) for r in sample]}


def _preview(row: EventRow) -> dict[str, Any]:
    try:
        return {"code_name": row.code_name, "body": json.loads(trigger_body(row))}
    except ValueError as exc:
        return {"code_name": row.code_name, "event_key": row.event_key, "invalid": str(exc)}


def deliver_events(con: duckdb.DuckDBPyConnection, client: ShopiMindClient, day: dt.date, destination: str,
                   settings: DeliverySettings | None = None, run_id: str | None = None, *,
                   setup: Setup | None = None) -> dict:
    """Trigger every pending event of `day` (and failed ones of the carry window) not yet delivered.

    With `setup`, `setup(False)` is called before the first trigger (not at all when nothing is to be
    sent), and `setup(True)` once if ShopiMind answers that an event type is not found: the refused
    events are then retried once. Without it, such a refusal stops the run."""
    settings = settings or DeliverySettings()
    with bounded_memory(con, settings.memory_limit):
        ledger = ledger_for(con, destination, run_id)
        boot = Bootstrap(setup, "the event type", "ShopiMind")
        reconciled = Counter(reconcile(con, client, ledger, settings))  # crash leftovers first
        query, params = sql("shopimind_events"), _params(day, destination, settings)
        actions = count_actions(con, query, params, "code_name")

        # Recorded once, never sent: stale events, and members ShopiMind cannot be addressed for (the trigger's
        # contact takes an email, a phone or its own numeric id; the exports carry only the email).
        for status, recorded, details in (
                ("suppressed_stale", "already_suppressed", {"note": "older than max_event_age_days when derived"}),
                ("unaddressable", "already_unaddressable", {"error": "no email or phone to address the contact by"})):
            where = f"action = '{status}' AND NOT {recorded}"
            for rows in stream(con, EventRow, select(EventRow, query, where), params, RECORDED):
                ledger.record([r.subject.outcome(status, **details) for r in rows])

        uncertain: list[str] = []
        with settings.pool() as pool:
            batches = Batches(pool, attempt_inc=0)  # marking in flight counts the attempt
            # Not attempted (deadline, a stop): recorded failed, so that this day's next run, or the next day's
            # within carry_days, retries them.
            delivery = Delivery(ledger, client.time_left, boot, in_flight=True, record_unattempted=True)

            def send(rows: list[EventRow], _target: Any) -> list[Outcome]:
                return batches.send(rows, lambda batch: [trigger(client, batch[0])])

            def watch(outcomes: list[Outcome]) -> None:
                uncertain.extend(o.key for o in outcomes if o.status == "uncertain")

            select_send = select(EventRow, query, "action = 'send'", "snapshot_date, code_name, event_key")
            delivery.send(stream(con, EventRow, select_send, params, settings.chunk_size), send, watch)
            # Lost answers during this run: look them up, resend those ShopiMind never recorded.
            for _ in range(settings.resend_rounds):
                if not uncertain or delivery.stopped or client.time_left() <= 0:
                    break
                reconciled.update(reconcile(con, client, ledger, settings, uncertain))
                resend = stream(con, EventRow, _RESEND, {"destination": destination, "keys": list(uncertain)},
                                settings.chunk_size)
                uncertain.clear()
                delivery.send(resend, send, watch)
        if delivery.stopped:
            raise ShopiMindError(delivery.stopped)
        return {"actions": actions, "final": ledger.run_summary("event"), "reconciled": dict(reconciled),
                "not_attempted": delivery.not_attempted, "run_id": ledger.run_id, "setup_healed": boot.healed}
