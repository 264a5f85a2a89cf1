"""The same simulated program, exported canonically and in each platform's shape, gives the same
snapshots, deltas, events and quarantine (table to table, lineage columns aside). Each day goes through
the daily steps, called directly on a real DuckDB file (Pipeline.run_steps)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from loyalty_pipeline.devtools.sample.generator import generate_sample
from loyalty_pipeline.program import load_program
from loyalty_pipeline_tests.harness import Pipeline
from loyalty_pipeline_tests.ingest.helpers import platform_pipeline

END = dt.date(2026, 3, 3)
DAYS = 3
MEMBERS = 300
BAD_ROW_RATE = 0.03  # every kind of bad row, several times a day
# The injected "Diamond" rows are unknown tiers, which by default stop the day's outbound (tiers_known):
# tolerated here, so that every day's deltas and events are compared too.
TOLERATE_UNKNOWN_TIERS = {"unknown_tier_floor": MEMBERS}

TABLES = {
    "snapshots": "SELECT * EXCLUDE (source_file, source_line) FROM snapshots",
    "account_deltas": "SELECT * FROM account_deltas",
    "loyalty_events": "SELECT * FROM loyalty_events",
    # Lines differ by format (CSV counts the header); what was rejected, and why, does not.
    "quarantine": "SELECT snapshot_date, kind, customer_id, field, reason FROM quarantine",
    "activities": "SELECT * EXCLUDE (source_line) FROM activities",
}


def _simulate_and_run(pipeline: Pipeline, platform: str, fmt: str) -> dict[str, list[tuple]]:
    generate_sample(pipeline.exports, members=MEMBERS, days=DAYS, end=END, fmt=fmt, platform=platform,
                    bad_row_rate=BAD_ROW_RATE, program=load_program(pipeline.program_path))
    for i in range(DAYS):
        pipeline.run_steps((END - dt.timedelta(days=DAYS - 1 - i)).isoformat(), today=END.isoformat())
    return {name: pipeline.query(f"{query} ORDER BY ALL") for name, query in TABLES.items()}


@pytest.fixture(scope="module")
def canonical(tmp_path_factory) -> dict[str, list[tuple]]:
    root: Path = tmp_path_factory.mktemp("canonical")
    return _simulate_and_run(platform_pipeline(root, "canonical", TOLERATE_UNKNOWN_TIERS), "canonical", "csv")


@pytest.mark.parametrize(("platform", "fmt"), [
    ("yotpo", "jsonl"), ("yotpo", "csv"), ("loyaltylion", "jsonl"), ("voucherify", "jsonl"),
])
def test_a_platform_export_gives_the_canonical_tables(tmp_path, canonical, platform: str, fmt: str):
    tables = _simulate_and_run(platform_pipeline(tmp_path, platform, TOLERATE_UNKNOWN_TIERS), platform, fmt)

    # The comparison means something: members, movements, events and rejects on every day.
    assert len({row[0] for row in canonical["snapshots"]}) == DAYS
    assert len(canonical["snapshots"]) > DAYS * MEMBERS * 0.9
    assert {row[4] for row in canonical["loyalty_events"]} >= {
        "loyalty.points_earned", "loyalty.points_expiring", "loyalty.tier_downgraded", "loyalty.enrolled"}
    assert {row[4] for row in canonical["quarantine"]} >= {
        "duplicate_member", "missing_id", "unknown_tier", "invalid_integer", "invalid_date"}
    for name, rows in canonical.items():
        assert tables[name] == rows, name
