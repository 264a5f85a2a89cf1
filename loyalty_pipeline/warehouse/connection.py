"""Opening the warehouse: one writer at a time, a schema that is always there, per-day replaces, and
the per-connection setup every stage's SQL relies on (`prepare`).

DuckDB lets a single process open a file read-write. Dagster serialises our writers through the
`duckdb` concurrency pool; the lock retry below covers everything else (a CLI run next to the
daemon, a test, an analyst who opened the file read-write by mistake) with a clear error at the end.
(dagster_duckdb.DuckDBResource does not do this job: it retries every IOException, a file that is no
database too, 10 times over ~100 s with doubling sleeps, so a lock freed after 52 s is taken at 102 s;
it always opens read-write and ends with DuckDB's raw error. See WarehouseResource.)
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from ..settings import duckdb_memory_limit

if TYPE_CHECKING:
    from ..program import Program

WAREHOUSE_POOL = "duckdb"  # Dagster concurrency pool shared by every asset that opens the warehouse
_LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "lock on file")


class WarehouseLockedError(RuntimeError):
    pass


def sql_files(package: str) -> Callable[[str], str]:
    """`sql(name)` → the text of `<package>/sql/<name>.sql`: each stage keeps its SQL in its own sql/
    folder (`sql = sql_files(__package__)` in the module that runs it)."""
    folder = resources.files(package).joinpath("sql")

    def sql(name: str) -> str:
        return folder.joinpath(f"{name}.sql").read_text()

    return sql


_sql = sql_files(__package__)  # the warehouse's own: the macros every stage shares


def connect(path: str | Path, *, read_only: bool = False, lock_timeout_s: float = 120.0,
            memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """Open the warehouse (waiting out another writer's lock); read-write, its schema brought up to date
    (schema.py).
    `memory_limit`: DuckDB's, default LOYALTY_DUCKDB_MEMORY_LIMIT (settings.py)."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    limit = memory_limit or duckdb_memory_limit()
    config = {"memory_limit": limit} if limit else {}
    deadline = time.monotonic() + lock_timeout_s
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only, config=config)
            break
        except duckdb.IOException as exc:
            if not any(m in str(exc) for m in _LOCK_MARKERS) or time.monotonic() > deadline:
                if any(m in str(exc) for m in _LOCK_MARKERS):
                    raise WarehouseLockedError(
                        f"{path} is locked by another process for {lock_timeout_s:.0f}s; analysts should "
                        "use data/warehouse/analytics.duckdb or the Parquet files, not the pipeline's file"
                    ) from exc
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    if not read_only:
        from .schema import migrate  # here, not at the top: schema.py runs each migration in transaction() below

        migrate(con)
    return con


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN … COMMIT, or ROLLBACK on any error. The error that stopped the block is the one raised:
    a ROLLBACK that fails too (DuckDB may already have ended the transaction, e.g. on a full disk)
    is only noted on it, never raised over it."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException as exc:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error as rollback_error:
            exc.add_note(f"(the rollback failed too: {rollback_error})")
        raise
    con.execute("COMMIT")


def replace_day(con: duckdb.DuckDBPyConnection, table: str, day: dt.date, select_sql: str,
                params: dict | None = None) -> int:
    """Replace `table`'s rows of `day` with `select_sql`'s, inside the caller's transaction."""
    con.execute(f"DELETE FROM {table} WHERE snapshot_date = $day", {"day": day})
    insert = f"INSERT INTO {table} BY NAME {select_sql}"
    con.execute(insert, bind(insert, {"day": day, **(params or {})}))
    return count_day(con, table, day)


def sql_literal(value: str) -> str:
    """`value` as a SQL string literal, for the few statements DuckDB cannot prepare (CREATE VIEW)."""
    return "'" + value.replace("'", "''") + "'"


def bind(statement: str, params: dict) -> dict:
    """The subset of `params` that `statement` uses (DuckDB rejects unused named parameters)."""
    return {k: v for k, v in params.items() if re.search(rf"\${k}\b", statement)}


def count_day(con: duckdb.DuckDBPyConnection, table: str, day: dt.date) -> int:
    return con.execute(f"SELECT count(*) FROM {table} WHERE snapshot_date = $day", {"day": day}).fetchone()[0]


def latest_earlier_day(con: duckdb.DuckDBPyConnection, table: str, day: dt.date) -> dt.date | None:
    """The latest day before `day` that `table` has rows of (None: none). For snapshots, the day a day is
    compared with, however far back (DESIGN invariant 4)."""
    return con.execute(f"SELECT max(snapshot_date) FROM {table} WHERE snapshot_date < $day", {"day": day}).fetchone()[0]


def count_day_and_previous(con: duckdb.DuckDBPyConnection, table: str, day: dt.date
                           ) -> tuple[int, dt.date | None, int]:
    """`table`'s rows of `day`, the latest earlier day it has rows of (None: none), and that day's rows."""
    previous = latest_earlier_day(con, table, day)
    return count_day(con, table, day), previous, count_day(con, table, previous) if previous else 0


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    """The strict parsers of validation (sql/macros.sql), shared by every step that reads raw text or
    matches ids as validation normalises them."""
    con.execute(_sql("macros"))


def prepare(con: duckdb.DuckDBPyConnection, program: Program) -> None:
    """Per-connection setup: UTC session, parsing macros, and the program's tier names."""
    con.execute("SET TimeZone = 'UTC'")
    install_macros(con)
    con.execute("CREATE OR REPLACE TEMP TABLE tier_aliases (alias VARCHAR, tier VARCHAR, rank INTEGER)")
    con.executemany("INSERT INTO tier_aliases VALUES (?, ?, ?)", program.tier_alias_rows())
    # The program's tiers as configured: name, rank, threshold (on program.tier_basis), benefits.
    con.execute("CREATE OR REPLACE TEMP TABLE tiers "
                "(name VARCHAR, rank INTEGER, threshold BIGINT, benefits VARCHAR[])")
    con.executemany("INSERT INTO tiers VALUES (?, ?, ?, ?)",
                    [(t.name, t.rank, t.threshold, list(t.benefits)) for t in program.ordered_tiers()])
