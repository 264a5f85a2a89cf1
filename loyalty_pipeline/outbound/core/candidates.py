"""What to send, out of DuckDB: a destination's selection (SQL with an `action` column per row), counted
per action, and streamed in chunks of typed rows. Memory is flat in the number of members."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple, TypeVar

import duckdb

from ...warehouse.connection import bind

R = TypeVar("R", bound=NamedTuple)


def select(row: type[NamedTuple], query: str, where: str, order: str = "") -> str:
    """The columns of `row` (its fields, named once there) of the rows of `query` that match `where`."""
    return f"SELECT {', '.join(row._fields)} FROM ({query}) WHERE {where}" + (f" ORDER BY {order}" if order else "")


def stream(con: duckdb.DuckDBPyConnection, row: type[R], statement: str, params: dict[str, Any], size: int
           ) -> Iterator[list[R]]:
    """The rows of `statement` as `row`s, `size` at a time, from a cursor of their own so that the caller
    can write to the warehouse meanwhile (each chunk's outcomes)."""
    cursor = con.cursor()
    try:
        cursor.execute(statement, bind(statement, params))
        make = row._make
        while rows := cursor.fetchmany(size):
            yield [make(r) for r in rows]
    finally:
        cursor.close()


def fetch(con: duckdb.DuckDBPyConnection, row: type[R], statement: str, params: dict[str, Any]) -> list[R]:
    """All the rows of `statement` as `row`s: for a small selection (a sample, what is in doubt)."""
    return [row._make(r) for r in con.execute(statement, bind(statement, params)).fetchall()]


def count_actions(con: duckdb.DuckDBPyConnection, query: str, params: dict[str, Any], *by: str
                  ) -> dict[tuple, int]:
    """How many rows of `query` per (action, *by)."""
    statement = f"SELECT {', '.join(['action', *by])}, count(*) FROM ({query}) GROUP BY ALL"
    return {tuple(r[:-1]): r[-1] for r in con.execute(statement, bind(statement, params)).fetchall()}
