"""A re-written export relaunches its day and the days after it; no event reaches ShopiMind twice."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from loyalty_pipeline.devtools.emulator import EMULATOR_API_KEY, Emulator
from loyalty_pipeline.outbound.shopimind.resources import ShopiMindResource
from loyalty_pipeline_tests.harness import Pipeline, account, day, failure_messages

pytestmark = pytest.mark.real  # long scenario: a week relaunched through the sensor and Dagster runs


def land(pipe: Pipeline, partition: str, rows: list[dict], age_s: float) -> None:
    path = pipe.write_accounts(partition, rows)
    os.utime(path, (time.time() - age_s, time.time() - age_s))


def sensor_runs(pipe: Pipeline, instance: dg.DagsterInstance, cursor: str | None) -> tuple[list[str], str]:
    """One tick of the real sensor, then its run requests executed in order, as the run queue would."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=pipe.resources(),
                                      repository_def=pipe.defs.get_repository_def())
    data = pipe.defs.resolve_sensor_def("export_arrival_sensor").evaluate_tick(context)
    job = pipe.defs.resolve_job_def("daily_job")
    for request in data.run_requests:
        result = job.execute_in_process(partition_key=request.partition_key, tags=request.tags,
                                        instance=instance, raise_on_error=False)
        assert result.success, failure_messages(result)
    return [f"{r.partition_key} {r.tags['loyalty/reason']}" for r in data.run_requests], data.cursor


def test_a_replaced_half_export_reruns_the_following_days_without_duplicate_events(
        tmp_path: Path, instance: dg.DagsterInstance):
    with Emulator() as emulator:
        pipe = Pipeline(tmp_path, today=day(3), shopimind=ShopiMindResource(
            api_key=EMULATOR_API_KEY, base_url=emulator.base_url, history_visibility_s=0))
        full_day1 = [account("C1", points=1200, tier="Silver"), account("C2", points=150)] + [
            account(f"C{i}") for i in range(3, 7)]
        land(pipe, day(0), [account(f"C{i}") for i in range(1, 7)], age_s=7200)
        land(pipe, day(1), full_day1[:2], age_s=7200)           # cut short: C3..C6 missing
        land(pipe, day(2), [account("C1", points=1200, tier="Silver"), account("C2", points=150),
                            account("C3", points=150), account("C4"), account("C5"),
                            account("C6", points=6000, tier="Gold")], age_s=7200)

        runs, cursor = sensor_runs(pipe, instance, None)
        assert runs == [f"{day(0)} new", f"{day(1)} new", f"{day(2)} new"]
        first_pass = emulator.state()["histories"]
        assert first_pass, "the first pass sends events"

        land(pipe, day(1), full_day1, age_s=60 * 5)             # the complete file replaces it
        runs, cursor = sensor_runs(pipe, instance, cursor)
        assert runs == [f"{day(1)} changed", f"{day(2)} after {day(1)}"]

    # The days were recomputed against the right previous snapshot ...
    assert pipe.query(f"SELECT count(*) FROM snapshots WHERE snapshot_date = '{day(1)}'") == [(6,)]
    assert pipe.query("SELECT DISTINCT snapshot_date::VARCHAR, previous_snapshot_date::VARCHAR "
                      "FROM account_deltas ORDER BY 1") == [(day(0), None), (day(1), day(0)), (day(2), day(1))]
    assert pipe.query(f"SELECT count(*) FROM account_deltas WHERE snapshot_date = '{day(1)}' "
                      "AND change_kind = 'removed'") == [(0,)]
    # ... and no event key was triggered twice: every trigger at ShopiMind is one sent event.
    histories = emulator.state()["histories"]
    keys = Counter(h["payload"]["metaData"]["event_key"] for h in histories)
    assert keys and max(keys.values()) == 1, [k for k, n in keys.items() if n > 1]
    sent = pipe.query("SELECT key FROM delivery_state WHERE kind = 'event' AND status = 'sent'")
    assert set(keys) == {k for (k,) in sent}
    upgrades = [(h["code_name"], h["contact"]) for h in histories if h["code_name"] == "loyalty.tier_upgraded"]
    assert sorted(str(u) for u in upgrades) == sorted({str(u) for u in upgrades})
    assert len(upgrades) == 2   # C1 to Silver on day 1, C6 to Gold on day 2: once each
