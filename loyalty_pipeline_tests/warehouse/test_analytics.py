"""Invariant 10: analysts read through analytics.duckdb + Parquet, never blocking a run."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from loyalty_pipeline.warehouse.analytics import catalog_path, publish_days
from loyalty_pipeline_tests.harness import Pipeline, account

ANALYST = textwrap.dedent("""
    import sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    query = "SELECT snapshot_date::VARCHAR, count(*) FROM snapshots GROUP BY ALL ORDER BY ALL"
    print(con.execute(query).fetchall(), flush=True)
    sys.stdin.readline()          # keep the connection open until the test says so
    print(con.execute(query).fetchall(), flush=True)
""")


@pytest.mark.real  # an analyst's session in its own process
def test_an_open_analyst_connection_never_blocks_a_run_and_sees_the_new_day(pipeline: Pipeline):
    pipeline.write_accounts("2026-04-01", [account("C1"), account("C2")])
    pipeline.write_accounts("2026-04-02", [account("C1"), account("C2"), account("C3")])
    pipeline.run("2026-04-01")
    catalog = pipeline.warehouse.parent / "analytics.duckdb"

    analyst = subprocess.Popen([sys.executable, "-c", ANALYST, str(catalog)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert analyst.stdout.readline().strip() == "[('2026-04-01', 2)]"
        pipeline.run("2026-04-02")      # the analyst's connection is still open
        pipeline.run("2026-04-01")      # and a re-run replaces a day's file in place
        out, err = analyst.communicate("go\n", timeout=60)
    finally:
        analyst.kill()
    assert out.strip() == "[('2026-04-01', 2), ('2026-04-02', 3)]", err


def test_the_catalog_has_a_view_per_published_table(pipeline: Pipeline):
    pipeline.write_accounts("2026-04-01", [account("C1"), account("", points=3)])
    pipeline.run("2026-04-01")
    con = duckdb.connect(str(pipeline.warehouse.parent / "analytics.duckdb"), read_only=True)
    views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert {"snapshots", "quarantine", "account_deltas"} <= views
    assert con.execute("SELECT reason FROM quarantine").fetchall() == [("missing_id",)]


KILLED_ANALYST = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])                  # read-write, by mistake
    con.execute("SET checkpoint_threshold = '1TB'")    # what they write stays in the WAL
    con.execute("CREATE TABLE my_notes AS SELECT range AS i FROM range(1000)")
    print("written", flush=True)
    time.sleep(120)                                    # killed before closing
""")


@pytest.mark.real  # an analyst's session killed with SIGKILL
def test_a_killed_read_write_analyst_session_cannot_break_the_catalog(tmp_path: Path):
    """A session killed on analytics.duckdb leaves a WAL that no longer matches once the catalog is
    rebuilt; the rebuild removes it (and a killed rebuild's own temp files), so readers still open it."""
    warehouse = tmp_path / "loyalty.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute("CREATE TABLE snapshots AS SELECT DATE '2026-04-01' AS snapshot_date, 'C1' AS customer_id")
    publish_days(con, warehouse, ["snapshots"], dt.date(2026, 4, 1))
    catalog = catalog_path(warehouse)

    analyst = subprocess.Popen([sys.executable, "-c", KILLED_ANALYST, str(catalog)], stdout=subprocess.PIPE, text=True)
    try:
        assert analyst.stdout.readline().strip() == "written"
    finally:
        os.kill(analyst.pid, signal.SIGKILL)
        analyst.wait(timeout=30)
    assert catalog.with_name(f"{catalog.name}.wal").stat().st_size > 0
    # A rebuild killed mid-way leaves its temp catalog and WAL, named for its (now gone) process.
    for leftover in (f".{catalog.name}.{analyst.pid}-abc123.tmp", f".{catalog.name}.{analyst.pid}-abc123.tmp.wal"):
        (tmp_path / leftover).write_bytes(b"\0" * 4096)

    con.execute("INSERT INTO snapshots VALUES (DATE '2026-04-02', 'C1'), (DATE '2026-04-02', 'C2')")
    publish_days(con, warehouse, ["snapshots"], dt.date(2026, 4, 2))
    con.close()

    reader = duckdb.connect(str(catalog), read_only=True)
    try:
        assert reader.execute("SELECT snapshot_date::VARCHAR, count(*) FROM snapshots GROUP BY ALL ORDER BY ALL"
                              ).fetchall() == [("2026-04-01", 1), ("2026-04-02", 2)]
        assert reader.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall() == [("snapshots",)]
    finally:
        reader.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analytics.duckdb", "loyalty.duckdb", "parquet"]


def test_paths_with_quotes_and_glob_characters_are_data(tmp_path: Path):
    """A warehouse and an outbound folder under `o'brien [1]/`: the day runs, analysts read it, and
    the views read that folder's files only, not a sibling's that its name would glob."""
    root = tmp_path / "o'brien [1]"
    pipe = Pipeline(root)
    pipe.exports = tmp_path / "exports"  # the source readers' paths are tested with the sources
    pipe.defs = pipe.build()
    pipe.write_accounts("2026-04-01", [account("C1"), account("C2"), account("", points=3)])
    # A sibling folder that `o'brien [1]` would match as a glob ([1] = the character "1").
    decoy = tmp_path / "o'brien 1" / "warehouse" / "parquet" / "snapshots"
    decoy.mkdir(parents=True)
    duckdb.sql("COPY (SELECT DATE '1999-01-01' AS snapshot_date, 'X' AS customer_id) TO $p (FORMAT parquet)",
               params={"p": str(decoy / "1999-01-01.parquet")})

    pipe.run("2026-04-01")

    con = duckdb.connect(str(pipe.warehouse.parent / "analytics.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT snapshot_date::VARCHAR, customer_id FROM snapshots ORDER BY ALL").fetchall() == [
            ("2026-04-01", "C1"), ("2026-04-01", "C2")]
        assert con.execute("SELECT source_line, reason FROM quarantine").fetchall() == [(4, "missing_id")]
    finally:
        con.close()
    assert (pipe.outbound / "reelevant" / "2026-04-01.jsonl").read_text().count("\n") == 2


def test_the_catalog_is_rebuilt_only_when_its_views_change(tmp_path: Path):
    """A new day of a published table needs no new catalog (its view's glob finds the file); a table
    published for the first time does."""
    warehouse = tmp_path / "loyalty.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute("CREATE TABLE snapshots AS SELECT DATE '2026-04-01' AS snapshot_date, 'C1' AS customer_id")
    con.execute("CREATE TABLE quarantine AS SELECT DATE '2026-04-01' AS snapshot_date, 'missing_id' AS reason")
    catalog = catalog_path(warehouse)
    publish_days(con, warehouse, ["snapshots"], dt.date(2026, 4, 1))
    first = catalog.stat().st_ino

    con.execute("INSERT INTO snapshots VALUES (DATE '2026-04-02', 'C1')")
    publish_days(con, warehouse, ["snapshots"], dt.date(2026, 4, 2))
    assert catalog.stat().st_ino == first
    publish_days(con, warehouse, ["quarantine"], dt.date(2026, 4, 1))
    assert catalog.stat().st_ino != first
    con.close()

    reader = duckdb.connect(str(catalog), read_only=True)
    try:
        assert reader.execute("SELECT count(*) FROM snapshots").fetchone() == (2,)
        assert reader.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall() == [
            ("quarantine",), ("snapshots",)]
    finally:
        reader.close()
