"""The pull as Dagster runs it: `pull_job` materializes today's export, which the daily job then
processes like a dropped file; a past date fails saying why; no daily run or backfill ever pulls; the
export sensor sees the pulled file, never the manifest or an unfinished pull."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from loyalty_pipeline.definitions import build_defs
from loyalty_pipeline.devtools.standins import LoyaltyLionStandIn
from loyalty_pipeline.devtools.standins.loyaltylion import API_KEY
from loyalty_pipeline.ingest.pull.assets import PULL_ASSET
from loyalty_pipeline.ingest.pull.staging import staging_name
from loyalty_pipeline.operations.sensors import export_days
from loyalty_pipeline.processes import ProcessId, run_process
from loyalty_pipeline_tests.harness import Pipeline, failure_messages
from loyalty_pipeline_tests.ingest.helpers import program_for
from loyalty_pipeline_tests.ingest.pull.helpers import D1, D2, objects


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LOYALTYLION_API_KEY", API_KEY)
    with LoyaltyLionStandIn() as stand_in:
        yield stand_in


def pipeline(root: Path, api: LoyaltyLionStandIn, today: dt.date, **pull) -> Pipeline:
    settings = {"enabled": True, "base_url": api.base_url, "requests_per_second": 1000, "page_size": 4, **pull}
    return Pipeline(root, program_path=program_for(root, "loyaltylion", pull=settings), today=today.isoformat())


def pull(pipe: Pipeline, date: str | None = None) -> dg.ExecuteInProcessResult:
    config = {"ops": {"loyalty_api_pull": {"config": {"date": date}}}} if date else None
    return pipe.defs.resolve_job_def("pull_job").execute_in_process(instance=pipe.instance, run_config=config,
                                                                      raise_on_error=False)


def test_pull_job_writes_todays_export_and_the_daily_job_processes_it(tmp_path: Path, api: LoyaltyLionStandIn):
    for day in (D1, D2):
        pipe = pipeline(tmp_path, api, today=day)
        api.customers = objects("loyaltylion", day)
        result = pull(pipe)
        assert result.success, failure_messages(result)
        [materialization] = result.asset_materializations_for_node("loyalty_api_pull")
        metadata = {k: v.value for k, v in materialization.metadata.items()}
        assert (metadata["business_date"], metadata["rows"], metadata["pages"]) == (
            day.isoformat(), len(api.customers), 2)
        assert metadata["base_url"] == api.base_url and metadata["resumed"] is False
        pipe.run(day.isoformat())  # the day, processed from the pulled file as from a dropped one
    assert pipe.query("SELECT snapshot_date, count(*) FROM raw_accounts GROUP BY ALL ORDER BY ALL") == [
        (D1, len(objects("loyaltylion", D1))), (D2, len(objects("loyaltylion", D2)))]
    assert pipe.query("SELECT count(*) FROM loyalty_events WHERE snapshot_date = $d", {"d": D2})[0][0] > 0


def test_a_past_date_refuses_to_pull_saying_why(tmp_path: Path, api: LoyaltyLionStandIn):
    pipe = pipeline(tmp_path, api, today=D2)
    result = pull(pipe, date=D1.isoformat())
    assert not result.success
    assert "cannot pull 2026-03-01: an API serves the members as they are now, so only today's export " \
           "(2026-03-02, Europe/Paris) can be pulled" in failure_messages(result)
    assert api.requests == [] and not (pipe.exports / D1.isoformat()).exists()


def test_a_program_that_does_not_pull_has_no_pull_and_a_stale_pull_job_fails_saying_so(
        tmp_path: Path, api: LoyaltyLionStandIn):
    pipe = pipeline(tmp_path, api, today=D2, enabled=False)
    # Nothing to pull, nothing shown: the UI's "Materialize all" over a range of days stays green.
    assert PULL_ASSET not in pipe.defs.resolve_asset_graph().get_all_asset_keys()
    assert "pull_job" not in {job.name for job in pipe.defs.resolve_all_job_defs()}
    assert "pull_schedule" not in {s.name for s in pipe.defs.schedules or []}
    # A location loaded while the program pulled, the program edited since: the run refuses.
    stale = build_defs(pipe.resources(), pull=True).resolve_job_def("pull_job")
    result = stale.execute_in_process(instance=pipe.instance, raise_on_error=False)
    assert "source.pull.enabled is false" in failure_messages(result) and api.requests == []


def test_no_day_run_nor_backfill_ever_pulls(tmp_path: Path, api: LoyaltyLionStandIn):
    defs = pipeline(tmp_path, api, today=D2).defs
    daily = defs.resolve_job_def("daily_job")
    assert PULL_ASSET not in daily.asset_layer.executable_asset_keys
    graph = defs.resolve_asset_graph()
    assert not graph.get(PULL_ASSET).child_keys and graph.get(PULL_ASSET).partitions_def is None
    assert defs.resolve_job_def("pull_job").asset_layer.executable_asset_keys == {PULL_ASSET}
    schedule = defs.resolve_schedule_def("pull_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 23 * * *", "Europe/Paris")


def test_the_export_sensor_sees_the_pulled_file_and_never_a_manifest_or_an_unfinished_pull(
        tmp_path: Path, api: LoyaltyLionStandIn):
    pipe = pipeline(tmp_path, api, today=D2)
    api.customers = objects("loyaltylion", D2)
    assert pull(pipe).success
    unfinished = pipe.exports / D1.isoformat() / staging_name("accounts")  # e.g. a pull killed on D1
    unfinished.mkdir(parents=True)
    (unfinished / "customers.jsonl").write_text('{"id": 1}\n')
    [found] = export_days(pipe.exports, "accounts", "activities")
    assert (found.day, [p.name for p in found.files]) == (D2, ["accounts.jsonl"])
    assert (pipe.exports / D2.isoformat() / "accounts.manifest.json").is_file()


def test_a_pull_run_says_which_process_executes_it(tmp_path: Path, api: LoyaltyLionStandIn):
    """A pull run of the daemon or the UI uses no warehouse; it too names its process (run tags), so that
    one killed by a reboot is failed by the dead-run reaper (operations/dead_runs.py) instead of staying
    'started' for ever."""
    pipe = pipeline(tmp_path, api, today=D2)
    api.customers = objects("loyaltylion", D2)
    result = pull(pipe)
    assert result.success, failure_messages(result)
    assert run_process(pipe.instance.get_run_by_id(result.run_id)) == ProcessId.current()
