"""Helpers for the pull tests: a program.yaml that pulls from a stand-in, the vendors' objects per day,
and a day's pipeline outcome (the real daily steps on a real DuckDB file)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from loyalty_pipeline.devtools.standins import loyaltylion as ll
from loyalty_pipeline.devtools.standins import voucherify as vf
from loyalty_pipeline.events.derive import build_events
from loyalty_pipeline.ingest.steps import ingest_export
from loyalty_pipeline.program import Program, load_program
from loyalty_pipeline.snapshots.steps import build_deltas, build_snapshot
from loyalty_pipeline.warehouse.connection import connect
from loyalty_pipeline_tests.ingest.helpers import FIXTURES, derived_tables, program_for

VENDORS = FIXTURES / "vendors"
D1, D2, D3 = (dt.date(2026, 3, d) for d in (1, 2, 3))
LL_ENV = {"LOYALTYLION_API_KEY": ll.API_KEY}
VF_ENV = {"VOUCHERIFY_APP_ID": vf.APP_ID, "VOUCHERIFY_APP_TOKEN": vf.APP_TOKEN}
FAST = {"backoff_base_s": 0.001, "backoff_max_s": 0.01}  # PullClient: retries without waiting


def objects(folder: str, day: dt.date) -> list[dict]:
    """The vendors' published objects of one fixture day (fixtures/README.md, "Vendor exports")."""
    return [json.loads(line) for line in (VENDORS / folder / f"{day}.jsonl").read_text().splitlines()]


def pull_program(root: Path, platform: str, base_url: str, **pull) -> Program:
    """data/program.yaml reading `platform`, pulling from `base_url` without client-side pacing."""
    root.mkdir(parents=True, exist_ok=True)
    settings = {"enabled": True, "base_url": base_url, "requests_per_second": 1000, **pull}
    return load_program(program_for(root, platform, pull=settings))


def as_file(path: Path, records: list[dict]) -> Path:
    """The objects written by hand as the adapter reads them: one JSON text a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def outcome(root: Path, program: Program, exports: Path, days: list[dt.date], today: dt.date) -> dict:
    """Process `days` of `exports` in order: snapshots, quarantine, deltas and events (without file lineage)."""
    con = connect(root / "warehouse.duckdb")
    try:
        for day in days:
            ingest_export(con, exports, day, program)
            build_snapshot(con, day, program)
            build_deltas(con, day)
            build_events(con, day, program, today)
        return derived_tables(con)
    finally:
        con.close()
