"""Every warehouse connection caps DuckDB's memory (a 10M-member day otherwise peaks near 4 GB)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loyalty_pipeline.warehouse.connection import connect


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
