"""The analysts' read path: per-day Parquet files and a read-only catalog of views over them.

DuckDB allows one read-write process per database file, and a reader blocks the writer too. So
analysts never open the pipeline's file: each step publishes its day to
`<warehouse dir>/parquet/<table>/<YYYY-MM-DD>.parquet` (atomic rename), and
`<warehouse dir>/analytics.duckdb` holds only views over those globs. Views resolve their globs at
query time, so a new day shows up without touching the catalog; the catalog itself is rebuilt in
a temp file and renamed over the old one, which never disturbs an analyst holding it open.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import duckdb

CATALOG_NAME = "analytics.duckdb"


def parquet_root(warehouse: Path) -> Path:
    return Path(warehouse).parent / "parquet"


def catalog_path(warehouse: Path) -> Path:
    return Path(warehouse).parent / CATALOG_NAME


def publish_day(con: duckdb.DuckDBPyConnection, warehouse: Path, table: str, day: dt.date,
                built_at: float | None = None) -> Path:
    """Write `table`'s rows of `day` to its Parquet file (replacing it atomically), then the catalog.
    A file written after `built_at` (epoch seconds: when the day's rows were built) already holds
    them and is left alone, so re-running an unchanged day does not churn the analysts' files."""
    folder = parquet_root(warehouse) / table
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{day.isoformat()}.parquet"
    if built_at is not None and target.exists() and target.stat().st_mtime >= built_at:
        return target
    tmp = folder / f".{day.isoformat()}.parquet.tmp"
    con.execute(
        f"COPY (SELECT * FROM {table} WHERE snapshot_date = $day) TO '{tmp}' (FORMAT parquet)", {"day": day}
    )
    os.replace(tmp, target)
    refresh_catalog(warehouse)
    return target


def publish_current(con: duckdb.DuckDBPyConnection, warehouse: Path, table: str) -> Path:
    """Write a whole non-partitioned state table (e.g. delivery_state) as `<table>/current.parquet`."""
    folder = parquet_root(warehouse) / table
    folder.mkdir(parents=True, exist_ok=True)
    target, tmp = folder / "current.parquet", folder / f".current.parquet.{os.getpid()}.tmp"
    con.execute(f"COPY (SELECT * FROM {table}) TO '{tmp}' (FORMAT parquet)")
    os.replace(tmp, target)
    refresh_catalog(warehouse)
    return target


def refresh_catalog(warehouse: Path) -> Path:
    """(Re)build analytics.duckdb with one view per published table."""
    root = parquet_root(warehouse)
    tables = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.parquet"))) if root.exists() else []
    target = catalog_path(warehouse)
    tmp = target.with_name(f".{CATALOG_NAME}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    try:
        for table in tables:
            pattern = str(root / table / "*.parquet").replace("'", "''")
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{pattern}', union_by_name = true)")
    finally:
        con.close()
    os.replace(tmp, target)
    return target
