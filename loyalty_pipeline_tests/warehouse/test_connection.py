"""Warehouse connections: DuckDB's memory is capped (a 10M-member day otherwise peaks near 4 GB), a writer
waits out another process's lock (and only that), and a failed transaction raises what stopped it."""

from __future__ import annotations

import errno
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from loyalty_pipeline.warehouse.connection import WarehouseLockedError, connect, transaction

HOLD = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); "
        "time.sleep(float(sys.argv[2]))")


def held_by_another_process(path: Path, seconds: float) -> subprocess.Popen:
    """A process that opens `path` read-write (DuckDB's file lock) and exits after `seconds`."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "ready"
    return holder


def memory_limit(path: Path) -> str:
    con = connect(path)
    try:
        return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    finally:
        con.close()


def test_the_default_limit_is_one_gigabyte_and_the_environment_overrides_it(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("LOYALTY_DUCKDB_MEMORY_LIMIT", raising=False)
    assert memory_limit(tmp_path / "a.duckdb") == "953.6 MiB"  # DuckDB shows 1GB (10^9 bytes) in MiB
    monkeypatch.setenv("LOYALTY_DUCKDB_MEMORY_LIMIT", "512MB")
    assert memory_limit(tmp_path / "a.duckdb") == "488.2 MiB"
    monkeypatch.setenv("LOYALTY_DUCKDB_MEMORY_LIMIT", "")  # DuckDB's own default: 80 % of RAM
    assert memory_limit(tmp_path / "a.duckdb") not in ("953.6 MiB", "488.2 MiB")


def test_a_failing_rollback_never_hides_the_error_that_stopped_the_transaction(tmp_path: Path):
    """A full disk ends DuckDB's transaction itself; the ROLLBACK that follows then fails ("no transaction
    is active") and used to be raised instead of the disk error."""
    con = connect(tmp_path / "a.duckdb")
    con.execute("CREATE TABLE t (i INTEGER)")
    with pytest.raises(OSError) as raised, transaction(con):
        con.execute("INSERT INTO t VALUES (1)")
        con.execute("COMMIT")  # the transaction is over when the error comes
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "a.duckdb.wal"))
    assert raised.value.errno == errno.ENOSPC
    assert any("the rollback failed too" in note and "no transaction is active" in note
               for note in raised.value.__notes__)
    with transaction(con):  # the connection is usable again
        con.execute("INSERT INTO t VALUES (2)")
    assert con.execute("SELECT count(*) FROM t").fetchone() == (2,)
    con.close()


@pytest.mark.real  # another process holds the DuckDB file
def test_a_writer_waits_until_another_process_releases_the_file(tmp_path: Path):
    path = tmp_path / "a.duckdb"
    holder = held_by_another_process(path, seconds=1.0)
    started = time.monotonic()
    con = connect(path, lock_timeout_s=60)
    waited = time.monotonic() - started
    con.close()
    holder.wait(timeout=10)
    assert 0.5 < waited < 10   # it waited for the lock, and polled often enough to take it soon after


@pytest.mark.real  # another process holds the DuckDB file
def test_a_lock_past_the_timeout_says_what_to_do_and_other_errors_are_not_retried(tmp_path: Path):
    path = tmp_path / "a.duckdb"
    holder = held_by_another_process(path, seconds=60)
    try:
        with pytest.raises(WarehouseLockedError, match="locked by another process for 1s; analysts should use"):
            connect(path, lock_timeout_s=1)
    finally:
        holder.kill()
        holder.wait()
    not_duckdb = tmp_path / "b.duckdb"
    not_duckdb.write_text("not a database")
    started = time.monotonic()
    with pytest.raises(duckdb.IOException, match="not a valid DuckDB database"):
        connect(not_duckdb, lock_timeout_s=60)
    assert time.monotonic() - started < 5   # raised at once, not after the lock timeout
