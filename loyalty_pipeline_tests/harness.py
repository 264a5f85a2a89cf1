"""A pipeline in a temp directory, driven through the real Dagster job, for scenario tests."""

from __future__ import annotations

import csv
import datetime as dt
from functools import cached_property
from pathlib import Path

import dagster as dg
import duckdb

from loyalty_pipeline.definitions import build_defs
from loyalty_pipeline.events.derive import build_events
from loyalty_pipeline.ingest.steps import ingest_export
from loyalty_pipeline.outbound.resources import OutboundResource
from loyalty_pipeline.outbound.shopimind.resources import ShopiMindResource
from loyalty_pipeline.program import ProgramResource, load_program
from loyalty_pipeline.settings import PROJECT_ROOT
from loyalty_pipeline.snapshots.steps import build_deltas, build_snapshot
from loyalty_pipeline.warehouse.connection import connect
from loyalty_pipeline.warehouse.resources import WarehouseResource

DEFAULT_PROGRAM = PROJECT_ROOT / "data" / "program.yaml"
ACCOUNT_HEADER = ["customer_id", "email", "enrolled", "points_balance", "lifetime_points", "tier",
                  "tier_since", "member_since", "next_expiry_date", "next_expiry_amount"]


def account(customer_id: str, points: int = 100, lifetime: int | None = None, tier: str = "Bronze",
            **overrides) -> dict:
    """One canonical export row with sensible defaults."""
    row = {
        "customer_id": customer_id, "email": f"{customer_id.lower()}@example.com", "enrolled": "true",
        "points_balance": points, "lifetime_points": points if lifetime is None else lifetime, "tier": tier,
        "tier_since": "2026-01-01", "member_since": "2025-06-01", "next_expiry_date": "",
        "next_expiry_amount": "",
    }
    row.update(overrides)
    return row


class Pipeline:
    def __init__(self, root: Path, program_path: Path = DEFAULT_PROGRAM, today: str | None = None,
                 shopimind: ShopiMindResource | None = None):
        self.root = root
        # Without a ShopiMind resource (an emulator's, in the delivery tests) runs leave out the
        # ShopiMind assets, which would rightly fail for want of an API key.
        self.shopimind = shopimind
        self.exports = root / "exports"
        self.warehouse = root / "warehouse" / "loyalty.duckdb"
        self.outbound = root / "outbound"
        self.program_path = program_path
        self.today = today
        self.defs = self.build()

    @cached_property
    def instance(self) -> dg.DagsterInstance:
        # Made on first use (≈0.3 s: its storage's migrations): the tests that call the steps directly need none.
        return dg.DagsterInstance.ephemeral()

    def resources(self) -> dict:
        return {
            "program": ProgramResource(program_path=str(self.program_path), exports_dir=str(self.exports),
                                       today=self.today),
            "warehouse": WarehouseResource(path=str(self.warehouse)),
            "outbound": OutboundResource(dir=str(self.outbound)),
            "shopimind": self.shopimind or ShopiMindResource(),
        }

    def build(self) -> dg.Definitions:
        # Like a code location: the API pull's asset and job only if the program pulls.
        try:
            pulls = load_program(self.program_path).source.pull.enabled
        except Exception:  # noqa: BLE001 — a broken program is the test's subject: its runs say why
            pulls = False
        return build_defs(self.resources(), pull=pulls)

    def write_accounts(self, day: str, rows: list[dict], header: list[str] = ACCOUNT_HEADER,
                       name: str = "accounts.csv") -> Path:
        return self.write_csv(day, name, header, rows)

    def write_csv(self, day: str, name: str, header: list[str], rows: list[dict]) -> Path:
        path = self.exports / day / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        return path

    def run(self, day: str, *, job: str = "daily_job", run_config: dict | None = None,
            tags: dict | None = None, expect_success: bool = True) -> dg.ExecuteInProcessResult:
        job_def = self.defs.resolve_job_def(job)
        selection = None
        if self.shopimind is None:
            graph = self.defs.resolve_asset_graph()
            selection = list((dg.AssetSelection.all() - dg.AssetSelection.groups("shopimind")).resolve(graph)
                             & job_def.asset_layer.executable_asset_keys)
        result = job_def.execute_in_process(
            partition_key=day, instance=self.instance, run_config=run_config, raise_on_error=False,
            asset_selection=selection, tags=tags,
        )
        if expect_success and not result.success:
            raise AssertionError(f"run for {day} failed:\n{failure_messages(result)}")
        return result

    def run_steps(self, day: str, today: str) -> dict:
        """The daily steps of `day` (ingest → snapshot → deltas → events) called directly on the DuckDB file,
        as the assets call them: no Dagster run, so no checks and no analysts' copies. The events' stats."""
        program, date = load_program(self.program_path), dt.date.fromisoformat(day)
        con = connect(self.warehouse)
        try:
            ingest_export(con, self.exports, date, program)
            build_snapshot(con, date, program)
            build_deltas(con, date)
            return build_events(con, date, program, dt.date.fromisoformat(today))
        finally:
            con.close()

    def query(self, sql: str, params: dict | list | None = None) -> list[tuple]:
        con = duckdb.connect(str(self.warehouse), read_only=True)
        try:
            return con.execute(sql, params or {}).fetchall()
        finally:
            con.close()

    def table(self, name: str, day: str | None = None) -> list[tuple]:
        where = f"WHERE snapshot_date = DATE '{day}'" if day else ""
        return self.query(f"SELECT * FROM {name} {where} ORDER BY ALL")


def failure_messages(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(
        f"{e.step_key}: {e.step_failure_data.error.message}"
        for e in result.all_events if e.is_step_failure and e.step_failure_data.error
    )


def day(offset: int, start: dt.date = dt.date(2026, 3, 1)) -> str:
    return (start + dt.timedelta(days=offset)).isoformat()


def table_rows(value: dg.TableMetadataValue) -> list[dict]:
    """The rows of a table in run metadata (warehouse/metadata.py `query_table`), as dicts."""
    return [record.data for record in value.records]
