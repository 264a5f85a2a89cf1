"""The warehouse side of delivery, for every destination: delivery_state (one current row per kind and
key), sync_log (append-only, one line per outcome) and the destination's own acknowledgements.

A chunk's outcomes are written in one transaction: the state merge, the log lines and the
acknowledgements (statements the destination gives, reading relation `outcomes`: e.g. ShopiMind
remembers the values it now holds) commit together or not at all.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from ...warehouse.connection import bind, sql_files, transaction
from .outcomes import Outcome, Subject

sql = sql_files(__package__)

_OUTCOME_SCHEMA = pa.schema([
    ("kind", pa.string()), ("key", pa.string()), ("snapshot_date", pa.date32()), ("customer_id", pa.string()),
    ("code_name", pa.string()), ("status", pa.string()), ("http_status", pa.int32()), ("error", pa.string()),
    ("requests", pa.int32()), ("attempt_inc", pa.int32()), ("payload_hash", pa.string()), ("note", pa.string()),
])
_IN_FLIGHT_SCHEMA = pa.schema([("kind", pa.string()), ("key", pa.string()), ("snapshot_date", pa.date32()),
                               ("customer_id", pa.string()), ("code_name", pa.string())])


class Ledger:
    """One run's ledger at one destination (delivery state is keyed by it: a shop's "sent" is not another's)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, destination: str, run_id: str | None = None, *,
                 acknowledge: Sequence[str] = ()) -> None:
        self.con, self.destination = con, destination
        self.run_id = run_id or f"adhoc-{uuid.uuid4()}"
        self.statements = (sql("ledger_state_merge"), sql("ledger_log_insert"), *acknowledge)

    def _write(self, name: str, table: pa.Table, statements: Sequence[str]) -> None:
        self.con.register(name, table)
        try:
            with transaction(self.con):
                for statement in statements:
                    self.con.execute(statement, bind(statement, {"destination": self.destination,
                                                                 "run_id": self.run_id}))
        finally:
            self.con.unregister(name)

    def mark_in_flight(self, subjects: list[Subject]) -> None:
        """Committed before their requests leave; counts the attempt."""
        columns = {name: [getattr(s, name) for s in subjects] for name in _IN_FLIGHT_SCHEMA.names}
        self._write("batch", pa.Table.from_pydict(columns, schema=_IN_FLIGHT_SCHEMA), [sql("ledger_mark_in_flight")])

    def record(self, outcomes: list[Outcome]) -> None:
        if outcomes:
            columns = {name: [getattr(o, name) for o in outcomes] for name in _OUTCOME_SCHEMA.names}
            self._write("outcomes", pa.Table.from_pydict(columns, schema=_OUTCOME_SCHEMA), self.statements)

    def run_summary(self, kind: str) -> dict[tuple[str, str | None], int]:
        """Final status of every key of `kind` this run touched: {(status, code_name): count}."""
        rows = self.con.execute(
            "SELECT d.status, d.code_name, count(*) FROM delivery_state d WHERE d.destination = $destination "
            "AND d.kind = $kind AND d.key IN (SELECT key FROM sync_log WHERE run_id = $run_id AND kind = $kind "
            "AND destination = $destination) GROUP BY ALL",
            {"destination": self.destination, "kind": kind, "run_id": self.run_id}).fetchall()
        return {(status, code): n for status, code, n in rows}


def pending_problems(con: duckdb.DuckDBPyConnection, destination: str) -> dict[str, int]:
    """Keys that need attention at this destination, whatever their day: {kind/status: count}."""
    return dict(con.execute(
        "SELECT kind || '/' || status, count(*) FROM delivery_state WHERE destination = $destination "
        "AND status IN ('rejected', 'failed', 'uncertain', 'in_flight') GROUP BY ALL",
        {"destination": destination}).fetchall())


def replay(con: duckdb.DuckDBPyConnection, *, destination: str | None = None, kind: str | None = None,
           day: dt.date | None = None, code_name: str | None = None) -> int:
    """Make rejected keys eligible again once their cause is fixed (data corrected, event type
    redeclared...). They go out with the next run that selects them (ShopiMind: the run of their day,
    or of a day within carry_days after it, for events; of the newest day for accounts). Returns how
    many keys were released."""
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
