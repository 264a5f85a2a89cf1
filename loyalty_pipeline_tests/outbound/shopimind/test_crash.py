"""Crash safety: a delivery killed with SIGKILL mid-flight, then re-run, loses and duplicates no event."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loyalty_pipeline.devtools.emulator import Emulator
from loyalty_pipeline.outbound.shopimind.resources import KEY_ENV, URL_ENV
from loyalty_pipeline.settings import PROJECT_ROOT
from loyalty_pipeline_tests.harness import account
from loyalty_pipeline_tests.outbound.shopimind.helpers import delivery_pipeline, history_keys, pending_keys

pytestmark = pytest.mark.real  # a loyalty-pipeline process killed mid-delivery

D1, D2, TODAY = "2026-03-01", "2026-03-02", "2026-03-03"
MEMBERS = [f"M{i:04}" for i in range(400)]


def start_cli_run(root: Path, emulator: Emulator, day: str) -> subprocess.Popen:
    """`loyalty-pipeline run` for one day in its own process, on the test's files and the emulator."""
    env = {**os.environ, "DAGSTER_HOME": str(root / "dagster_home"),
           "LOYALTY_WAREHOUSE": str(root / "warehouse" / "loyalty.duckdb"),
           "LOYALTY_EXPORTS_DIR": str(root / "exports"), "LOYALTY_OUTBOUND_DIR": str(root / "outbound"),
           "LOYALTY_TODAY": TODAY, KEY_ENV: emulator.api_key, URL_ENV: emulator.base_url}
    return subprocess.Popen([sys.executable, "-m", "loyalty_pipeline.cli", "run", "--start", day, "--end", day],
                            cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_mid_delivery(proc: subprocess.Popen, emulator: Emulator, more_than: int) -> None:
    deadline = time.monotonic() + 120
    while len(emulator.state()["histories"]) <= more_than:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no delivery seen in time"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_a_run_killed_mid_delivery_then_rerun_loses_and_duplicates_nothing(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch):
    with Emulator(latency_ms=100) as emulator:  # slow enough to be caught with requests in flight
        monkeypatch.setenv(KEY_ENV, emulator.api_key)
        # In-process runs wait a moment for requests the dead process left in the server's hands.
        pipe = delivery_pipeline(tmp_path, emulator, today=TODAY, history_visibility_s=1.0)
        pipe.write_accounts(D1, [account(m, points=100) for m in MEMBERS])
        pipe.write_accounts(D2, [account(m, points=150) for m in MEMBERS])  # one points_earned each
        pipe.run(D1)

        # Kill until a kill lands while a chunk is in flight (almost always the first one).
        in_flight = 0
        for _ in range(3):
            kill_mid_delivery(start_cli_run(tmp_path, emulator, D2), emulator,
                              more_than=len(emulator.state()["histories"]) + 40)
            in_flight = pipe.query("SELECT count(*) FROM delivery_state WHERE status = 'in_flight'")[0][0]
            if in_flight:
                break
        assert in_flight > 0
        delivered_before_rerun = len(emulator.state()["histories"])
        assert 0 < delivered_before_rerun < len(MEMBERS)

        pipe.run(D2)

        keys = history_keys(emulator)
        assert keys == pending_keys(pipe) and len(keys) == len(MEMBERS)
        assert set(keys.values()) == {1}  # none lost, none duplicated
        assert pipe.query("SELECT DISTINCT status FROM delivery_state WHERE kind = 'event'") == [("sent",)]
        reconciled = dict(pipe.query(
            "SELECT note, count(*) FROM sync_log WHERE note LIKE 'reconciled%' GROUP BY ALL"))
        assert sum(reconciled.values()) >= in_flight  # every in-flight event was looked up, not resent blindly
        assert reconciled.get("reconciled: found in event histories", 0) > 0
