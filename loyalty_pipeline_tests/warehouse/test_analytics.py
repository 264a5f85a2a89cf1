"""Invariant 10: analysts read through analytics.duckdb + Parquet, never blocking a run."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from loyalty_pipeline_tests.harness import Pipeline, account

ANALYST = textwrap.dedent("""
    import sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    query = "SELECT snapshot_date::VARCHAR, count(*) FROM snapshots GROUP BY ALL ORDER BY ALL"
    print(con.execute(query).fetchall(), flush=True)
    sys.stdin.readline()          # keep the connection open until the test says so
    print(con.execute(query).fetchall(), flush=True)
""")


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
    import duckdb

    pipeline.write_accounts("2026-04-01", [account("C1"), account("", points=3)])
    pipeline.run("2026-04-01")
    con = duckdb.connect(str(pipeline.warehouse.parent / "analytics.duckdb"), read_only=True)
    views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert {"snapshots", "quarantine", "account_deltas"} <= views
    assert con.execute("SELECT reason FROM quarantine").fetchall() == [("missing_id",)]
