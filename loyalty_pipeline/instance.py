"""The project-local Dagster instance (`.dagster/`), so CLI runs, `make demo` and `make dev` share runs."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from .settings import PROJECT_ROOT

# Every asset that opens the DuckDB file is in the `duckdb` pool; a limit of 1 makes it one writer.
DAGSTER_YAML = """\
# Written by loyalty_pipeline/instance.py. One slot per pool: the warehouse has a single writer.
concurrency:
  pools:
    default_limit: 1
    granularity: op
telemetry:
  enabled: false
"""


def dagster_home() -> Path:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster")))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return home


def get_instance() -> dg.DagsterInstance:
    dagster_home()
    return dg.DagsterInstance.get()
