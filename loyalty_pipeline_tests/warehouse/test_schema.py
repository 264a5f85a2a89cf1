"""The schema as numbered migrations: each applied once and recorded, atomically, and the first one a
no-op on a warehouse made before migrations existed."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from loyalty_pipeline.warehouse.connection import connect
from loyalty_pipeline.warehouse.schema import Migration, migrate, migrations


def recorded(con: duckdb.DuckDBPyConnection) -> list[tuple[int, str]]:
    return con.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()


def test_the_migrations_are_numbered_one_by_one_from_0001_initial():
    found = migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert found[0].name == "initial"


def test_a_new_warehouse_gets_each_migration_once(tmp_path: Path):
    con = connect(tmp_path / "w.duckdb")
    assert recorded(con) == [(m.version, m.name) for m in migrations()]
    con.close()
    con = connect(tmp_path / "w.duckdb")
    assert migrate(con) == [] and recorded(con) == [(m.version, m.name) for m in migrations()]
    tables = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"snapshots", "quarantine", "loyalty_events", "delivery_state", "step_fingerprints"} <= tables
    con.close()


def test_a_warehouse_made_before_migrations_keeps_its_rows_and_only_records_0001(tmp_path: Path):
    """What every connection used to run: the schema file itself, with no record of it."""
    path = tmp_path / "old.duckdb"
    old = duckdb.connect(str(path))
    old.execute(migrations()[0].sql)
    old.execute("INSERT INTO export_files VALUES (DATE '2026-03-01', 'accounts', 'a.csv', 'csv', 'abc', 10, 2)")
    columns = old.execute("SELECT table_name, column_name, data_type FROM information_schema.columns "
                          "ORDER BY ALL").fetchall()
    old.close()
    # 0001 alone (the later migrations change the schema on purpose).
    con = duckdb.connect(str(path))
    migrate(con, migrations()[:1])
    assert recorded(con)[0] == (1, "initial")
    assert con.execute("SELECT count(*) FROM export_files").fetchone() == (1,)
    assert con.execute("SELECT table_name, column_name, data_type FROM information_schema.columns "
                       "WHERE table_name <> 'schema_migrations' ORDER BY ALL").fetchall() == columns
    con.close()
    con = connect(path)  # and the others after it
    assert recorded(con) == [(m.version, m.name) for m in migrations()]
    assert con.execute("SELECT count(*) FROM export_files").fetchone() == (1,)
    con.close()


def test_raw_rows_written_as_text_are_dropped_with_their_ingest_records_and_nothing_else(tmp_path: Path):
    """0002: the raw tables become typed; their text-only rows and the ingest's records of those days go
    (re-running such a day reads its export again), what was built from them stays."""
    path = tmp_path / "before.duckdb"
    old = duckdb.connect(str(path))
    old.execute("CREATE TABLE schema_migrations (version INTEGER NOT NULL, name VARCHAR NOT NULL, "
                "applied_at TIMESTAMPTZ NOT NULL)")
    migrate(old, migrations()[:1])
    old.execute("INSERT INTO raw_accounts (snapshot_date, source_file, source_line, customer_id, points_balance) "
                "VALUES (DATE '2026-03-01', 'a.csv', 2, 'C1', '12')")
    old.execute("INSERT INTO snapshots VALUES (DATE '2026-03-01', 'C1', NULL, true, 12, 12, NULL, NULL, NULL, NULL, "
                "NULL, NULL, [], 'a.csv', 2)")
    old.execute("INSERT INTO step_fingerprints VALUES ('ingest', DATE '2026-03-01', 'f1', 1, '{}', now()), "
                "('snapshot', DATE '2026-03-01', 'f2', 1, '{}', now())")
    old.close()
    con = connect(path)
    assert con.execute("SELECT count(*) FROM raw_accounts").fetchone() == (0,)
    assert con.execute("SELECT data_type FROM information_schema.columns WHERE table_name = 'raw_accounts' "
                       "AND column_name = 'points_balance'").fetchone() == ("BIGINT",)
    assert con.execute("SELECT step FROM step_fingerprints").fetchall() == [("snapshot",)]
    assert con.execute("SELECT customer_id FROM snapshots").fetchall() == [("C1",)]
    con.close()


def test_a_warehouse_from_before_the_setup_cache_gets_its_columns(tmp_path: Path):
    path = tmp_path / "older.duckdb"
    old = duckdb.connect(str(path))
    old.execute("CREATE TABLE shopimind_setup (destination VARCHAR NOT NULL, definition_name VARCHAR NOT NULL, "
                "definition_id BIGINT NOT NULL, event_types VARCHAR[] NOT NULL, checked_at TIMESTAMPTZ NOT NULL)")
    old.execute("INSERT INTO shopimind_setup VALUES ('http://x', 'LoyaltyAccount', 7, ['a'], now())")
    old.close()
    con = connect(path)
    assert con.execute("SELECT definition_id, definition_hash, event_hashes FROM shopimind_setup").fetchall() == [
        (7, None, None)]
    con.close()


def test_a_failing_migration_leaves_nothing_and_runs_again_next_time(tmp_path: Path):
    con = connect(tmp_path / "w.duckdb")
    broken = Migration(900, "broken", "CREATE TABLE half_done (i INTEGER); SELECT no_such_column FROM half_done;")
    with pytest.raises(duckdb.Error, match="no_such_column"):
        migrate(con, [*migrations(), broken])
    assert 900 not in [v for v, _ in recorded(con)]
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'half_done'"
                       ).fetchone() == (0,)
    fixed = Migration(900, "broken", "CREATE TABLE half_done (i INTEGER); INSERT INTO half_done VALUES (1);")
    assert migrate(con, [*migrations(), fixed]) == [fixed]
    assert migrate(con, [*migrations(), fixed]) == []
    assert con.execute("SELECT count(*) FROM half_done").fetchone() == (1,)  # applied once
    con.close()
