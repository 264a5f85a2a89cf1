"""`make demo PLATFORM=loyaltylion PULL=1`, small: each day pulled from the stand-in, then processed (the
real `loyalty-devtools demo` command, in its own process as make runs it)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from loyalty_pipeline.settings import PROJECT_ROOT

pytestmark = pytest.mark.real  # a real process: the demo command


def demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LOYALTY_WAREHOUSE": str(tmp_path / "warehouse" / "loyalty.duckdb"),
           "LOYALTY_EXPORTS_DIR": str(tmp_path / "exports"), "LOYALTY_OUTBOUND_DIR": str(tmp_path / "outbound"),
           "LOYALTY_PROGRAM": str(PROJECT_ROOT / "data" / "program.yaml"), "DAGSTER_HOME": str(tmp_path / "dagster")}
    env.pop("LOYALTY_TODAY", None)
    return subprocess.run([str(Path(sys.executable).parent / "loyalty-devtools"), "demo", "--members", "40",
                           "--days", "2", "--pull", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_pull_demo_pulls_each_day_from_the_stand_in_and_processes_it(tmp_path: Path):
    run = demo(tmp_path, "--platform", "loyaltylion")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    yesterday = dt.datetime.now(ZoneInfo("Europe/Paris")).date() - dt.timedelta(days=1)
    days = [yesterday - dt.timedelta(days=1), yesterday]
    for day in days:
        assert f"{day}  pulled " in run.stdout and f"{day}  ok" in run.stdout
        assert (tmp_path / "exports" / day.isoformat() / "accounts.manifest.json").is_file()
    assert not list((tmp_path / "exports").glob("*/activities.*"))  # only what the API gives: the members
    con = duckdb.connect(str(tmp_path / "warehouse" / "loyalty.duckdb"), read_only=True)
    try:
        assert [d for (d,) in con.execute("SELECT DISTINCT snapshot_date FROM snapshots ORDER BY 1").fetchall()] == days
    finally:
        con.close()


def test_the_pull_demo_says_which_platform_it_serves(tmp_path: Path):
    run = demo(tmp_path, "--platform", "yotpo")
    assert run.returncode == 2 and "run `make demo PLATFORM=loyaltylion PULL=1`" in run.stdout
