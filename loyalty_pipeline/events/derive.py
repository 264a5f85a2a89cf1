"""Derive the day's marketing events (table loyalty_events) from its deltas and snapshots.

The derivation is one set-based statement (sql/events.sql); Python only passes the
program's knobs, replaces the day in one transaction, and validates the stored payloads against
the catalogue's models, streaming them from DuckDB in batches.
"""

from __future__ import annotations

import datetime as dt
import functools

import duckdb
from pydantic import TypeAdapter

from ..ingest.files import ExportError
from ..program import Program
from ..warehouse import fingerprints
from ..warehouse.connection import bind, prepare, replace_day, sql_files, transaction
from .catalogue import CATALOGUE

sql = sql_files(__package__)

# Payloads validated at once (_validate_day). Small: pydantic builds a batch's models all at once, and
# more live objects than the collector's youngest generation holds (700) get them promoted and the
# whole process's heap (Dagster's) walked again and again: 20,000 at a time is slower than one by one.
_VALIDATE_BATCH = 250


class EventDerivationError(RuntimeError):
    """The day's events could not be derived consistently (nothing was stored for the day)."""


def stale_before(program: Program, today: dt.date) -> dt.date:
    """Business dates before this one are more than max_event_age_days old: stored as suppressed_stale."""
    return today - dt.timedelta(days=program.max_event_age_days)


def enabled_event_types(program: Program) -> list[str]:
    return [code for code in CATALOGUE if program.event_enabled(code)]


def build_events(con: duckdb.DuckDBPyConnection, day: dt.date, program: Program, today: dt.date,
                 send_stale: bool = False, force: bool = False) -> dict:
    """Replace the day's rows of loyalty_events; return counts per type and status, and the tier matrix."""
    unknown = sorted(set(program.events) - set(CATALOGUE))
    if unknown:
        raise EventDerivationError(f"program.yaml events: unknown event type(s) {unknown}; "
                                   f"known: {sorted(CATALOGUE)}")
    snapshot_rows = con.execute("SELECT count(*) FROM snapshots WHERE snapshot_date = $day",
                                {"day": day}).fetchone()[0]
    if snapshot_rows == 0:
        raise ExportError(f"no snapshot for {day}: materialize loyalty_snapshot for that day first")
    dates = [d for (d,) in con.execute("SELECT DISTINCT snapshot_date FROM snapshots WHERE snapshot_date <= $day "
                                        "ORDER BY 1", {"day": day}).fetchall()]
    previous = dates[-2] if len(dates) > 1 else None
    stale_deltas = con.execute(
        "SELECT count(*) FROM account_deltas WHERE snapshot_date = $day "
        "AND previous_snapshot_date IS DISTINCT FROM $previous", {"day": day, "previous": previous}).fetchone()[0]
    if stale_deltas:
        raise ExportError(f"account_deltas of {day} compare with another day than the latest earlier "
                          f"snapshot ({previous}): materialize account_deltas for {day} first")

    # The events of D read D's deltas and the snapshots of D and of every earlier day (first seen,
    # reminders already reached, the approaching cool-down): all of them are in the fingerprint.
    stale = day < stale_before(program, today) and not send_stale
    fp = fingerprints.fingerprint("events", fingerprints.stored(con, "deltas", day),
                                  fingerprints.history(con, "snapshot", day), program.model_dump(mode="json"), stale)
    if reused := fingerprints.reuse(con, "events", day, fp, force):
        return {**reused, "today": today, "stale_before": stale_before(program, today)}

    prepare(con, program)  # temp tables tiers, tier_aliases
    windows = program.expiry_reminder_days
    con.execute("CREATE OR REPLACE TEMP TABLE reminder_windows (days INTEGER)")
    con.executemany("INSERT INTO reminder_windows VALUES (?)", [(w,) for w in windows])
    # The approaching cool-down looks at the snapshot days less than `cooldown` days before D, each
    # against its own previous snapshot day.
    earlier = [(d, p) for p, d in zip(dates, dates[1:], strict=False)
               if day > d > day - dt.timedelta(days=program.approaching_cooldown_days)]
    con.execute("CREATE OR REPLACE TEMP TABLE approach_days (day DATE, prev_day DATE)")
    if earlier:
        con.executemany("INSERT INTO approach_days VALUES (?, ?)", earlier)
    params = {
        "previous": previous,
        # The earliest snapshot day the cool-down reads (none: after P, an empty range the scans skip).
        "cooldown_from": min((p for _, p in earlier), default=day),
        "default_reason": program.default_reason,
        "grace_days": program.downgrade_grace_days,
        "max_window": max(windows, default=0),
        "approach_threshold": program.approaching_tier_threshold,
        "basis": program.tier_basis,
        "stale_before": stale_before(program, today),
        "send_stale": send_stale,
        "enabled": enabled_event_types(program),
        "max_age": program.max_event_age_days,
    }
    with transaction(con):
        # Derived once; what the rules hold back (old enrolments) is counted for ops, never stored.
        con.execute(f"CREATE OR REPLACE TEMP TABLE derived_events AS {sql('events')}",
                    bind(sql("events"), {"day": day, **params}))
        rows = replace_day(con, "loyalty_events", day,
                           "SELECT * EXCLUDE (held_back) FROM derived_events WHERE NOT held_back")
        held_back = dict(con.execute("SELECT code_name, count(*) FROM derived_events WHERE held_back GROUP BY ALL")
                         .fetchall())
        con.execute("DROP TABLE derived_events")
        duplicates = con.execute(
            "SELECT count(*) - count(DISTINCT event_key) FROM loyalty_events WHERE snapshot_date = $day",
            {"day": day}).fetchone()[0]
        if duplicates:  # a derivation bug; the transaction rolls back and the day keeps its old events
            raise EventDerivationError(f"{day}: {duplicates} duplicate event keys derived")
        _validate_day(con, day)

        by_type = dict(con.execute(
            "SELECT code_name, count(*) FROM loyalty_events WHERE snapshot_date = $day GROUP BY ALL",
            {"day": day}).fetchall())
        by_status = dict(con.execute(
            "SELECT status, count(*) FROM loyalty_events WHERE snapshot_date = $day GROUP BY ALL",
            {"day": day}).fetchall())
        return fingerprints.record(con, "events", day, fp, {
            "events": rows,
            "baseline": previous is None,
            "previous_snapshot_date": previous,
            "today": today,
            "stale_before": params["stale_before"],
            "send_stale": send_stale,
            # Every enabled type, zeros included, so each one is a continuous series in the UI.
            "by_type": {code: by_type.get(code, 0) for code in params["enabled"]},
            "by_status": {status: by_status.get(status, 0) for status in ("pending", "suppressed_stale")},
            # Enrolments not announced because member_since is older than max_event_age_days before D.
            "held_back": {"loyalty.enrolled": held_back.get("loyalty.enrolled", 0)}
            if "loyalty.enrolled" in params["enabled"] else {},
            "tier_matrix": tier_matrix(con, day, previous, program),
        })


