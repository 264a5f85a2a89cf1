"""Re-running a finished day reuses what was built from unchanged inputs (warehouse/fingerprints.py);
a changed export, program or earlier day rebuilds exactly the days that depend on it."""

from __future__ import annotations

import os
import shutil

import dagster as dg
import duckdb

from loyalty_pipeline.run_tags import REBUILD_TAG
from loyalty_pipeline.warehouse.analytics import parquet_root
from loyalty_pipeline_tests.harness import DEFAULT_PROGRAM, Pipeline, account

D0, D1, D2, D3 = "2026-02-28", "2026-03-01", "2026-03-02", "2026-03-03"
STEPS = ["loyalty_export", "loyalty_snapshot", "account_deltas", "loyalty_events"]


def reused(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {event.asset_key.path[-1]: event.materialization.metadata["reused"].value
            for event in result.get_asset_materialization_events()
            if event.asset_key.path[-1] in STEPS}


def state(pipeline: Pipeline) -> dict:
    """Every row the daily steps wrote, and when each step last built each day."""
    return {
        "tables": {t: pipeline.table(t) for t in ("raw_accounts", "snapshots", "quarantine", "account_deltas",
                                                   "loyalty_events")},
        "built": pipeline.query("SELECT step, snapshot_date, fingerprint, built_at FROM step_fingerprints "
                                "ORDER BY ALL"),
    }


def two_days(pipeline: Pipeline) -> None:
    pipeline.write_accounts(D1, [account("C1", points=900), account("C2", points=4900, tier="Silver"),
                                 account("BAD", points="lots")])
    pipeline.write_accounts(D2, [account("C1", points=1200, tier="Silver"), account("C2", points=4950,
                                                                                    tier="Silver")])
    pipeline.run(D1)
    pipeline.run(D2)


def analysts_files(pipeline: Pipeline, day: str) -> dict[str, int]:
    root = parquet_root(pipeline.warehouse)
    return {table: (root / table / f"{day}.parquet").stat().st_mtime_ns
            for table in ("snapshots", "quarantine", "account_deltas", "loyalty_events")}


def test_re_running_a_finished_day_changes_nothing_and_says_so(pipeline: Pipeline):
    two_days(pipeline)
    before, files = state(pipeline), analysts_files(pipeline, D2)
    assert reused(pipeline.run(D2)) == dict.fromkeys(STEPS, True)
    assert state(pipeline) == before  # not one row rewritten, not one step rebuilt
    assert analysts_files(pipeline, D2) == files  # nor one analysts' file


def test_an_analysts_file_older_than_its_build_is_written_again(pipeline: Pipeline):
    """A run that built a day but died before publishing it leaves an old file: the next run mends it."""
    two_days(pipeline)
    stale = parquet_root(pipeline.warehouse) / "snapshots" / f"{D2}.parquet"
    os.utime(stale, (0, 0))
    assert reused(pipeline.run(D2))["loyalty_snapshot"] is True
    assert stale.stat().st_mtime > 0
    assert analysts_files(pipeline, D2)["quarantine"] < stale.stat().st_mtime_ns  # the others left alone


def test_a_rewritten_export_rebuilds_its_day_and_the_deltas_and_events_after_it(pipeline: Pipeline):
    two_days(pipeline)
    pipeline.write_accounts(D1, [account("C1", points=1100, tier="Silver"),
                                 account("C2", points=4900, tier="Silver")])
    assert reused(pipeline.run(D1)) == dict.fromkeys(STEPS, False)
    # D2's own export is unchanged, but its deltas and events compare with the new D1.
    assert reused(pipeline.run(D2)) == {"loyalty_export": True, "loyalty_snapshot": True,
                                        "account_deltas": False, "loyalty_events": False}
    assert pipeline.query("SELECT customer_id, balance_delta FROM account_deltas WHERE snapshot_date = $d "
                          "ORDER BY ALL", {"d": D2}) == [("C1", 100), ("C2", 50)]
    upgrades = pipeline.query("SELECT customer_id FROM loyalty_events WHERE snapshot_date = $d "
                              "AND code_name = 'loyalty.tier_upgraded'", {"d": D2})
    assert upgrades == []  # C1 was already Silver in the corrected D1


def test_an_edited_program_rebuilds_and_the_rebuild_tag_forces(tmp_path):
    program = tmp_path / "program.yaml"
    shutil.copy(DEFAULT_PROGRAM, program)
    pipeline = Pipeline(tmp_path, program_path=program)
    two_days(pipeline)
    program.write_text(program.read_text().replace("downgrade_grace_days: 30", "downgrade_grace_days: 14"))
    assert reused(pipeline.run(D2)) == {"loyalty_export": True, "loyalty_snapshot": False,
                                        "account_deltas": False, "loyalty_events": False}
    assert reused(pipeline.run(D2, tags={REBUILD_TAG: "true"})) == dict.fromkeys(STEPS, False)
    assert reused(pipeline.run(D2)) == dict.fromkeys(STEPS, True)


def test_rows_removed_behind_the_pipelines_back_are_rebuilt(pipeline: Pipeline):
    two_days(pipeline)
    con = duckdb.connect(str(pipeline.warehouse))
    con.execute("DELETE FROM account_deltas WHERE snapshot_date = $d", {"d": D2})
    con.close()
    assert reused(pipeline.run(D2))["account_deltas"] is False
    assert len(pipeline.table("account_deltas", D2)) == 2


def test_events_are_rebuilt_when_an_earlier_day_than_the_previous_one_changes(pipeline: Pipeline):
    """D3's deltas read D2 only, but its events read every earlier snapshot (here the approaching-tier
    cool-down looks back at D1): a corrected D1 rebuilds D3's events, not its deltas."""
    near, far = account("C1", points=900), account("C1", points=500)  # Silver is at 1000 points
    for day, row in ((D0, far), (D1, near), (D2, far), (D3, near)):
        pipeline.write_accounts(day, [row, account("C2")])
        pipeline.run(day)
    approaching = "SELECT count(*) FROM loyalty_events WHERE snapshot_date = $d " \
                  "AND code_name = 'loyalty.approaching_tier_upgrade'"
    assert pipeline.query(approaching, {"d": D3}) == [(0,)]  # came near on D1, within the cool-down
    pipeline.write_accounts(D1, [far, account("C2")])
    pipeline.run(D1)
    assert reused(pipeline.run(D3)) == {"loyalty_export": True, "loyalty_snapshot": True,
                                        "account_deltas": True, "loyalty_events": False}
    assert pipeline.query(approaching, {"d": D3}) == [(1,)]
