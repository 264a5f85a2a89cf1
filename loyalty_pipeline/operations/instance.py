"""The project-local Dagster instance (`.dagster/`), so CLI runs, `make demo` and `make dev` share runs."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from ..settings import PROJECT_ROOT

# Every asset that opens the DuckDB file is in the `duckdb` pool; a limit of 1 makes it one writer.
DAGSTER_YAML = """\
# Written by loyalty_pipeline/operations/instance.py. One slot per pool: the warehouse has a single writer.
concurrency:
  pools:
    default_limit: 1
    granularity: op
  # Runs the schedule and the export sensor launch go one at a time, highest dagster/priority first
  # (the sensor gives earlier business dates a higher one), so each day's deltas see the day before.
  runs:
    tag_concurrency_limits:
      - key: loyalty/serial
        limit: 1
# A dead run must not keep its slot. The daemon's run monitoring fails runs stuck starting or canceling
# and frees the slots of finished runs; a run worker killed while the code server lives is failed by the
# code server. Dagster 1.13's DefaultRunLauncher has no worker health check, so a run whose process is
# gone (code server gone too: a reboot) is failed by our dead_run_reaper sensor and by every CLI run.
run_monitoring:
  enabled: true
  poll_interval_seconds: 30
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  free_slots_after_run_end_seconds: 30
telemetry:
  enabled: false
"""
_OURS = "# Written by loyalty_pipeline/"


def dagster_home() -> Path:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster")))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    # Rewrite our own file when this version's differs (e.g. new run-queue limits); never a hand-made one.
    # (Ours starts with _OURS, whichever path its first line names: this module was loyalty_pipeline/instance.py.)
    if not config.exists() or (config.read_text().startswith(_OURS) and config.read_text() != DAGSTER_YAML):
        config.write_text(DAGSTER_YAML)
    return home


def get_instance() -> dg.DagsterInstance:
    dagster_home()
    return dg.DagsterInstance.get()