def _validate_day(con: duckdb.DuckDBPyConnection, day: dt.date) -> None:
    """Every stored payload must be exactly what its catalogue model produces: same fields in the same
    order, same types, no nulls (compared as JSON text, which is the fastest way through pydantic).

    A batch of one event type at a time goes through pydantic as one JSON array (its loop, not
    Python's: 0.06 s instead of 0.2 s for 77 k events); only a batch that differs is gone through
    row by row, for the message naming the event."""
    batches = con.execute(
        "SELECT code_name, rowid // $batch, '[' || string_agg(metadata::VARCHAR, ',') || ']' FROM loyalty_events "
        "WHERE snapshot_date = $day GROUP BY ALL", {"day": day, "batch": _VALIDATE_BATCH})
    while batch := batches.fetchone():
        code, chunk, payloads = batch
        try:
            adapter = _payloads(code)
            if adapter.dump_json(adapter.validate_json(payloads), exclude_none=True).decode() == payloads:
                continue
        except ValueError:
            pass
        _validate_rows(con, day, code, chunk)


@functools.cache
def _payloads(code: str) -> TypeAdapter:
    """A list of `code`'s payloads, as its catalogue model validates and writes each one."""
    return TypeAdapter(list[CATALOGUE[code].metadata_model])


def _validate_rows(con: duckdb.DuckDBPyConnection, day: dt.date, code: str, chunk: int) -> None:
    """The batch `chunk` of `code`'s payloads, one by one: raise on the first that is not canonical."""
    model = CATALOGUE[code].metadata_model
    for key, metadata in con.execute(
            "SELECT event_key, metadata::VARCHAR FROM loyalty_events WHERE snapshot_date = $day "
            "AND code_name = $code AND rowid // $batch = $chunk ORDER BY rowid",
            {"day": day, "code": code, "batch": _VALIDATE_BATCH, "chunk": chunk}).fetchall():
        try:
            canonical = model.model_validate_json(metadata).model_dump_json(exclude_none=True)
        except ValueError as exc:
            raise EventDerivationError(f"{day}: {code} {key[:12]}: invalid metadata {metadata}: {exc}") from exc
        if canonical != metadata:
            raise EventDerivationError(f"{day}: {code} {key[:12]}: metadata {metadata} is not {canonical}")
    # Unreachable (a batch differs only where one of its rows does), but never a silent pass.
    raise EventDerivationError(f"{day}: {code}: a batch of payloads is not what its model writes")


def tier_matrix(con: duckdb.DuckDBPyConnection, day: dt.date, previous: dt.date | None,
                program: Program) -> str:
    """Markdown: members of D by tier on P (rows) and tier on D (columns); `(new)` = absent on P."""
    if previous is None:
        return "_baseline: no previous snapshot_"
    cells = con.execute(sql("tier_matrix"), {"day": day, "previous": previous}).fetchall()
    counts = {(before, after): n for before, after, n in cells}
    tiers = [t.name for t in program.ordered_tiers()]
    rows = [t for t in [*tiers, "(none)", "(new)"] if any(b == t for b, _ in counts)]
    cols = [t for t in [*tiers, "(none)"] if any(a == t for _, a in counts)]
    lines = ["| previous ↓ / new → | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    lines += [f"| {r} | " + " | ".join(str(counts.get((r, c), "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)
