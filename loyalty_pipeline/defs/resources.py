"""Resources shared by every domain: the program and its exports, and the warehouse."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from ..dead_runs import announce
from ..program import Program, load_program
from ..warehouse.analytics import publish_current, publish_day
from ..warehouse.connection import connect
from ..warehouse.daily import prepare


class ProgramResource(dg.ConfigurableResource):
    """program.yaml, the exports directory, and what "today" is (injectable for tests and replays)."""

    program_path: str
    exports_dir: str
    today: str | None = None  # ISO date; default: LOYALTY_TODAY, else today in the program's time zone

    def load(self) -> Program:
        return load_program(self.program_path)

    @property
    def exports(self) -> Path:
        return Path(self.exports_dir)

    def today_date(self) -> dt.date:
        override = self.today or os.environ.get("LOYALTY_TODAY")
        if override:
            return dt.date.fromisoformat(override)
        return dt.datetime.now(self.load().tz).date()


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB file. Only assets in the `duckdb` pool open it, so there is one writer at a time."""

    path: str

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # The run holding the warehouse's pool slot says which process it is, so that if that process
        # dies the slot is freed (dead_runs.py); for daemon and UI runs this is the first
        # code that runs in the run worker.
        if context.instance is not None and context.run is not None:
            announce(context.instance, context.run)

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
        are newer (see warehouse/analytics.py)."""
        for table in tables:
            publish_day(con, Path(self.path), table, day, built_at=built_at)

    def publish_current(self, con: duckdb.DuckDBPyConnection, tables: list[str]) -> None:
        """Copy whole state tables (not partitioned by day, e.g. delivery_state) to the analysts' files."""
        for table in tables:
            publish_current(con, Path(self.path), table)


class OutboundResource(dg.ConfigurableResource):
    """Where files for other systems are written: one folder per destination (e.g. reelevant/)."""

    dir: str

    def folder(self, destination: str) -> Path:
        return Path(self.dir) / destination
