"""Shared fixtures: a throwaway pipeline (exports dir, DuckDB file, Dagster instance) per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never touch the developer's data/ or .dagster/: point every default at a scratch area
# before any pipeline module reads the environment.
_SCRATCH = Path(os.environ.get("PYTEST_SCRATCH", "/tmp")) / f"loyalty-tests-{os.getpid()}"
os.environ.setdefault("DAGSTER_HOME", str(_SCRATCH / "dagster_home"))
os.environ.setdefault("LOYALTY_WAREHOUSE", str(_SCRATCH / "warehouse" / "loyalty.duckdb"))
os.environ.setdefault("LOYALTY_EXPORTS_DIR", str(_SCRATCH / "exports"))
os.environ.setdefault("LOYALTY_OUTBOUND_DIR", str(_SCRATCH / "outbound"))
Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)

from loyalty_pipeline_tests.harness import Pipeline  # noqa: E402


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    return Pipeline(tmp_path)
