"""What to send, out of DuckDB: a destination's selection (SQL with an `action` column per row), counted
per action, and streamed in chunks of typed rows.

Slices. A selection that diffs every member against what the destination holds (ShopiMind's accounts
and departures: the day's snapshot against account_sync_state and delivery_state, 10 M rows each at
10 M members) would build hash tables and a sort the size of the members. It is therefore run once per
slice: a range of customer_id (a NULL bound is open), which its SQL applies to every table it reads,
`($lo IS NULL OR customer_id >= $lo) AND ($hi IS NULL OR customer_id < $hi)`, so that each join and
sort holds one slice.

Memory limit. DuckDB keeps the blocks a scan read cached up to its memory_limit (the warehouse's: 1 GB),
and every slice scans the day's snapshot and the state tables, so the cache would follow the members
once the joins no longer do (≈ 26 MB of cached blocks per million members). `bounded_memory` lowers
the limit while a delivery runs (DeliverySettings.memory_limit): the cache is then evicted as it fills,
and a slice's joins fit in it. The slices follow each
other in customer_id order, so the rows of a selection ordered by customer_id come out in the same
order and in the same chunks as from one query. A member's row may only depend on that member's rows
(and on figures of the whole day, e.g. its newest snapshot date), so that a slice run after earlier
chunks were recorded selects what one query run before them would have.
"""

from __future__ import annotations

import math
import re
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple, TypeVar

import duckdb

from ...warehouse.connection import bind

R = TypeVar("R", bound=NamedTuple)

WHOLE: tuple[dict[str, str | None], ...] = ({"lo": None, "hi": None},)  # one slice: every member
_SAMPLE_PER_SLICE = 1000  # sampled members per slice to place the bounds (±3 % on a slice's size)


_UNITS = {"bytes": 1, "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "tb": 1000 ** 4,
          "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3, "tib": 1024 ** 4}


def _bytes(size: str, *, shown: bool = False) -> float:
    """'256MB', '953.6 MiB' in bytes. `shown`: DuckDB's display of a limit, which cuts it to 0.1 of its
    unit (1 GB reads 953.6 MiB): the middle of that range, which DuckDB displays the same."""
    number, unit = re.fullmatch(r"\s*([\d.]+)\s*([a-zA-Z]*)\s*", size).groups()
    return (float(number) + (0.05 if shown else 0)) * _UNITS[unit.lower() or "bytes"]


@contextmanager
def bounded_memory(con: duckdb.DuckDBPyConnection, limit: str | None) -> Iterator[None]:
    """DuckDB's memory_limit at most `limit` inside the block (never raised), restored after it. The
    setting is the database instance's: the warehouse connection the delivery runs on, and its cursors."""
    before = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    if not limit or _bytes(limit) >= _bytes(before, shown=True):
        yield
        return
    con.execute(f"SET memory_limit = '{limit}'")
    try:
        yield
    finally:
        con.execute(f"SET memory_limit = '{round(_bytes(before, shown=True))}B'")


def slices(con: duckdb.DuckDBPyConnection, members: str, params: dict[str, Any], size: int
           ) -> tuple[dict[str, str | None], ...]:
    """Bounds ({lo, hi}) of consecutive customer_id ranges of about `size` of the members (`members`: a
    query of their customer_id), covering every possible key. One slice when the members fit in one."""
    statement = f"SELECT count(*) FROM ({members})"
    n = con.execute(statement, bind(statement, params)).fetchone()[0]
    count = math.ceil(n / size) if size > 0 else 1
    if count <= 1:
        return WHOLE
    # A reservoir sample places the bounds at its quantiles without sorting the members.
    statement = f"SELECT customer_id FROM ({members}) USING SAMPLE reservoir({count * _SAMPLE_PER_SLICE} ROWS)"
    sample = sorted({r[0] for r in con.execute(statement, bind(statement, params)).fetchall()})
    bounds = sorted({sample[len(sample) * i // count] for i in range(1, count)})
    edges = [None, *bounds, None]
    return tuple({"lo": lo, "hi": hi} for lo, hi in zip(edges, edges[1:], strict=False))


def select(row: type[NamedTuple], query: str, where: str, order: str = "") -> str:
    """The columns of `row` (its fields, named once there) of the rows of `query` that match `where`."""
    return f"SELECT {', '.join(row._fields)} FROM ({query}) WHERE {where}" + (f" ORDER BY {order}" if order else "")


def stream(con: duckdb.DuckDBPyConnection, row: type[R], statement: str, params: dict[str, Any], size: int,
           over: Sequence[dict[str, str | None]] = WHOLE) -> Iterator[list[R]]:
    """The rows of `statement` as `row`s, `size` at a time, slice after slice of `over` (a chunk may span
    two); the caller writes to the warehouse between chunks (each chunk's outcomes).

    A slice's rows are first kept in a temporary table (DuckDB's memory, spilled past its limit), then
    read a chunk at a time by queries that end before the caller writes: a query left open (a cursor)
    would keep every row written since it began in memory (DuckDB cannot checkpoint under an open
    read), i.e. the whole run's outcomes."""
    table, make, chunk = f"candidates_{uuid.uuid4().hex}", row._make, []
    try:
        for bounds in over:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {statement}",
                        bind(statement, {**params, **bounds}))
            start = 0
            while rows := con.execute(f"SELECT * FROM {table} WHERE rowid >= $start AND rowid < $end ORDER BY rowid",
                                      {"start": start, "end": start + size - len(chunk)}).fetchall():
                start += len(rows)
                chunk.extend(make(r) for r in rows)
                if len(chunk) == size:
                    yield chunk
                    chunk = []
    finally:
        con.execute(f"DROP TABLE IF EXISTS {table}")
    if chunk:
        yield chunk


def first(con: duckdb.DuckDBPyConnection, row: type[R], statement: str, params: dict[str, Any], n: int,
          over: Sequence[dict[str, str | None]] = WHOLE) -> list[R]:
    """The first `n` rows of `statement` over the slices of `over` (a sample in a dry run)."""
    if n <= 0:
        return []
    chunks = stream(con, row, statement, params, n, over)
    try:
        return next(chunks, [])
    finally:
        chunks.close()  # drops its temporary table now


def fetch(con: duckdb.DuckDBPyConnection, row: type[R], statement: str, params: dict[str, Any]) -> list[R]:
    """All the rows of `statement` as `row`s: for a small selection (a sample, what is in doubt)."""
    return [row._make(r) for r in con.execute(statement, bind(statement, params)).fetchall()]


def count_actions(con: duckdb.DuckDBPyConnection, query: str, params: dict[str, Any], *by: str,
                  over: Sequence[dict[str, str | None]] = WHOLE) -> dict[tuple, int]:
    """How many rows of `query` per (action, *by), summed over the slices of `over`."""
    statement = f"SELECT {', '.join(['action', *by])}, count(*) FROM ({query}) GROUP BY ALL"
    counts: Counter = Counter()
    for bounds in over:
        for r in con.execute(statement, bind(statement, {**params, **bounds})).fetchall():
            counts[tuple(r[:-1])] += r[-1]
    return dict(counts)
