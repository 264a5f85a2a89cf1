"""What every bench stage shares: the simulated dates, peak-RSS bookkeeping, child processes.

Peak RSS per stage. Each measured stage runs in a fresh child process; inside it, the kernel's
high-water mark (VmHWM) is reset to the current RSS before each step (`/proc/self/clear_refs`,
value 5, Linux >= 4.0) and read after it. That is what lets the pipeline and its bare reference run
in the same process, one right after the other as the issue asks, and still report separate peaks:
the reference's peak starts from whatever the process holds once the pipeline's connection is
closed, never from the pipeline's own peak. Where the reset is refused, the numbers fall back to
`ru_maxrss` (monotone: a later step then reports the max so far) and the report says so.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Day 1 is the baseline (first snapshot: no events); day 2 is the measured day, run "the morning
# after" so its events are fresh (not suppressed_stale). Fixed dates keep runs comparable.
DAY1 = dt.date(2026, 3, 1)
DAY2 = dt.date(2026, 3, 2)
TODAY = DAY2 + dt.timedelta(days=1)

_HWM = re.compile(r"VmHWM:\s+(\d+) kB")
_RSS = re.compile(r"VmRSS:\s+(\d+) kB")


def _status_kb(pattern: re.Pattern) -> int | None:
    try:
        match = pattern.search(Path("/proc/self/status").read_text())
    except OSError:
        return None
    return int(match.group(1)) if match else None


def rss_mb() -> float:
    kb = _status_kb(_RSS)
    return round(kb / 1024, 1) if kb is not None else 0.0


class Peak:
    """Peak RSS of the current process since the last `reset()`, in MB."""

    def __init__(self) -> None:
        self.resettable = self._reset()

    @staticmethod
    def _reset() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            return _status_kb(_HWM) is not None
        except OSError:
            return False

    def reset(self) -> None:
        if self.resettable:
            self._reset()

    def mb(self) -> float:
        kb = _status_kb(_HWM) if self.resettable else None
        if kb is None:
            kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
        return round(kb / 1024, 1)


@contextmanager
def measured(peak: Peak, into: dict, name: str, rows: int | None = None):
    """Time and peak RSS of the `with` body, stored as into[name] = {seconds, peak_rss_mb, ...}."""
    peak.reset()
    started = time.perf_counter()
    entry: dict[str, Any] = {}
    into[name] = entry
    yield entry
    seconds = time.perf_counter() - started
    entry.update(seconds=round(seconds, 3), peak_rss_mb=peak.mb())
    if rows:
        entry["rows_per_s"] = round(rows / seconds) if seconds > 0 else None


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def copy_db(src: Path, dst: Path) -> Path:
    """A fresh copy of a DuckDB file (and its WAL, if a crash left one)."""
    for suffix in ("", ".wal"):
        target = Path(str(dst) + suffix)
        target.unlink(missing_ok=True)
        source = Path(str(src) + suffix)
        if source.exists():
            shutil.copyfile(source, target)
    return dst


def remove_db(path: Path) -> None:
    for suffix in ("", ".wal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def run_child(stage: str, args: dict, work: Path, *, timeout_s: float | None = None,
              env: dict | None = None) -> dict:
    """Run one stage in a fresh interpreter (`python -m loyalty_pipeline.devtools.bench.child`); return its JSON.

    The child writes its result to a file (stdout is left to DuckDB progress bars and Dagster logs,
    which go to <work>/logs/)."""
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stamp = f"{stage}-{time.strftime('%H%M%S')}-{os.getpid()}-{time.perf_counter_ns() % 10**6}"
    result_path, log_path = logs / f"{stamp}.json", logs / f"{stamp}.log"
    request = json.dumps({"stage": stage, "args": args, "result": str(result_path)}, default=str)
    with log_path.open("w") as log:
        proc = subprocess.run([sys.executable, "-m", "loyalty_pipeline.devtools.bench.child", request],
                              stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s,
                              env={**os.environ, **(env or {})})
    if proc.returncode != 0 or not result_path.exists():
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"bench stage {stage} failed (exit {proc.returncode}); log {log_path}:\n{tail}")
    return json.loads(result_path.read_text())


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []
