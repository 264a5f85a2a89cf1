"""A dead run never blocks the next one (DESIGN invariant 13, issue 13.1).

Real `loyalty-pipeline run` processes on one instance: one is frozen (SIGSTOP) while it holds the
`duckdb` pool slot, then killed or left to block another; the reaper sensor on an instance where a
run's process is gone.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import PARENT_RUN_ID_TAG, ROOT_RUN_ID_TAG, TAGS_TO_MAYBE_OMIT_ON_RETRY

from loyalty_pipeline.devtools.emulator import Emulator
from loyalty_pipeline.operations.dead_runs import label, reap
from loyalty_pipeline.operations.instance import DAGSTER_YAML
from loyalty_pipeline.outbound.shopimind.resources import KEY_ENV, URL_ENV
from loyalty_pipeline.processes import PID_TAG, ProcessId, process_tags, run_process
from loyalty_pipeline.settings import PROJECT_ROOT
from loyalty_pipeline.warehouse.connection import WAREHOUSE_POOL
from loyalty_pipeline_tests.harness import Pipeline, account

D1, TODAY = "2026-03-01", "2026-03-02"


class Cli:
    """`loyalty-pipeline run` for one day in its own process, its output collected as it comes."""

    def __init__(self, root: Path, emulator: Emulator, day: str = D1):
        env = {**os.environ, "DAGSTER_HOME": str(root / "dagster_home"),
               "LOYALTY_WAREHOUSE": str(root / "warehouse" / "loyalty.duckdb"),
               "LOYALTY_EXPORTS_DIR": str(root / "exports"), "LOYALTY_OUTBOUND_DIR": str(root / "outbound"),
               "LOYALTY_TODAY": TODAY, KEY_ENV: emulator.api_key, URL_ENV: emulator.base_url}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "loyalty_pipeline.cli", "run", "--start", day, "--end", day],
            cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.pid, self.lines = self.proc.pid, []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self._reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert self.proc.poll() is None, f"ended without saying {text!r}:\n{self.output}"
            assert time.monotonic() < deadline, f"never said {text!r}:\n{self.output}"
            time.sleep(0.05)

    def finish(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.finish(timeout=30)


@pytest.fixture
def setup(tmp_path: Path):
    """The exports, an emulator, and the instance the CLI processes share (created first: two processes
    creating one sqlite instance at once can collide)."""
    pipe = Pipeline(tmp_path)  # only to write the export
    pipe.write_accounts(D1, [account(f"M{i:03}") for i in range(50)])
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    with Emulator() as emulator, dg.DagsterInstance.from_config(str(home)) as instance:
        yield tmp_path, emulator, instance


def claimed(instance: dg.DagsterInstance) -> list[str]:
    return [s.run_id for s in instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots
            if s.run_id]


def holds_no_sqlite_lock(home: Path) -> bool:
    """No process holds a write lock on the instance's sqlite files (one frozen mid-write would make
    every other process wait on them)."""
    for db in home.rglob("*.db"):
        con = sqlite3.connect(db, timeout=0.05)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.rollback()
        except sqlite3.OperationalError:
            return False
        finally:
            con.close()
    return True


def freeze_holding_the_slot(instance: dg.DagsterInstance, cli: Cli) -> str:
    """SIGSTOP `cli` at a moment it holds the duckdb slot (and no lock on the instance); its run id."""
    deadline = time.monotonic() + 120
    while True:
        assert cli.proc.poll() is None, f"the run ended before it held the slot:\n{cli.output}"
        assert time.monotonic() < deadline, "the run never held the slot"
        if claimed(instance):
            os.kill(cli.pid, signal.SIGSTOP)
            if holds_no_sqlite_lock(Path(instance.root_directory)):
                holders = claimed(instance)  # frozen: this cannot change any more
                if holders:
                    [run_id] = holders
                    return run_id
            os.kill(cli.pid, signal.SIGCONT)  # between two steps, or mid-write in the instance
        time.sleep(0.01)


@pytest.mark.real  # loyalty-pipeline processes frozen and killed
def test_a_run_killed_while_holding_the_slot_blocks_no_later_run(setup):
    root, emulator, instance = setup
    first = Cli(root, emulator)
    try:
        dead_run = freeze_holding_the_slot(instance, first)
    finally:
        first.kill()
    assert claimed(instance) == [dead_run]  # what used to freeze every later run

    second = Cli(root, emulator)
    try:
        assert second.finish(timeout=120) == 0, second.output
    finally:
        second.kill()
    assert f"run {dead_run[:8]} ({D1}) died (pid {first.pid} is gone): marked failed, its duckdb slot freed\n" \
        in second.output
    assert f"{D1}  ok" in second.output
    run = instance.get_run_by_id(dead_run)
    assert run.status == dg.DagsterRunStatus.FAILURE
    [failure] = instance.all_logs(dead_run, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert f"The process of this run is gone (pid {first.pid}" in failure.dagster_event.message  # shown in the UI
    assert claimed(instance) == []


@pytest.mark.real  # loyalty-pipeline processes frozen and killed
def test_a_run_waiting_for_the_slot_says_for_which_run_and_stops_on_sigterm(setup):
    root, emulator, instance = setup
    holder = Cli(root, emulator)
    waiter = None
    try:
        holding = freeze_holding_the_slot(instance, holder)
        waiter = Cli(root, emulator)
        waiter.wait_for(f"{D1}  waiting for the duckdb pool slot, held by run {holding[:8]} ({D1}, pid {holder.pid})")
        [waiting] = [r.run_id for r in instance.get_runs() if r.tags.get(PID_TAG) == str(waiter.pid)]

        started = time.monotonic()
        waiter.proc.send_signal(signal.SIGTERM)
        assert waiter.finish(timeout=15) == 128 + signal.SIGTERM
        assert time.monotonic() - started < 5
        assert f"{D1}  stopped by SIGTERM  run {waiting[:8]}: marked canceled" in waiter.output
        assert instance.get_run_by_id(waiting).status == dg.DagsterRunStatus.CANCELED
        info = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL)
        assert not [step for step in info.pending_steps if step.run_id == waiting]  # no longer queued

        # Ctrl-C of a working run: it stops at once and frees the slot it holds.
        os.kill(holder.pid, signal.SIGCONT)
        holder.proc.send_signal(signal.SIGINT)
        assert holder.finish(timeout=15) == 128 + signal.SIGINT
        assert f"{D1}  stopped by SIGINT  run {holding[:8]}: marked canceled" in holder.output
        assert instance.get_run_by_id(holding).status == dg.DagsterRunStatus.CANCELED
        assert claimed(instance) == []
    finally:
        holder.kill()
        if waiter:
            waiter.kill()


def finished_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.real  # the pids of processes that ended
def test_the_reaper_sensor_fails_daemon_runs_whose_process_is_gone(instance: dg.DagsterInstance):
    """What the daemon does: runs whose worker is gone (a dead pid, or a live pid that is another
    process now) are failed and their slots freed; a live run and a run on another host are not."""
    from loyalty_pipeline.definitions import defs

    me = ProcessId.current()
    processes = {
        "dead": ProcessId(finished_pid(), me.host, ""),
        "reused_pid": ProcessId(me.pid, me.host, "another-boot:1"),
        "alive": me,
        "elsewhere": ProcessId(finished_pid(), "another-host", ""),
        "crashed": ProcessId(finished_pid(), me.host, ""),  # failed by the code server
    }
    runs = {name: process_tags(f"{name}-run", process) for name, process in processes.items()}
    storage = instance.event_log_storage
    storage.set_concurrency_slots(WAREHOUSE_POOL, len(runs))
    for name, tags in runs.items():
        status = dg.DagsterRunStatus.FAILURE if name == "crashed" else dg.DagsterRunStatus.STARTED
        instance.add_run(dg.DagsterRun(job_name="daily_job", run_id=f"{name}-run", status=status,
                                       tags={**tags, "dagster/partition": D1}))
        assert storage.claim_concurrency_slot(WAREHOUSE_POOL, f"{name}-run", "loyalty_export").is_claimed

    sensor = defs.resolve_sensor_def("dead_run_reaper")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    skip = sensor.evaluate_tick(dg.build_sensor_context(instance=instance)).skip_message

    assert sorted(skip.splitlines()) == [
        f"run crashed- ({D1}, pid {runs['crashed'][PID_TAG]}) is failure but still held the duckdb slot: freed",
        f"run dead-run ({D1}) died (pid {runs['dead'][PID_TAG]} is gone): marked failed, its duckdb slot freed",
        f"run reused_p ({D1}) died (pid {me.pid} is gone): marked failed, its duckdb slot freed"]
    status = {r.run_id: r.status for r in instance.get_runs()}
    assert status == {"dead-run": dg.DagsterRunStatus.FAILURE, "reused_pid-run": dg.DagsterRunStatus.FAILURE,
                      "alive-run": dg.DagsterRunStatus.STARTED, "elsewhere-run": dg.DagsterRunStatus.STARTED,
                      "crashed-run": dg.DagsterRunStatus.FAILURE}
    assert sorted(claimed(instance)) == ["alive-run", "elsewhere-run"]
    assert reap(instance, by="test") == []  # nothing left to do


def test_a_run_worker_says_which_process_executes_it(pipeline: Pipeline):
    """Daemon and UI runs are tagged by the run worker itself (as it sets up its resources), so the reaper
    can judge them too; a re-execution's worker replaces the process tags copied from its parent."""
    pipeline.write_accounts(D1, [account("M1")])
    me = ProcessId.current()
    result = pipeline.run(D1, tags=process_tags(str(uuid.uuid4()), ProcessId(me.pid, me.host, "another-boot:1")))
    assert run_process(pipeline.instance.get_run_by_id(result.run_id)) == ProcessId.current()


