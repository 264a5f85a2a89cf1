"""`make bench` in miniature: every stage at 2 000 members, one repeat, one format (the real
benchmark is not part of `make test`; see the README, "Benchmark")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loyalty_pipeline.settings import PROJECT_ROOT

pytestmark = pytest.mark.real  # the benchmark in its own processes

BOOTSTRAP_ROUTES = {"GET /v1/custom-data-definitions", "POST /v1/custom-data-definitions", "GET /v1/events",
                    "POST /v1/events"}


def test_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "loyalty_pipeline.devtools.bench", "--members", "2000", "--repeats", "1",
         "--formats", "csv", "--out", str(out), "--work", str(tmp_path / "work")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Targets" in proc.stdout and "bare DuckDB reference" in proc.stdout
    [path] = out.glob("*.json")
    assert path.with_suffix(".md").read_text().startswith("# Bench")
    result = json.loads(path.read_text())
    assert {"meta", "generate", "processing", "churn", "outbound", "rerun", "targets"} <= result.keys()

    # Processing: both sides ran, measured, and produced the very same deltas and events. The pipeline's
    # side is the whole Dagster run: its four assets and their checks are its steps, every check passed.
    proc_summary = result["processing"]["csv"]["summary"]
    assert proc_summary["same_rows_as_reference"]
    assert proc_summary["pipeline_s"] > 0 and proc_summary["reference_s"] > 0 and proc_summary["ratio"] > 0
    assert {"loyalty_export", "loyalty_snapshot", "account_deltas", "loyalty_events"} <= set(proc_summary["steps"])
    assert proc_summary["dagster_own_s"] >= 0
    assert 50 < proc_summary["pipeline_peak_rss_mb"] < 2048
    [run] = result["processing"]["csv"]["runs"]
    assert run["pipeline"]["success"] and proc_summary["checks_passed"]
    checks = set(run["pipeline"]["checks"])
    assert {"loyalty_snapshot:rows_reconcile", "loyalty_events:event_volume_within_band"} <= checks
    churn = result["churn"]
    assert 0.02 < churn["changed_share"] < 0.12 and churn["events"] > 0

    # Outbound: the raw loop sent the same payloads; requests follow the change, not the members.
    outbound = result["outbound"]["summary"]
    assert outbound["same_payload_set"] and outbound["payloads_equal"]
    assert outbound["pipeline"]["records"] > 0 and outbound["pipeline"]["events"] == churn["events"]
    assert outbound["ratio"] > 0
    change = result["outbound"]["requests_vs_change"]
    assert change["requests"] == change["expected_requests"]
    assert change["records_per_changed"] <= 1.1
    assert change["record_share"] < 0.12

    # Re-running the finished day sends no record and no event (only the bootstrap look-ups).
    rerun = result["rerun"]["summary"]
    assert rerun["requests"]["records"] == 0 and rerun["requests"]["triggers"] == 0
    assert set(rerun["requests"]["by_route"]) <= BOOTSTRAP_ROUTES
    assert rerun["outbound_success"] and rerun["processing_s"] > 0

    names = [t["name"] for t in result["targets"]]
    assert any(n.startswith("processing csv") for n in names) and "re-run: requests" in names
    assert all(t["ok"] is not False or t["miss_by"] for t in result["targets"])
