"""The bench's reference check compares the event types the reference derives, and only those: a new
event type in the catalogue needs no change to the bench."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from loyalty_pipeline.devtools.bench.reference import EVENT_TYPES, verify

DAY = dt.date(2026, 3, 2)


def databases(tmp_path: Path, pipeline_events: list[tuple[str, str]]) -> tuple[Path, Path]:
    """A pipeline warehouse and a reference database holding the same deltas; the reference holds one
    event of the first reference type, the pipeline `pipeline_events` ((event_key, code_name))."""
    pipe, ref = tmp_path / "pipeline.duckdb", tmp_path / "reference.duckdb"
    con = duckdb.connect(str(pipe))
    con.execute("CREATE TABLE loyalty_events (event_key VARCHAR, snapshot_date DATE, code_name VARCHAR, metadata JSON)")
    con.executemany("INSERT INTO loyalty_events VALUES (?, ?, ?, '{\"a\": 1}')",
                    [(key, DAY, code) for key, code in pipeline_events])
    con.execute("CREATE TABLE account_deltas AS SELECT DATE '2026-03-02' AS snapshot_date, 'C1' AS customer_id, "
                "'changed' AS change_kind")
    con.close()
    con = duckdb.connect(str(ref))
    con.execute("CREATE TABLE events AS SELECT 'k1' AS event_key, ? AS code_name, '{\"a\": 1}'::JSON AS metadata",
                [EVENT_TYPES[0]])
    con.execute("CREATE TABLE deltas AS SELECT 'C1' AS customer_id, 'changed' AS change_kind")
    con.close()
    return pipe, ref


def test_an_event_type_the_reference_does_not_derive_is_not_a_difference(tmp_path: Path):
    assert "loyalty.birthday" not in EVENT_TYPES
    pipe, ref = databases(tmp_path, [("k1", EVENT_TYPES[0]), ("k2", "loyalty.birthday")])
    assert verify(pipe, ref, DAY)["same"]


def test_an_extra_event_of_a_type_the_reference_derives_is_one(tmp_path: Path):
    pipe, ref = databases(tmp_path, [("k1", EVENT_TYPES[0]), ("k3", EVENT_TYPES[1])])
    assert verify(pipe, ref, DAY) == {"events_only_in_pipeline": 1, "events_only_in_reference": 0,
                                      "deltas_only_in_pipeline": 0, "deltas_only_in_reference": 0, "same": False}