def test_a_reexecuted_run_is_not_failed_for_the_death_of_its_parents_process(instance: dg.DagsterInstance):
    """A re-execution (the UI's, the daemon's retries) copies its parent's tags, the parent's process with
    them: until its own worker says which process it is, the reaper (the daemon's sensor, and every
    `loyalty-pipeline run` each second) must not fail it for its parent's death; once its own process has
    said so and is gone, it is failed."""
    from loyalty_pipeline.definitions import defs

    me = ProcessId.current()
    gone = ProcessId(me.pid, me.host, "another-boot:1")  # this pid, but another (ended) process
    job = defs.resolve_job_def("daily_job")
    parent_id, child_id = str(uuid.uuid4()), str(uuid.uuid4())
    parent = instance.create_run_for_job(job, run_id=parent_id, status=dg.DagsterRunStatus.FAILURE,
                                         tags={"dagster/partition": D1, **process_tags(parent_id, gone)})
    # What Dagster's create_reexecuted_run does with the parent's tags (use_parent_run_tags, as the UI).
    copied = {k: v for k, v in parent.tags.items() if k not in TAGS_TO_MAYBE_OMIT_ON_RETRY}
    child = instance.create_run_for_job(
        job, run_id=child_id, status=dg.DagsterRunStatus.STARTED, parent_run_id=parent.run_id,
        root_run_id=parent.run_id,
        tags={**copied, PARENT_RUN_ID_TAG: parent.run_id, ROOT_RUN_ID_TAG: parent.run_id})
    storage = instance.event_log_storage
    storage.set_concurrency_slots(WAREHOUSE_POOL, 1)
    assert storage.claim_concurrency_slot(WAREHOUSE_POOL, child.run_id, "loyalty_export").is_claimed

    assert reap(instance, by="test") == []
    assert instance.get_run_by_id(child.run_id).status == dg.DagsterRunStatus.STARTED
    assert claimed(instance) == [child.run_id]
    assert label(instance.get_run_by_id(child_id), child_id) == f"run {child_id[:8]} ({D1}, no process recorded)"

    instance.add_run_tags(child.run_id, process_tags(child.run_id, gone))  # its worker said, then died
    assert reap(instance, by="test") == [
        f"run {child_id[:8]} ({D1}) died (pid {me.pid} is gone): marked failed, its duckdb slot freed"]
    assert instance.get_run_by_id(child.run_id).status == dg.DagsterRunStatus.FAILURE
    assert claimed(instance) == []
