"""The export-arrival sensor, evaluated by Dagster against a directory where exports land late, out of
order and re-written; and the run-failure sensor's report."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import dagster as dg

from loyalty_pipeline_tests.harness import Pipeline, account, day

TODAY = day(9)  # 2026-03-10: partitions up to 2026-03-09 exist


def land(pipe: Pipeline, partition: str, rows: list[dict], age_s: float = 3600) -> Path:
    """Write a day's export as if it had landed `age_s` seconds ago (older than the settle time)."""
    path = pipe.write_accounts(partition, rows)
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


def tick(pipe: Pipeline, instance: dg.DagsterInstance, cursor: str | None):
    sensor = pipe.defs.resolve_sensor_def("export_arrival_sensor")
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=pipe.resources(),
                                      repository_def=pipe.defs.get_repository_def())
    data = sensor.evaluate_tick(context)
    return [(r.partition_key, r.tags["loyalty/reason"]) for r in data.run_requests], data.run_requests, data.cursor


def test_late_out_of_order_and_rewritten_exports(tmp_path: Path, instance: dg.DagsterInstance):
    pipe = Pipeline(tmp_path, today=TODAY)
    sensor = pipe.defs.resolve_sensor_def("export_arrival_sensor")
    assert sensor.job_name == "daily_job" and sensor.default_status == dg.DefaultSensorStatus.STOPPED
    members = [account("C1"), account("C2")]

    # Nothing yet.
    assert tick(pipe, instance, None)[0] == []
    # 03-01 and 03-03 land; 03-02 is late. Today's and tomorrow's folders are no partitions yet.
    land(pipe, day(0), members)
    land(pipe, day(2), members)
    land(pipe, TODAY, members)
    (pipe.exports / "notes").mkdir()
    runs, requests, cursor = tick(pipe, instance, None)
    assert runs == [(day(0), "new"), (day(2), "new")]
    state = json.loads(cursor)
    assert sorted(state) == [day(0), day(2)]
    sha = state[day(0)]["sha256"]
    assert len(sha) == 64 and requests[0].run_key == f"{day(0)}:{sha[:16]}"
    assert requests[0].tags["dagster/priority"] == str(-(dt_days(day(0))))
    assert {r.tags["loyalty/serial"] for r in requests} == {"daily"}

    # Same files: no run, same cursor.
    again, _, cursor2 = tick(pipe, instance, cursor)
    assert again == [] and json.loads(cursor2) == state

    # 03-02 arrives late, with 03-04: in date order, and 03-03 again after 03-02 (its deltas change).
    land(pipe, day(3), members)
    land(pipe, day(1), members + [account("C3")])
    runs, requests, cursor = tick(pipe, instance, cursor)
    assert runs == [(day(1), "new"), (day(2), f"after {day(1)}"), (day(3), "new")]
    keys = [r.run_key for r in requests]

    # 03-02 is re-exported with different content: 03-02, then every later day launched so far.
    land(pipe, day(1), members + [account("C3", points=900)], age_s=1800)
    runs, requests, cursor = tick(pipe, instance, cursor)
    assert runs == [(day(1), "changed"), (day(2), f"after {day(1)}"), (day(3), f"after {day(1)}")]
    assert not set(keys) & {r.run_key for r in requests}   # new run keys: Dagster does not dedupe them
    assert json.loads(cursor)[day(1)]["sha256"] != state.get(day(1), {}).get("sha256")

    # Touched but identical (a copy tool re-wrote the same bytes): no run, the cursor notes the new mtime.
    path = pipe.exports / day(2) / "accounts.csv"
    os.utime(path, (time.time() - 600, time.time() - 600))
    runs, _, touched = tick(pipe, instance, cursor)
    assert runs == [] and json.loads(touched)[day(2)]["sha256"] == json.loads(cursor)[day(2)]["sha256"]
    assert json.loads(touched)[day(2)]["stat"] != json.loads(cursor)[day(2)]["stat"]

    # A file still being written (younger than export_settle_seconds) waits, and so do the days after it.
    land(pipe, day(5), members, age_s=1)
    land(pipe, day(6), members)
    runs, _, waiting = tick(pipe, instance, touched)
    assert runs == [] and day(5) not in json.loads(waiting) and day(6) not in json.loads(waiting)
    os.utime(pipe.exports / day(5) / "accounts.csv", (time.time() - 120, time.time() - 120))
    runs, _, _ = tick(pipe, instance, waiting)
    assert runs == [(day(5), "new"), (day(6), "new")]


