from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest


@pytest.fixture
def instance(tmp_path: Path):
    """A persistent (sqlite) instance in the test's temp dir: schedule and sensor contexts need one."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    # Not dg.instance_for_test: it leaves a dangling global defs-state storage behind for later tests.
    inst = dg.DagsterInstance.local_temp(str(home))
    yield inst
    inst.dispose()
