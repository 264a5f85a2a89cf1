"""Inputs an adversary (or an odd export) brings, beyond the catalogue (issue 13, ingest side).

Same rules as test_catalogue.py: every case writes a real export (under a real path) and runs the
real daily job (ingest and snapshot assets with their checks), then reads the DuckDB file. A row
ends in `snapshots` or `quarantine` (file, line, field, value, reason; raw = snapshot + quarantine);
a file that cannot be read fails the day naming the file and what to fix, and writes nothing.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from loyalty_pipeline_tests.harness import ACCOUNT_HEADER, Pipeline, account, failure_messages
from loyalty_pipeline_tests.sources.helpers import counts, run_ingest
from loyalty_pipeline_tests.sources.test_catalogue import (
    DAY,
    ingest,
    member,
    pipeline_for,
    quarantine,
    render,
    snapshot,
)


def canonical_csv(rows: list[dict], header: list[str] = ACCOUNT_HEADER, newline: str = "\n") -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, extrasaction="ignore", lineterminator=newline)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_export(pipeline: Pipeline, name: str, content: str | bytes) -> Path:
    path = pipeline.exports / DAY / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def record(shape: str, cid: str, **values) -> dict:
    """catalogue.member() for every shape; a canonical one is written by canonical_row()."""
    return member("yotpo" if shape == "canonical" else shape, cid, **values)


def canonical_row(row: dict) -> dict:
    """A record("canonical", …) (Yotpo's JSON names) under the canonical column names."""
    names = {"third_party_id": "customer_id", "email": "email", "opt_in": "enrolled",
             "points_balance": "points_balance", "points_earned": "lifetime_points", "vip_tier_name": "tier",
             "vip_tier_entry_date": "tier_since", "opted_in_at": "member_since",
             "next_points_expire_on": "next_expiry_date", "next_points_expire_amount": "next_expiry_amount"}
    return {names[k]: "" if v is None else str(v).lower() if isinstance(v, bool) else v
            for k, v in row.items() if k in names}


def text_of(shape: str, rows: list[dict], newline: str = "\n") -> str:
    if shape == "canonical":
        return canonical_csv([canonical_row(r) for r in rows], newline=newline)
    return render(shape, rows)


def line_of(shape: str, index: int) -> int:
    """The file line of rows[index]: a CSV counts its header."""
    return index + (2 if shape in ("canonical", "yotpo_csv") else 1)


def succeeds(pipeline: Pipeline, raw: int) -> None:
    result = run_ingest(pipeline, DAY)
    assert result.success, failure_messages(result)
    assert counts(pipeline, DAY)[0] == raw
    assert sum(counts(pipeline, DAY)[1:]) == raw  # raw = snapshot + quarantine


def ingest_rows(tmp_path: Path, shape: str, rows: list[dict]) -> Pipeline:
    if shape != "canonical":
        return ingest(tmp_path, shape, rows)
    pipeline = pipeline_for(tmp_path, shape)
    write_export(pipeline, "accounts.csv", text_of(shape, rows))
    succeeds(pipeline, raw=len(rows))
    return pipeline


# -- items 5 and 11: dates, ids ----------------------------------------------------------------------------

@pytest.mark.parametrize("shape", ["canonical", "loyaltylion"])
def test_dates_outside_1900_2099_are_sentinels(tmp_path, shape):
    # 99999-01-01 is a date to DuckDB but to no consumer (Python's dates end in 9999): it never reaches
    # the snapshot. 9999-12-31 is the usual "never"; 2099-12-31 is still a date.
    rows = [record(shape, "C1", tier_since="99999-01-01"), record(shape, "C2", member_since="9999-12-31"),
            record(shape, "C3", expiry_date="2100-01-01", expiry_amount=5),
            record(shape, "C4", expiry_date="2099-12-31", expiry_amount=5)]
    pipeline = ingest_rows(tmp_path, shape, rows)
    assert quarantine(pipeline) == []
    assert snapshot(pipeline, "customer_id, tier_since::VARCHAR, member_since::VARCHAR, "
                              "next_expiry_date::VARCHAR, dq_flags") == [
        ("C1", None, "2025-06-01", None, ["sentinel_date"]),
        ("C2", "2026-01-01", None, None, ["sentinel_date"]),
        ("C3", "2026-01-01", "2025-06-01", None, ["sentinel_date"]),
        ("C4", "2026-01-01", "2025-06-01", "2099-12-31", []),
    ]


@pytest.mark.parametrize("shape", ["canonical", "loyaltylion"])
def test_words_duckdb_reads_as_dates_are_invalid_dates(tmp_path, shape):
    words = ["infinity", "-infinity", "epoch", "now", "today", "allballs"]
    rows = [record(shape, f"C{i}", member_since=word) for i, word in enumerate(words)]
    pipeline = ingest_rows(tmp_path, shape, rows)
    assert quarantine(pipeline) == [
        (line_of(shape, i), f"C{i}", "member_since", word, "invalid_date") for i, word in enumerate(words)]


@pytest.mark.parametrize("shape", ["canonical", "yotpo"])
def test_an_id_with_a_control_character_is_quarantined(tmp_path, shape):
    rows = [record(shape, "C1\x00x"), record(shape, "C2\t"), record(shape, "C3")]
    pipeline = ingest_rows(tmp_path, shape, rows)
    assert quarantine(pipeline) == [
        (line_of(shape, 0), "C1\x00x", "customer_id", "C1\x00x", "invalid_id"),
        (line_of(shape, 1), "C2\t", "customer_id", "C2\t", "invalid_id"),
    ]
    assert snapshot(pipeline, "customer_id") == [("C3",)]


def test_activities_follow_the_same_rules(tmp_path):
    pipeline = pipeline_for(tmp_path, "canonical")
    write_export(pipeline, "accounts.csv", canonical_csv([account("C1")]))
    write_export(pipeline, "activities.csv", (
        "customer_id,occurred_at,points,reason\n"
        "C1,2026-03-10T10:00:00Z,5,order\nC\x001,2026-03-10T10:00:00Z,5,order\n"
        "C1,epoch,5,order\nC1,infinity,5,order\nC1,99999-01-01T00:00:00Z,5,order\n"))
    succeeds(pipeline, raw=1)
    assert pipeline.query("SELECT source_line, customer_id, field, value, reason FROM quarantine "
                          "WHERE kind = 'activities' ORDER BY ALL") == [
        (3, "C\x001", "customer_id", "C\x001", "invalid_id"),
        (4, "C1", "occurred_at", "epoch", "invalid_timestamp"),
        (5, "C1", "occurred_at", "infinity", "invalid_timestamp"),
        (6, "C1", "occurred_at", "99999-01-01T00:00:00Z", "invalid_timestamp"),
    ]
    assert pipeline.query("SELECT source_line FROM activities") == [(2,)]
