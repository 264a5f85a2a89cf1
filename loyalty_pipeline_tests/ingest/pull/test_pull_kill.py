"""A pull killed mid-way (a real SIGKILL of a real `loyalty-pipeline pull` process) leaves no export, and
the next pull the same day resumes where it was killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loyalty_pipeline.devtools.standins import LoyaltyLionStandIn
from loyalty_pipeline.ingest.pull.run import pull_export
from loyalty_pipeline.ingest.pull.staging import CHECKPOINT, staging_name
from loyalty_pipeline.program import load_program
from loyalty_pipeline.settings import PROJECT_ROOT
from loyalty_pipeline_tests.ingest.helpers import program_for
from loyalty_pipeline_tests.ingest.pull.helpers import D2, FAST, LL_ENV, as_file, objects

pytestmark = pytest.mark.real  # a real `loyalty-pipeline pull` process, killed with SIGKILL

PAGES = 8


def test_a_killed_pull_leaves_no_export_and_the_next_pull_today_resumes(tmp_path: Path):
    published = objects("loyaltylion", D2)
    customers = [{**published[i % len(published)], "id": 500 + i, "merchant_id": str(8000 + i)}
                 for i in range(2 * PAGES)]
    with LoyaltyLionStandIn(customers) as api:
        api.delay_s = 0.25  # slow pages: the process is killed with some, not all, read
        program_path = program_for(tmp_path, "loyaltylion", pull={"enabled": True, "base_url": api.base_url,
                                                                  "page_size": 2, "requests_per_second": 1000})
        env = {**os.environ, "LOYALTY_PROGRAM": str(program_path), "LOYALTY_EXPORTS_DIR": str(tmp_path / "exports"),
               "LOYALTY_WAREHOUSE": str(tmp_path / "warehouse.duckdb"), "DAGSTER_HOME": str(tmp_path / "dagster"),
               "LOYALTY_TODAY": D2.isoformat(), **LL_ENV}
        proc = subprocess.Popen([sys.executable, "-m", "loyalty_pipeline.cli", "pull"], cwd=PROJECT_ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while len(api.served()) < 3 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL

        folder = tmp_path / "exports" / D2.isoformat()
        assert not (folder / "accounts.jsonl").exists() and not (folder / "accounts.manifest.json").exists()
        checkpoint = json.loads((folder / staging_name("accounts") / CHECKPOINT).read_text())
        kept = checkpoint["phases"]["customers"]["pages"]
        assert 1 <= kept < PAGES

        api.delay_s, served_before = 0.0, len(api.served())
        pulled = pull_export(load_program(program_path), tmp_path / "exports", D2, today=D2, environ=LL_ENV, **FAST)
        resumed = api.served()[served_before:]
    assert pulled.manifest["resumed"] is True
    assert len(resumed) == PAGES - kept and resumed[0][2].get("cursor")  # from the checkpoint, not page 1
    assert pulled.path.read_bytes() == as_file(tmp_path / "by_hand.jsonl", customers).read_bytes()
