"""Runs whose process is gone: marked failed, their pool slots freed (DESIGN invariant 13).

A run killed with kill -9, by the OOM killer or a reboot never releases the one `duckdb` pool slot
(instance.py), and every later run would wait for it for ever. So every run says which process
executes it, in run tags (pid, host, process start time: a reused pid is not mistaken for it;
processes.py): the CLI sets them when it creates a run, the run worker (daemon, UI) as it sets up
its resources. Tags copied from another run (a re-execution's, from its parent) are not this run's: a
run is judged only once its own process has said which it is.
`reap()` finds the runs in progress whose process is gone from this host, marks them failed with the
reason (shown in the UI) and frees their slots and their places in the pool queues; it also frees
the slots of finished runs whose process is gone. `loyalty-pipeline run` reaps before each day and
while it waits for the slot; the `dead_run_reaper` sensor (operations/sensors.py) does it in the daemon.
"""

from __future__ import annotations

import dagster as dg
from dagster import DagsterRunStatus

from ..processes import run_process
from ..warehouse.connection import WAREHOUSE_POOL

IN_PROGRESS = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED,
               DagsterRunStatus.CANCELING]


def label(run: dg.DagsterRun | None, run_id: str) -> str:
    """`run 1a2b3c4d (2026-03-01, pid 123)`: how ops recognise a run."""
    if run is None:
        return f"run {run_id[:8]} (deleted)"
    process = run_process(run)
    if process is None:
        where = "no process recorded"
    else:
        where = f"pid {process.pid}" + ("" if process.is_local() else f" on {process.host}")
    return f"run {run_id[:8]} ({run.tags.get('dagster/partition') or run.job_name}, {where})"


def reap(instance: dg.DagsterInstance, *, by: str) -> list[str]:
    """Fail the runs in progress whose process is gone and free what they hold; one line per run."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    held = _slots_by_run(instance)
    lines = []
    for run in instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS)):
        process = run_process(run)
        if process is None or not process.is_local() or process.is_alive():
            continue  # alive, or not ours to judge (another host, or no process recorded)
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.status not in IN_PROGRESS:
            continue  # it ended meanwhile (or another reaper got it)
        pools = held.pop(run.run_id, [])
        slot = f"its {' and '.join(pools)} slot freed" if pools else ""
        outcome = "canceled" if current.status == DagsterRunStatus.CANCELING else "failed"
        message = (f"The process of this run is gone (pid {process.pid} on {process.host}: killed, out of memory "
                   f"or a reboot). Marked {outcome} by {by}" + (f"; {slot}." if slot else "."))
        if outcome == "canceled":
            instance.report_run_canceled(current, message)
        else:
            instance.report_run_failed(current, message)
        storage.free_concurrency_slots_for_run(run.run_id)  # its slots and its places in the queues
        day = run.tags.get("dagster/partition") or run.job_name
        lines.append(f"run {run.run_id[:8]} ({day}) died (pid {process.pid} is gone): marked {outcome}"
                     + (f", {slot}" if slot else ""))
    # Finished runs (e.g. failed by Dagster) still holding a slot or queued for one: a queued step
    # of a dead run would be given the next free slot and never use it.
    for run_id in sorted(storage.get_concurrency_run_ids() | set(held)):
        run = instance.get_run_by_id(run_id)
        process = run_process(run) if run else None
        if run is not None and not run.is_finished:
            continue  # in progress: judged above
        if process is not None and (not process.is_local() or process.is_alive()):
            continue  # marked finished while its process still runs: it frees its slot as it ends
        storage.free_concurrency_slots_for_run(run_id)
        status = run.status.value.lower() if run else "deleted"
        pools = held.get(run_id)
        lines.append(f"{label(run, run_id)} is {status} but still " + (
            f"held the {' and '.join(pools)} slot: freed" if pools else "waited for a pool slot: dropped"))
    return lines


def held_by(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The pools whose slots `run_id` holds."""
    return _slots_by_run(instance).get(run_id, [])


def _slots_by_run(instance: dg.DagsterInstance) -> dict[str, list[str]]:
    """run id → the pools whose slots it holds."""
    held: dict[str, list[str]] = {}
    storage = instance.event_log_storage
    for pool in sorted(storage.get_concurrency_keys()):
        for slot in storage.get_concurrency_info(pool).claimed_slots:
            held.setdefault(slot.run_id, []).append(pool)
    return held


def waiting_for(instance: dg.DagsterInstance, run_id: str, pool: str = WAREHOUSE_POOL) -> list[str] | None:
    """If `run_id` waits for a slot of `pool`: the runs holding its slots (labels); else None."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    if not any(step.run_id == run_id and step.assigned_timestamp is None for step in info.pending_steps):
        return None
    holders = sorted({slot.run_id for slot in info.claimed_slots if slot.run_id and slot.run_id != run_id})
    return [label(instance.get_run_by_id(h), h) for h in holders]
