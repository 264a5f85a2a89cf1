"""The project loads the way Dagster tools load it, and partitions run for real."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from loyalty_pipeline.definitions import build_defs
from loyalty_pipeline.ingest.assets import loyalty_export
from loyalty_pipeline.settings import PROJECT_ROOT
from loyalty_pipeline.snapshots.assets import account_deltas, loyalty_snapshot
from loyalty_pipeline_tests.harness import Pipeline, account


@pytest.mark.real  # dagster loads the code location in its own process
def test_workspace_yaml_loads_the_definitions(tmp_path: Path):
    (tmp_path / "home").mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "loyalty_pipeline" in proc.stdout + proc.stderr


@pytest.mark.real  # dagster loads the code location in its own process
def test_loading_the_code_location_raises_no_preview_beta_or_supersession_warning():
    """Such a warning is silenced only where the API is used, with the reason (partitions.py,
    snapshots/assets.py, operations/freshness.py): a new one fails here instead of scrolling by."""
    script = ("import warnings, dagster as dg\n"
              "for category in (dg.PreviewWarning, dg.BetaWarning, dg.SupersessionWarning):\n"
              "    warnings.simplefilter('error', category)\n"
              "import loyalty_pipeline.definitions\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_definitions_hold_the_daily_assets_and_job():
    defs = build_defs()
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"loyalty_export", "loyalty_snapshot", "account_deltas"} <= keys
    job = defs.resolve_job_def("daily_job")
    assert job.partitions_def is not None and job.partitions_def.get_partition_keys()[0] == "2025-01-01"


def test_materialize_two_partitions_against_a_duckdb_file(tmp_path: Path):
    pipe = Pipeline(tmp_path)
    pipe.write_accounts("2026-05-01", [account("C1", points=100), account("C2", points=900)])
    pipe.write_accounts("2026-05-02", [account("C1", points=100), account("C2", points=1100, tier="Silver")])
    assets = [loyalty_export, loyalty_snapshot, account_deltas]
    instance = dg.DagsterInstance.ephemeral()
    for day in ("2026-05-01", "2026-05-02"):
        result = dg.materialize(assets, partition_key=day, resources=pipe.resources(), instance=instance)
        assert result.success
    materialized = instance.get_materialized_partitions(dg.AssetKey("account_deltas"))
    assert materialized == {"2026-05-01", "2026-05-02"}
    assert pipe.query("SELECT customer_id, tier_direction FROM account_deltas "
                      "WHERE snapshot_date = '2026-05-02'") == [("C2", "up")]
