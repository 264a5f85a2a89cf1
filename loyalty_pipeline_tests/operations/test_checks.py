"""Blocking volume checks stop the day's downstream assets; a run tag confirms a real change."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from loyalty_pipeline.devtools.emulator import EMULATOR_API_KEY, Emulator
from loyalty_pipeline.outbound.shopimind.resources import ShopiMindResource
from loyalty_pipeline.run_tags import CONFIRM_TAG
from loyalty_pipeline_tests.harness import Pipeline, account, day, table_rows
from loyalty_pipeline_tests.operations.helpers import checks_of, materialized, program_with

DOWNSTREAM = {"account_deltas", "loyalty_events", "reelevant_datasource"}


def run_with_tags(pipe: Pipeline, partition: str, tags: dict) -> dg.ExecuteInProcessResult:
    job = pipe.defs.resolve_job_def("daily_job")
    selection = None
    if pipe.shopimind is None:
        graph = pipe.defs.resolve_asset_graph()
        selection = list((dg.AssetSelection.all() - dg.AssetSelection.groups("shopimind")).resolve(graph)
                         & job.asset_layer.executable_asset_keys)
    return job.execute_in_process(partition_key=partition, instance=pipe.instance, tags=tags,
                                  raise_on_error=False, asset_selection=selection)


def test_a_half_written_export_stops_the_day_until_ops_confirm_it(tmp_path: Path):
    pipe = Pipeline(tmp_path, program_path=program_with(tmp_path, member_count_band=0.2, member_count_floor=5))
    members = [account(f"C{i:03}", points=100 + i) for i in range(100)]
    pipe.write_accounts(day(0), members)
    pipe.write_accounts(day(1), members[:95])   # -5 %: normal churn
    pipe.write_accounts(day(2), members[:40])   # -58 %: the file was cut short
    first = pipe.run(day(0))
    assert checks_of(first)["member_count_within_band"].description == "first snapshot: nothing to compare"
    assert checks_of(first)["member_count_within_band"].partition == day(0)   # recorded for its day (partitions.py)
    assert checks_of(pipe.run(day(1)))["member_count_within_band"].passed

    blocked = pipe.run(day(2), expect_success=False)
    check = checks_of(blocked)["member_count_within_band"]
    assert not blocked.success and not check.passed
    assert "95 members on 2026-03-02 → 40 on 2026-03-03 (-57.9%)" in check.description
    assert CONFIRM_TAG in check.description
    assert check.metadata["previous_members"].value == 95
    # The snapshot is written (ops can look at it) but nothing downstream ran for the day.
    assert materialized(blocked) == {"loyalty_export", "loyalty_snapshot"}
    assert pipe.query(f"SELECT count(*) FROM account_deltas WHERE snapshot_date = '{day(2)}'") == [(0,)]

    confirmed = run_with_tags(pipe, day(2), {CONFIRM_TAG: "true"})
    assert confirmed.success
    check = checks_of(confirmed)["member_count_within_band"]
    assert check.passed and check.metadata["confirmed"].value is True
    assert check.description == "change -57.9% confirmed by run tag"
    assert DOWNSTREAM <= materialized(confirmed)
    assert pipe.query(f"SELECT count(*) FROM account_deltas WHERE snapshot_date = '{day(2)}' "
                      "AND change_kind = 'removed'") == [(55,)]


def test_small_programs_pass_under_the_floor(tmp_path: Path):
    pipe = Pipeline(tmp_path)  # default floor: 100 members
    pipe.write_accounts(day(0), [account("C1"), account("C2")])
    pipe.write_accounts(day(1), [account("C1"), account("C2"), account("C3"), account("C4")])  # +100 %
    pipe.run(day(0))
    assert checks_of(pipe.run(day(1)))["member_count_within_band"].passed


def test_a_renamed_tier_fails_the_day_and_names_the_value(tmp_path: Path):
    pipe = Pipeline(tmp_path)  # unknown_tier_max_share 0, floor 0: one unknown name stops the day
    good = [account(f"C{i:03}", points=2000, tier="Silver") for i in range(40)]
    pipe.write_accounts(day(0), good + [account("X1", tier="Diamond")])   # one odd row: configuration drift
    renamed = [account(f"C{i:03}", points=2000, tier="Argent" if i < 25 else "Silver") for i in range(40)]
    pipe.write_accounts(day(1), renamed)
    first = pipe.run(day(0), expect_success=False)
    check = checks_of(first)["tiers_known"]
    assert not check.passed and check.metadata["unknown_tier_rows"].value == 1
    assert "1 of 41 rows (2.4%) have a tier the program does not know: 'Diamond' (1)" in check.description
    assert DOWNSTREAM.isdisjoint(materialized(first))

    blocked = pipe.run(day(1), expect_success=False)
    check = checks_of(blocked)["tiers_known"]
    assert not check.passed and "25 of 40 rows (62.5%)" in check.description and "'Argent' (25)" in check.description
    assert {"raw_tier": "Argent", "rows": 25} in table_rows(check.metadata["unknown_tiers"])
    assert DOWNSTREAM.isdisjoint(materialized(blocked))


def test_unknown_tiers_within_a_configured_tolerance_pass_and_are_named(tmp_path: Path):
    pipe = Pipeline(tmp_path, program_path=program_with(tmp_path, unknown_tier_floor=1))
    pipe.write_accounts(day(0), [account("C1"), account("X1", tier="Diamond")])
    check = checks_of(pipe.run(day(0)))["tiers_known"]
    assert check.passed
    assert check.description == "1 row(s) quarantined as unknown_tier ('Diamond' (1)), within the configured tolerance"


def test_an_event_storm_stops_the_event_deliveries_of_the_day(tmp_path: Path):
    with Emulator() as emulator:
        pipe = Pipeline(tmp_path, program_path=program_with(tmp_path, event_volume_band=1.0, event_volume_floor=3),
                        today=day(3), shopimind=ShopiMindResource(api_key=EMULATOR_API_KEY,
                                                                  base_url=emulator.base_url))
        base = [account(f"C{i}", points=100) for i in range(20)]
        pipe.write_accounts(day(0), base)
        pipe.write_accounts(day(1), [account("C0", points=150)] + base[1:])           # one member earns points
        pipe.write_accounts(day(2), [account(f"C{i}", points=150) for i in range(20)])  # everyone else too
        pipe.run(day(0))
        assert checks_of(pipe.run(day(1)))["event_volume_within_band"].passed
        assert len(emulator.state()["histories"]) == 1

        blocked = pipe.run(day(2), expect_success=False)
        check = checks_of(blocked)["event_volume_within_band"]
        assert not check.passed and check.metadata["limit"].value == 3
        assert f"19 events on {day(2)} vs 1 on {day(1)}" in check.description
        # Events are derived and account state still flows; no event of the day reaches ShopiMind.
        assert {"loyalty_events", "reelevant_datasource", "shopimind_accounts"} <= materialized(blocked)
        assert "shopimind_events" not in materialized(blocked)
        assert len(emulator.state()["histories"]) == 1

        confirmed = run_with_tags(pipe, day(2), {CONFIRM_TAG: "true"})
        assert confirmed.success and "shopimind_events" in materialized(confirmed)
        assert len(emulator.state()["histories"]) == 20


@pytest.mark.real  # loyalty-pipeline run in its own process
def test_ops_confirm_from_the_shell_with_a_run_tag(tmp_path: Path):
    """`loyalty-pipeline run` prints why a blocking check stopped the day, and --tag confirms it."""
    exports = tmp_path / "exports"
    pipe = Pipeline(tmp_path)   # only to write the files
    pipe.write_accounts(day(0), [account(f"C{i:03}") for i in range(300)])
    pipe.write_accounts(day(1), [account(f"C{i:03}") for i in range(120)])   # -60 %, 180 members
    with Emulator() as emulator:
        env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "LOYALTY_EXPORTS_DIR": str(exports),
               "LOYALTY_WAREHOUSE": str(tmp_path / "wh" / "loyalty.duckdb"),
               "LOYALTY_OUTBOUND_DIR": str(tmp_path / "out"),
               "SHOPIMIND_BASE_URL": emulator.base_url, "SHOPIMIND_API_KEY": EMULATOR_API_KEY}
        cli = [str(Path(sys.executable).parent / "loyalty-pipeline"), "run", "--start", day(0), "--end", day(1)]
        blocked = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=300)
        assert blocked.returncode == 1
        assert f"{day(1)}  FAILED" in blocked.stdout
        assert "check member_count_within_band: 300 members on 2026-03-01 → 120 on 2026-03-02" in blocked.stdout
        confirmed = subprocess.run([*cli[:3], day(1), "--end", day(1), "--tag", f"{CONFIRM_TAG}=true"],
                                   env=env, capture_output=True, text=True, timeout=300)
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    assert f"{day(1)}  ok" in confirmed.stdout


def test_the_snapshot_checks_run_in_one_step_and_each_can_run_alone(tmp_path: Path):
    """The four checks of loyalty_snapshot are one step (one connection) but still four checks: each
    recorded on its own for its day, and one re-run alone (as from the UI) evaluates only itself."""
    pipe = Pipeline(tmp_path)
    pipe.write_accounts(day(0), [account("C1"), account("C2")])
    result = pipe.run(day(0))
    four = {"one_row_per_customer", "rows_reconcile", "member_count_within_band", "tiers_known"}
    evaluations = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
                   and e.event_specific_data.asset_key == dg.AssetKey("loyalty_snapshot")
                   and e.event_specific_data.check_name != "freshness_check"]  # operations' own, by its sensor
    assert sorted(e.event_specific_data.check_name for e in evaluations) == sorted(four)
    assert {(e.step_key, e.event_specific_data.partition) for e in evaluations} == {("loyalty_snapshot_checks", day(0))}

    # The daily job's subset holding only that check (what the UI launches to re-run one check).
    key = dg.AssetCheckKey(dg.AssetKey("loyalty_snapshot"), "rows_reconcile")
    alone = pipe.defs.resolve_job_def("daily_job").get_subset(asset_selection=set(), asset_check_selection={key})
    rerun = alone.execute_in_process(partition_key=day(0), instance=pipe.instance, raise_on_error=False)
    assert rerun.success
    assert {(e.check_name, e.passed, e.partition) for e in rerun.get_asset_check_evaluations()} == {
        ("rows_reconcile", True, day(0))}
    assert rerun.get_asset_check_evaluations()[0].metadata["raw"].value == 2