def test_only_folders_named_as_the_ingest_reads_them_are_days(tmp_path: Path, instance: dg.DagsterInstance):
    """`20261106` parses as a date in Python, but the ingest reads `2026-11-06/`: such a folder is no day
    (it used to launch a run that failed "no export")."""
    pipe = Pipeline(tmp_path, today=TODAY)
    land(pipe, day(0), [account("C1")])
    for name in (day(1).replace("-", ""), f"{day(2)}T00:00", f" {day(3)}", "2026-W10-3"):
        land(pipe, name, [account("C1")])
    runs, _, cursor = tick(pipe, instance, None)
    assert runs == [(day(0), "new")] and sorted(json.loads(cursor)) == [day(0)]


def test_an_activities_file_is_part_of_the_day(tmp_path: Path, instance: dg.DagsterInstance):
    pipe = Pipeline(tmp_path, today=TODAY)
    land(pipe, day(0), [account("C1")])
    _, _, cursor = tick(pipe, instance, None)
    activities = pipe.write_csv(day(0), "activities.csv", ["customer_id", "occurred_at", "points", "reason"],
                                [{"customer_id": "C1", "occurred_at": "2026-03-01", "points": 5, "reason": "x"}])
    os.utime(activities, (time.time() - 300, time.time() - 300))
    runs, _, _ = tick(pipe, instance, cursor)
    assert runs == [(day(0), "changed")]


def dt_days(partition: str) -> int:
    return (dt.date.fromisoformat(partition) - dt.date(2025, 1, 1)).days


# -- run failures ------------------------------------------------------------------------------------------

class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def failure_context(pipe: Pipeline, instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult):
    run = instance.get_run_by_id(result.run_id)
    [record] = instance.get_records_for_run(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    return dg.build_run_status_sensor_context(
        sensor_name="run_failure_notifier", dagster_event=record.event_log_entry.dagster_event,
        dagster_instance=instance, dagster_run=run, resources=pipe.resources()).for_run_failure()


def test_a_failed_run_is_posted_to_the_webhook(tmp_path: Path, instance: dg.DagsterInstance, monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("LOYALTY_FAILURE_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hook")
        pipe = Pipeline(tmp_path)
        pipe.instance = instance
        result = pipe.run(day(4), expect_success=False)   # no export for that day
        assert not result.success
        sensor = pipe.defs.resolve_sensor_def("run_failure_notifier")
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
        sensor(failure_context(pipe, instance, result))
    finally:
        server.shutdown()
    [report] = _Hook.received
    assert report["partition"] == day(4) and report["run_id"] == result.run_id and report["job"] == "daily_job"
    assert [s["step"] for s in report["failed_steps"]] == ["loyalty_export"]
    assert "no export for 2026-03-05" in report["failed_steps"][0]["error"]
    assert report["text"].startswith(f"loyalty pipeline: run {result.run_id[:8]} of daily_job failed for {day(4)}")


def test_an_unreachable_webhook_does_not_break_the_sensor(tmp_path: Path, instance: dg.DagsterInstance,
                                                          monkeypatch):
    monkeypatch.setenv("LOYALTY_FAILURE_WEBHOOK_URL", "http://127.0.0.1:9/nothing-listens-here")
    pipe = Pipeline(tmp_path)
    pipe.instance = instance
    result = pipe.run(day(4), expect_success=False)
    context = failure_context(pipe, instance, result)
    logged: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = logged.append
    context.log.addHandler(handler)
    pipe.defs.resolve_sensor_def("run_failure_notifier")(context)  # does not raise
    # The failure is still logged in the tick log; the webhook's refusal is a warning that names no URL
    # (it may embed a secret token).
    error, warning = logged
    assert error.levelno == logging.ERROR
    assert error.getMessage().startswith(f"loyalty pipeline: run {result.run_id[:8]} of daily_job failed")
    assert warning.levelno == logging.WARNING
    assert warning.getMessage() == "failure webhook did not accept the report: ConnectError"


def test_the_failure_report_gives_the_cause_of_an_error_that_is_no_dg_failure(tmp_path: Path,
                                                                              instance: dg.DagsterInstance):
    """Dagster wraps such an error as 'Error occurred while executing op …'; the report reads past it."""
    from loyalty_pipeline.operations.sensors import failure_report

    pipe = Pipeline(tmp_path)
    pipe.outbound.write_text("a file where the outbound folder should be")
    pipe.instance = instance
    pipe.write_accounts(day(0), [account("C1")])
    result = pipe.run(day(0), expect_success=False)
    [step] = failure_report(failure_context(pipe, instance, result))["failed_steps"]
    assert step == {"step": "reelevant_datasource",
                    "error": f"NotADirectoryError: [Errno 20] Not a directory: '{pipe.outbound / 'reelevant'}'"}
