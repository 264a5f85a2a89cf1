"""The analysts' read path: per-day Parquet files and a read-only catalog of views over them.

DuckDB allows one read-write process per database file, and a reader blocks the writer too. So
analysts never open the pipeline's file: each step publishes its day to
`<warehouse dir>/parquet/<table>/<YYYY-MM-DD>.parquet` (atomic rename), and
`<warehouse dir>/analytics.duckdb` holds only views over those globs. Views resolve their globs at
query time, so a new day shows up without touching the catalog: it is rebuilt only when a table is
published for the first time (or it is missing, or broken), in a temp file renamed over the old
one, which never disturbs an analyst holding it open.

Paths are data: they are bound as parameters where DuckDB allows it and quoted (and, in the views'
globs, escaped) where it does not, so a folder named `o'brien` or `data[1]` works as any other.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
from pathlib import Path

import duckdb

from ..tempfiles import remove_stale, temp_path
from .connection import sql_literal

CATALOG_NAME = "analytics.duckdb"


def parquet_root(warehouse: Path) -> Path:
    return Path(warehouse).parent / "parquet"


def catalog_path(warehouse: Path) -> Path:
    return Path(warehouse).parent / CATALOG_NAME


def publish_days(con: duckdb.DuckDBPyConnection, warehouse: Path, tables: list[str], day: dt.date,
                 built_at: float | None = None) -> list[Path]:
    """Write each table's rows of `day` to its Parquet file (replacing it atomically), then make sure the
    catalog has their views, looking at it once for all of them. A file written after `built_at` (epoch
    seconds: when the day's rows were built) already holds them and is left alone, so re-running an
    unchanged day does not churn the analysts' files. A table published for the first time has no view
    yet: the catalog is rebuilt without opening it to see."""
    first = set(tables) - set(_published(warehouse))
    written = [_write_day(con, warehouse, table, day, built_at) for table in tables]
    if first:
        refresh_catalog(warehouse)
    else:
        ensure_catalog(warehouse)
    return written


def _write_day(con: duckdb.DuckDBPyConnection, warehouse: Path, table: str, day: dt.date,
               built_at: float | None) -> Path:
    folder = parquet_root(warehouse) / table
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{day.isoformat()}.parquet"
    if built_at is not None and target.exists() and target.stat().st_mtime >= built_at:
        return target
    _copy(con, f"SELECT * FROM {table} WHERE snapshot_date = $day", {"day": day}, target)
    return target


def publish_current(con: duckdb.DuckDBPyConnection, warehouse: Path, table: str) -> Path:
    """Write a whole non-partitioned state table (e.g. delivery_state) as `<table>/current.parquet`."""
    folder = parquet_root(warehouse) / table
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "current.parquet"
    _copy(con, f"SELECT * FROM {table}", {}, target)
    ensure_catalog(warehouse)
    return target


def _copy(con: duckdb.DuckDBPyConnection, query: str, params: dict, target: Path) -> None:
    """`query`'s rows as Parquet at `target`, appearing complete or not at all."""
    remove_stale(target.parent)
    tmp = temp_path(target)
    try:
        # Rows in any order (a file is a set to its readers): both cores write, not one.
        con.execute("SET preserve_insertion_order = false")
        try:
            con.execute(f"COPY ({query}) TO $path (FORMAT parquet)", {**params, "path": str(tmp)})
        finally:
            con.execute("RESET preserve_insertion_order")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _published(warehouse: Path) -> list[str]:
    """The tables with a published file: one view each."""
    root = parquet_root(warehouse)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.parquet"))) if root.exists() else []


def ensure_catalog(warehouse: Path) -> Path:
    """The catalog with one view per published table: left alone when it has exactly those views and
    no WAL beside it, else rebuilt (refresh_catalog). Opening it read-only to look costs milliseconds;
    a rebuild costs a new database file."""
    target = catalog_path(warehouse)
    remove_stale(target.parent)
    if target.exists() and not _wal(target).exists():
        try:
            con = duckdb.connect(str(target), read_only=True)
            try:
                views = [v for (v,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal "
                                                    "ORDER BY view_name").fetchall()]
            finally:
                con.close()
            if views == _published(warehouse):
                return target
        except duckdb.Error:
            pass  # not a catalog we can read (a session holds it read-write, a broken file): rebuild
    return refresh_catalog(warehouse)


def refresh_catalog(warehouse: Path) -> Path:
    """(Re)build analytics.duckdb with one view per published table.

    Whatever an analyst left behind cannot break it: the catalog is built in a fresh temp file, and
    the WAL of a read-write session killed on the old catalog (which DuckDB would replay into the new
    file and refuse: "WAL does not match database file") is removed before the new file takes its
    place. The catalog holds nothing but these views, so no analyst's work is lost that was not
    already lost with their session.
    """
    root = parquet_root(warehouse)
    tables = _published(warehouse)
    target = catalog_path(warehouse)
    remove_stale(target.parent)
    tmp = temp_path(target)
    tmp.unlink()  # DuckDB creates the database file itself
    _wal(tmp).unlink(missing_ok=True)
    try:
        con = duckdb.connect(str(tmp))
        try:
            for table in tables:
                # Views cannot take parameters: the folder is quoted and its glob characters escaped.
                pattern = glob.escape(str(root / table)) + "/*.parquet"
                con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({sql_literal(pattern)}, "
                            "union_by_name = true)")
        finally:
            con.close()  # checkpoints: everything is in the file, no WAL is left
        _wal(tmp).unlink(missing_ok=True)
        _wal(target).unlink(missing_ok=True)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        _wal(tmp).unlink(missing_ok=True)
        raise
    return target


def _wal(database: Path) -> Path:
    return database.with_name(database.name + ".wal")
