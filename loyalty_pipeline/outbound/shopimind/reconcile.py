"""Settling events whose delivery is in doubt (in_flight after a crash, uncertain after a lost answer)
against ShopiMind's event histories, before anything is resent (DESIGN.md invariant 9)."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from typing import Any, NamedTuple

import duckdb

from ..core.candidates import fetch
from ..core.ledger import Ledger
from ..core.outcomes import Subject
from .client import ShopiMindClient
from .delivery import DeliverySettings
from .models import read_listing

HISTORY_PAGE = 100
_IN_DOUBT = ("SELECT key, snapshot_date, customer_id, code_name, "
             "strftime(first_attempt_at AT TIME ZONE 'UTC' - to_seconds($margin), '%Y-%m-%dT%H:%M:%S.%gZ') AS since, "
             "epoch(now()) - epoch(last_attempt_at) AS age_s FROM delivery_state WHERE destination = $destination "
             "AND kind = 'event' AND status IN ('in_flight', 'uncertain')")


class _InDoubt(NamedTuple):
    key: str
    snapshot_date: dt.date
    customer_id: str
    code_name: str
    since: str  # the first attempt, minus the clock-skew margin, as the histories' filter takes it
    age_s: float  # since the last attempt

    @property
    def subject(self) -> Subject:
        return Subject("event", self.key, self.snapshot_date, self.customer_id, self.code_name)


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
    query = _IN_DOUBT + (" AND key IN (SELECT unnest($keys))" if keys is not None else "")
    rows = fetch(con, _InDoubt, query, {"destination": ledger.destination, "margin": settings.reconcile_margin_s,
                                        "keys": keys})
    stats = Counter()
    if not rows:
        return dict(stats)
    # An accepted trigger may take a moment to be listed: do not conclude "lost" too early.
    youngest = min(r.age_s for r in rows)
    if youngest < settings.history_visibility_s:
        time.sleep(min(settings.history_visibility_s - youngest, max(client.time_left(), 0)))
    groups: dict[str, list[_InDoubt]] = {}
    for row in rows:
        groups.setdefault(row.code_name, []).append(row)
    for code_name, group in groups.items():
        found, requests, error = _find_in_histories(client, code_name, min(r.since for r in group),
                                                    {r.key for r in group})
        outcomes = []
        for row in group:
            if found is None:
                status, note = "uncertain", f"reconcile failed: {error}"
            elif row.key in found:
                status, note = "sent", "reconciled: found in event histories"
            else:
                status, note = "failed", "reconciled: not in event histories, to be resent"
            stats[status] += 1
            outcomes.append(row.subject.outcome(status, requests=requests, error=None if status == "sent" else note,
                                                note=note))
        ledger.record(outcomes)
    return {{"sent": "found", "failed": "not_found", "uncertain": "unresolved"}[k]: v for k, v in stats.items()}
