"""The daily schedule's ticks, the freshness checks and their sensor, through Dagster's own evaluation."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

# Dagster's clock, which its freshness checks and their sensor read; freeze_time is how Dagster's own
# tests set it (no public equivalent).
from dagster._core.test_utils import freeze_time

from loyalty_pipeline.definitions import build_defs
from loyalty_pipeline.program import load_program
from loyalty_pipeline.settings import PROJECT_ROOT
from loyalty_pipeline_tests.harness import Pipeline, account, day
from loyalty_pipeline_tests.operations.helpers import program_with

PARIS = ZoneInfo("Europe/Paris")
DAILY_ASSETS = {"loyalty_export", "loyalty_snapshot", "account_deltas", "loyalty_events",
                "reelevant_datasource", "shopimind_accounts", "shopimind_events"}


def tick(pipe: Pipeline, instance: dg.DagsterInstance, at: dt.datetime, name: str = "daily_schedule"):
    schedule = pipe.defs.resolve_schedule_def(name)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=at,
                                        resources=pipe.resources(), repository_def=pipe.defs.get_repository_def())
    return schedule, schedule.evaluate_tick(context)


@pytest.mark.parametrize(("local_tick", "partition"), [
    (dt.datetime(2026, 3, 2, 6, 0), "2026-03-01"),
    (dt.datetime(2026, 3, 29, 6, 0), "2026-03-28"),   # the night clocks go forward
    (dt.datetime(2026, 10, 26, 6, 0), "2026-10-25"),  # the day after they go back
    (dt.datetime(2027, 1, 1, 6, 0), "2026-12-31"),
])
def test_a_tick_runs_the_daily_job_for_the_previous_business_date(tmp_path, instance, local_tick, partition):
    pipe = Pipeline(tmp_path)
    schedule, data = tick(pipe, instance, local_tick.replace(tzinfo=PARIS))
    assert (schedule.cron_schedule, schedule.execution_timezone, schedule.job_name) == (
        "0 6 * * *", "Europe/Paris", "daily_job")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED   # data engineers turn it on
    [request] = data.run_requests
    assert (request.partition_key, request.run_key) == (partition, partition)
    assert request.tags["loyalty/trigger"] == "schedule" and request.tags["loyalty/serial"] == "daily"


def test_the_business_date_is_the_local_one_not_utc(tmp_path, instance):
    pipe = Pipeline(tmp_path)
    # 00:30 in Paris is still the previous day in UTC: the business date follows Paris.
    for at in (dt.datetime(2026, 3, 2, 0, 30, tzinfo=PARIS), dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.UTC)):
        [request] = tick(pipe, instance, at)[1].run_requests
        assert request.partition_key == "2026-03-01"


PARAMS = "dagster/freshness_params"  # where Dagster records a freshness check's deadline and time zone


def freshness_params(defs: dg.Definitions) -> list[dict]:
    return [spec.metadata[PARAMS].value for checks in defs.asset_checks for spec in checks.check_specs
            if PARAMS in spec.metadata]


def test_the_schedule_time_and_the_deadline_come_from_program_yaml(tmp_path):
    defs = build_defs(program=load_program(program_with(tmp_path, schedule_time="07:45", freshness_deadline="10:15")))
    assert defs.resolve_schedule_def("daily_schedule").cron_schedule == "45 7 * * *"
    assert freshness_params(defs) == [{"deadline_cron": "15 10 * * *", "timezone": "Europe/Paris"}] * 7


@pytest.mark.real  # the code location loaded in a fresh process
def test_the_code_location_reads_the_program_named_by_loyalty_program(tmp_path):
    """As `dagster dev` or the daemon load it: program.yaml is the file LOYALTY_PROGRAM names, read when the
    code location loads (partitions, schedule, freshness deadline)."""
    path = program_with(tmp_path, schedule_time="05:30", freshness_deadline="08:45")
    path.write_text(path.read_text().replace("timezone: Europe/Paris", "timezone: America/New_York"))
    script = ("import json; from loyalty_pipeline.definitions import defs; "
              "s = defs.resolve_schedule_def('daily_schedule'); "
              f"params = [c.metadata['{PARAMS}'].value for a in defs.asset_checks for c in a.check_specs "
              f"if '{PARAMS}' in c.metadata]; "
              "print(json.dumps([s.cron_schedule, s.execution_timezone, params]))")
    proc = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "LOYALTY_PROGRAM": str(path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == [
        "30 5 * * *", "America/New_York", [{"deadline_cron": "45 8 * * *", "timezone": "America/New_York"}] * 7]


def test_a_tick_before_the_first_partition_is_skipped(tmp_path, instance):
    _, data = tick(Pipeline(tmp_path), instance, dt.datetime(2025, 1, 1, 6, tzinfo=PARIS))
    assert data.run_requests == [] and "has no partitions" in data.skip_message


# -- freshness -------------------------------------------------------------------------------------------

def expected_partition(evaluation: dg.AssetCheckEvaluation) -> str:
    """The partition the check wanted (Dagster names it in the description: passed, overdue or never seen)."""
    return re.search(r"partition (\d{4}-\d{2}-\d{2})", evaluation.description).group(1)


def run_freshness(pipe: Pipeline, at: str) -> dict[str, dg.AssetCheckEvaluation]:
    with freeze_time(dt.datetime.fromisoformat(at)):
        result = pipe.defs.resolve_job_def("freshness_job").execute_in_process(instance=pipe.instance)
    assert result.success
    return {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}


def two_days_without_shopimind(pipe: Pipeline) -> None:
    for offset in (0, 1):
        pipe.write_accounts(day(offset), [account("C1"), account("C2", points=200 + offset)])
        pipe.run(day(offset))


def test_freshness_wants_yesterday_once_the_deadline_has_passed(tmp_path):
    pipe = Pipeline(tmp_path)  # freshness_deadline 09:00 Europe/Paris
    two_days_without_shopimind(pipe)

    # 2026-03-03 08:59 in Paris: the deadline for 03-02 has not passed, 03-01 is expected and done.
    before = run_freshness(pipe, "2026-03-03T08:59:00+01:00")
    assert set(before) == DAILY_ASSETS
    assert expected_partition(before["loyalty_snapshot"]) == "2026-03-01" and before["loyalty_snapshot"].passed
    # 09:00: 03-02 is expected. The harness ran it without the ShopiMind assets: those are late.
    after = run_freshness(pipe, "2026-03-03T09:00:00+01:00")
    assert expected_partition(after["loyalty_snapshot"]) == "2026-03-02"
    assert after["loyalty_snapshot"].metadata["dagster/latest_cron_tick_timestamp"].value == dt.datetime(
        2026, 3, 3, 9, 0, tzinfo=PARIS).timestamp()   # the deadline it judged against
    late = {name for name, check in after.items() if not check.passed}
    assert late == {"shopimind_accounts", "shopimind_events"}
    assert "2026-03-02" in after["shopimind_events"].description
    # The next morning nothing of 03-03 exists yet: everything is late.
    assert not any(c.passed for c in run_freshness(pipe, "2026-03-04T09:30:00+01:00").values())
    # A UTC timestamp is read in the program's zone: 07:59 UTC is 08:59 in Paris.
    assert expected_partition(run_freshness(pipe, "2026-03-03T07:59:00+00:00")["loyalty_export"]) == "2026-03-01"


def sensor_tick(pipe: Pipeline, at: str) -> dg.RunRequest | None:
    sensor = pipe.defs.resolve_sensor_def("freshness_sensor")
    with freeze_time(dt.datetime.fromisoformat(at)):
        data = sensor.evaluate_tick(dg.build_sensor_context(instance=pipe.instance,
                                                            repository_def=pipe.defs.get_repository_def()))
    [request] = data.run_requests or [None]
    return request


def checked_assets(request: dg.RunRequest | None) -> set[str]:
    return {key.asset_key.to_user_string() for key in request.asset_check_keys} if request else set()


def test_the_freshness_sensor_runs_the_checks_again_once_the_deadline_passes(tmp_path, instance):
    pipe = Pipeline(tmp_path)
    pipe.instance = instance   # the sensor reads the checks' last results from the instance
    sensor = pipe.defs.resolve_sensor_def("freshness_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED   # ops turn it on, like the schedule

    first = sensor_tick(pipe, "2026-03-03T07:00:00+01:00")   # never evaluated: all of them
    assert checked_assets(first) == DAILY_ASSETS and first.tags["loyalty/trigger"] == "freshness"
    with freeze_time(dt.datetime(2026, 3, 3, 7, 30, tzinfo=PARIS)):
        two_days_without_shopimind(pipe)
    run_freshness(pipe, "2026-03-03T08:00:00+01:00")   # what the requested run does: 03-01 is expected
    # Before the deadline no passing check can become late, and the failed ones (no ShopiMind delivery
    # at all) wait for their asset to be materialized again.
    assert sensor_tick(pipe, "2026-03-03T08:59:00+01:00") is None
    # Past it, the passing ones are judged again: 03-02 is expected now.
    assert checked_assets(sensor_tick(pipe, "2026-03-03T09:01:00+01:00")) == DAILY_ASSETS - {
        "shopimind_accounts", "shopimind_events"}
    # The daily job never runs the freshness checks: they are not about one business date.
    daily_checks = pipe.defs.resolve_job_def("daily_job").asset_layer.asset_graph.asset_check_keys
    assert {k.name for k in daily_checks}.isdisjoint({"freshness_check"})


def test_a_backfill_run_judges_freshness_now_not_its_own_day(tmp_path):
    """Backfills and UI materializations select every check of their assets, the freshness checks too:
    there they judge the partition expected now, like anywhere else (they used to stay silent)."""
    pipe = Pipeline(tmp_path)
    pipe.write_accounts(day(0), [account("C1")])
    job = pipe.defs.resolve_implicit_global_asset_job_def()
    keys = [dg.AssetKey(k) for k in ("loyalty_export", "loyalty_snapshot")]
    with freeze_time(dt.datetime(2026, 3, 5, 10, 0, tzinfo=PARIS)):   # 03-04 is expected by now
        result = job.execute_in_process(partition_key=day(0), instance=pipe.instance, asset_selection=keys)
    assert result.success
    freshness = {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()
                 if e.check_name == "freshness_check"}
    assert set(freshness) == {"loyalty_export", "loyalty_snapshot"}
    assert {expected_partition(e) for e in freshness.values()} == {"2026-03-04"}
    assert not any(e.passed for e in freshness.values())   # the run built 03-01, not the day expected now
    assert "one_row_per_customer" in {e.check_name for e in result.get_asset_check_evaluations()}
