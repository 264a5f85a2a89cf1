"""The warehouse resource: the DuckDB file every daily asset opens, and the analysts' copies of its days."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from ..processes import announce
from ..program import Program
from .analytics import publish_current, publish_days
from .connection import connect, prepare


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB file. Only assets in the `duckdb` pool open it, so there is one writer at a time.

    Not a dagster_duckdb.DuckDBResource: all it would bring is `get_connection`, whose retry does not do
    what connection.connect does (only lock conflicts, polled every ≤2 s, a clear error; read-only opens),
    and its only release for Dagster 1.13 on the index (0.29.27) pins dagster==1.13.27.
    """

    path: str

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # The run holding the warehouse's pool slot says which process it is, so that if that process
        # dies the slot is freed (operations/dead_runs.py); for daemon and UI runs this is the first
        # code that runs in the run worker (a check re-executed alone may use no other resource).
        announce(context)

    @contextmanager
    def connect(self, program: Program | None = None, *, read_only: bool = False
                ) -> Iterator[duckdb.DuckDBPyConnection]:
        con = connect(self.path, read_only=read_only)
        try:
            if program is not None:
                prepare(con, program)
            yield con
        finally:
            con.close()

    def publish(self, con: duckdb.DuckDBPyConnection, tables: list[str], day: dt.date, built_at: float) -> None:
        """Copy the day of each table, built at `built_at`, to the analysts' Parquet files unless they
        are newer (see analytics.py)."""
        publish_days(con, Path(self.path), tables, day, built_at=built_at)

    def publish_current(self, con: duckdb.DuckDBPyConnection, tables: list[str]) -> None:
        """Copy whole state tables (not partitioned by day, e.g. delivery_state) to the analysts' files."""
        for table in tables:
            publish_current(con, Path(self.path), table)
