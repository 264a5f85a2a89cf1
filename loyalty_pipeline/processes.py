"""Which process is this, is that one still alive, and which process executes a Dagster run?

A process is named by its pid, its host and its start time: after a crash or a reboot the pid alone
may already belong to another program. On Linux the start time comes from /proc (clock ticks since
boot, with the boot id, so it is exact); elsewhere only the pid is checked.

Every run says which process executes it, in run tags: the CLI sets them when it creates a run, the
run worker (daemon, UI) when it sets up its resources (`announce`). operations/dead_runs.py reads
them to fail the runs whose process is gone. The tags name the run they were written for: a
re-execution copies its parent's tags, and until its own worker announces itself they name the
parent's (dead) process, not its own.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessId:
    pid: int
    host: str
    start: str  # "<boot id>:<start ticks>" on Linux, "" where unknown

    @classmethod
    def current(cls) -> ProcessId:
        return cls(os.getpid(), socket.gethostname(), _start(os.getpid()) or "")

    def is_local(self) -> bool:
        return self.host == socket.gethostname()

    def is_alive(self) -> bool:
        """True while this very process runs (on this host); a zombie or a reused pid is gone."""
        return is_alive(self.pid, self.start or None)


def is_alive(pid: int, start: str | None = None) -> bool:
    stat = _stat(pid)
    if stat is None:
        if _PROC.joinpath("self").exists():
            return False  # /proc works and has no such pid
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    state, ticks = stat[0], stat[19]
    if state in ("Z", "X"):  # exited, waiting to be reaped by its parent
        return False
    return start is None or start == f"{_boot_id()}:{ticks}"


def started_at(pid: int) -> float | None:
    """When `pid` started (epoch seconds, ±1 s), or None if it is gone or unknown."""
    stat = _stat(pid)
    if stat is None:
        return None
    try:
        btime = next(int(line.split()[1]) for line in _PROC.joinpath("stat").read_text().splitlines()
                     if line.startswith("btime "))
    except (OSError, StopIteration, ValueError):
        return None
    return btime + int(stat[19]) / os.sysconf("SC_CLK_TCK")


def _start(pid: int) -> str | None:
    stat = _stat(pid)
    return f"{_boot_id()}:{stat[19]}" if stat else None


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        text = _PROC.joinpath(str(pid), "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def _boot_id() -> str:
    try:
        return _PROC.joinpath("sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


# -- the process executing a run ----------------------------------------------------------------------------

PID_TAG, HOST_TAG, START_TAG = "loyalty/pid", "loyalty/host", "loyalty/process_start"
RUN_TAG = "loyalty/process_run"  # the run the three tags above were written for


def process_tags(run_id: str, process: ProcessId | None = None) -> dict[str, str]:
    """The tags of run `run_id` naming `process` (default: this one) as the one executing it."""
    process = process or ProcessId.current()
    return {PID_TAG: str(process.pid), HOST_TAG: process.host, START_TAG: process.start, RUN_TAG: run_id}


def run_process(run: dg.DagsterRun) -> ProcessId | None:
    """The process executing `run`, if it said (see `announce`). Tags written for another run (copied
    from the parent by a re-execution) say nothing about this one."""
    pid = run.tags.get(PID_TAG, "")
    if run.tags.get(RUN_TAG) != run.run_id or not pid.isdigit() or HOST_TAG not in run.tags:
        return None
    return ProcessId(int(pid), run.tags[HOST_TAG], run.tags.get(START_TAG, ""))


def announce(context: dg.InitResourceContext) -> None:
    """In a resource's setup: tag the run with this process, unless it already names it (a CLI run does
    from the start). Every resource a run's steps may be the only one to use calls it, so any run (a
    pull, a re-executed check) says which process executes it."""
    run = context.run
    if context.instance is not None and run is not None and run_process(run) != ProcessId.current():
        context.instance.add_run_tags(run.run_id, process_tags(run.run_id))
