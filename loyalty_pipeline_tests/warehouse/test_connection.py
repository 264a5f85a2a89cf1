"""Warehouse connections: DuckDB's memory is capped (a 10M-member day otherwise peaks near 4 GB), and a
failed transaction raises what stopped it."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from loyalty_pipeline.warehouse.connection import connect, transaction


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
