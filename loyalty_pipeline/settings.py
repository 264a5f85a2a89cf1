"""Where things live. Every path has a default under `data/` and an environment override."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _path(env: str, default: str) -> Path:
    value = os.environ.get(env)
    return Path(value).resolve() if value else (PROJECT_ROOT / default)


def program_path() -> Path:
    return _path("LOYALTY_PROGRAM", "data/program.yaml")


def exports_dir() -> Path:
    return _path("LOYALTY_EXPORTS_DIR", "data/exports")


def warehouse_path() -> Path:
    return _path("LOYALTY_WAREHOUSE", "data/warehouse/loyalty.duckdb")


def outbound_dir() -> Path:
    return _path("LOYALTY_OUTBOUND_DIR", "data/outbound")


# DuckDB takes 80 % of RAM by default and keeps what it took: a 10M-member day then peaks near 4 GB.
# With a limit it spills joins and sorts to `<warehouse>.tmp/` instead; "" = DuckDB's default.
DEFAULT_DUCKDB_MEMORY_LIMIT = "1GB"


def duckdb_memory_limit() -> str | None:
    return os.environ.get("LOYALTY_DUCKDB_MEMORY_LIMIT", DEFAULT_DUCKDB_MEMORY_LIMIT) or None
