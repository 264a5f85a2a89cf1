"""Shared fixtures: a throwaway pipeline (exports dir, DuckDB file, Dagster instance) per test.

Two layers: `make check` runs the fast one (`-m "not real"`: steps called directly, Dagster runs in
process, the emulator on a thread); `make test` runs everything, the real-parts layer too (marked
`real`: the webserver, the daemon, the browser, process kills, subprocesses, long scenarios).
"""

from __future__ import annotations

import os
import subprocess
import sys
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


_BIN = Path(sys.executable).parent  # the venv's: python, dagster, dagster-webserver, loyalty-pipeline…
_start_process = subprocess.Popen._execute_child


@pytest.fixture(autouse=True)
def _no_python_process_in_the_fast_layer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that starts Python or one of the venv's programs (seconds of imports each, and a process to
    kill) belongs to the real-parts layer: unmarked, it fails saying so, so that `make check` stays fast.
    Small system tools started by libraries pass (Dagster's compute logs run `tail`, `platform` runs
    `uname`)."""
    if request.node.get_closest_marker("real") is not None:
        return

    def guarded(popen: subprocess.Popen, args, executable, *rest):
        program = Path(os.fsdecode(executable or (args if isinstance(args, str | bytes) else args[0])))
        if program.name.startswith("python") or program.parent == _BIN:
            raise RuntimeError(f"{request.node.nodeid} starts {program.name} ({args!r}): mark it @pytest.mark.real")
        return _start_process(popen, args, executable, *rest)

    monkeypatch.setattr(subprocess.Popen, "_execute_child", guarded)
