"""The daily schedule's ticks and the freshness check, through Dagster's own evaluation."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from loyalty_pipeline.operations.schedules import build_schedules, previous_business_date
from loyalty_pipeline.program import load_program
from loyalty_pipeline_tests.harness import DEFAULT_PROGRAM, Pipeline, account, day
from loyalty_pipeline_tests.operations.helpers import program_with

PARIS = ZoneInfo("Europe/Paris")


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


def test_the_business_date_is_the_local_one_not_utc():
    program = load_program(DEFAULT_PROGRAM)
    # 00:30 in Paris is still the previous day in UTC: the business date follows Paris.
    assert previous_business_date(dt.datetime(2026, 3, 2, 0, 30, tzinfo=PARIS), program) == dt.date(2026, 3, 1)
    assert previous_business_date(dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.UTC), program) == dt.date(2026, 3, 1)


def test_the_schedule_time_comes_from_program_yaml(tmp_path, monkeypatch):
    monkeypatch.setenv("LOYALTY_PROGRAM", str(program_with(tmp_path, schedule_time="07:45",
                                                           freshness_deadline="10:15")))
    daily, freshness = build_schedules("daily_job", "freshness_job")
    assert daily.cron_schedule == "45 7 * * *" and freshness.cron_schedule == "15 10 * * *"


def test_a_tick_before_the_first_partition_is_skipped(tmp_path, instance):
    _, data = tick(Pipeline(tmp_path), instance, dt.datetime(2025, 1, 1, 6, tzinfo=PARIS))
    assert data.run_requests == [] and "before partitions_start" in data.skip_message


def run_freshness(pipe: Pipeline, as_of: str) -> dict[str, dg.AssetCheckEvaluation]:
    result = pipe.defs.resolve_job_def("freshness_job").execute_in_process(
        instance=pipe.instance, run_config={"ops": {"freshness_checks": {"config": {"as_of": as_of}}}})
    assert result.success
    return {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}


def test_freshness_wants_yesterday_once_the_deadline_has_passed(tmp_path):
    pipe = Pipeline(tmp_path)  # freshness_deadline 09:00 Europe/Paris
    for offset in (0, 1):
        pipe.write_accounts(day(offset), [account("C1"), account("C2", points=200 + offset)])
        pipe.run(day(offset))
    daily_assets = {"loyalty_export", "loyalty_snapshot", "account_deltas", "loyalty_events",
                    "reelevant_datasource", "shopimind_accounts", "shopimind_events"}

    # 2026-03-03 08:59 in Paris: the deadline for 03-02 has not passed, 03-01 is expected and done.
    before = run_freshness(pipe, "2026-03-03T08:59:00+01:00")
    assert set(before) == daily_assets
    assert before["loyalty_snapshot"].metadata["expected_partition"].value == "2026-03-01"
    # 09:00: 03-02 is expected. The harness ran it without the ShopiMind assets: those are late.
    after = run_freshness(pipe, "2026-03-03T09:00:00+01:00")
    assert after["loyalty_snapshot"].metadata["expected_partition"].value == "2026-03-02"
    late = {name for name, check in after.items() if not check.passed}
    assert late == {"shopimind_accounts", "shopimind_events"}
    assert "has no materialization for 2026-03-02" in after["shopimind_events"].description
    # The next morning nothing of 03-03 exists yet: everything is late.
    assert not any(c.passed for c in run_freshness(pipe, "2026-03-04T09:30:00+01:00").values())
    # A UTC timestamp is read in the program's zone: 07:59 UTC is 08:59 in Paris.
    assert run_freshness(pipe, "2026-03-03T07:59:00+00:00")["loyalty_export"].metadata[
        "expected_partition"].value == "2026-03-01"


def test_the_freshness_schedule_checks_at_the_deadline(tmp_path, instance):
    pipe = Pipeline(tmp_path)
    at = dt.datetime(2026, 3, 3, 9, 0, tzinfo=PARIS)
    schedule, data = tick(pipe, instance, at, "freshness_schedule")
    assert (schedule.cron_schedule, schedule.job_name) == ("0 9 * * *", "freshness_job")
    [request] = data.run_requests
    assert request.run_config["ops"]["freshness_checks"]["config"]["as_of"] == at.isoformat()
    # The daily job never runs the freshness checks: they are not about one business date.
    daily_checks = pipe.defs.resolve_job_def("daily_job").asset_layer.asset_graph.asset_check_keys
    assert {k.name for k in daily_checks}.isdisjoint({"done_by_deadline"})


def test_a_backfill_run_does_not_evaluate_freshness(tmp_path):
    """Backfills and UI materializations select every check of their assets: freshness stays silent there."""
    pipe = Pipeline(tmp_path)
    pipe.write_accounts(day(0), [account("C1")])
    job = pipe.defs.resolve_implicit_global_asset_job_def()
    keys = [dg.AssetKey(k) for k in ("loyalty_export", "loyalty_snapshot")]
    assert "done_by_deadline" in {k.name for k in job.asset_layer.asset_graph.asset_check_keys}
    result = job.execute_in_process(partition_key=day(0), instance=pipe.instance, asset_selection=keys)
    assert result.success
    names = {e.check_name for e in result.get_asset_check_evaluations()}
    assert "one_row_per_customer" in names and "done_by_deadline" not in names
    assert "freshness_checks" in {e.step_key for e in result.get_step_success_events()}   # it ran, silently
