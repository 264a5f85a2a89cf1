"""Invariant 4: deltas compare with the latest earlier snapshot; the first snapshot is a baseline."""

from __future__ import annotations

from loyalty_pipeline_tests.harness import Pipeline, account


def deltas(pipeline: Pipeline, day: str) -> dict[str, tuple]:
    rows = pipeline.query(
        "SELECT customer_id, previous_snapshot_date::VARCHAR, gap_days, change_kind, balance_delta, "
        "tier_before, tier_after, tier_direction FROM account_deltas WHERE snapshot_date = $day",
        {"day": day})
    return {r[0]: r[1:] for r in rows}


def test_the_first_snapshot_is_a_baseline(pipeline: Pipeline):
    pipeline.write_accounts("2026-03-01", [account("C1"), account("C2")])
    pipeline.run("2026-03-01")
    assert deltas(pipeline, "2026-03-01") == {
        "C1": (None, None, "new", 100, None, "Bronze", None),
        "C2": (None, None, "new", 100, None, "Bronze", None),
    }


def test_deltas_reach_back_to_the_latest_earlier_snapshot_across_a_gap(pipeline: Pipeline):
    pipeline.write_accounts("2026-03-01", [
        account("UP", points=900), account("DOWN", points=6000, tier="Gold"), account("SAME"),
        account("GONE"), account("JOIN", tier=""), account("LEAVE")])
    pipeline.write_accounts("2026-03-04", [
        account("UP", points=1500, tier="Silver"), account("DOWN", points=4000, tier="Silver"),
        account("SAME"), account("NEW"), account("JOIN"), account("LEAVE", tier="")])
    pipeline.run("2026-03-01")
    pipeline.run("2026-03-04")  # 2026-03-02 and -03 never arrived
    assert deltas(pipeline, "2026-03-04") == {
        "UP": ("2026-03-01", 3, "changed", 600, "Bronze", "Silver", "up"),
        "DOWN": ("2026-03-01", 3, "changed", -2000, "Gold", "Silver", "down"),
        "GONE": ("2026-03-01", 3, "removed", -100, "Bronze", None, None),
        "NEW": ("2026-03-01", 3, "new", 100, None, "Bronze", None),
        "JOIN": ("2026-03-01", 3, "changed", 0, None, "Bronze", "joined"),
        "LEAVE": ("2026-03-01", 3, "changed", 0, "Bronze", None, "left"),
    }  # SAME is unchanged: no row


def test_a_late_earlier_day_is_used_once_its_snapshot_exists(pipeline: Pipeline):
    pipeline.write_accounts("2026-03-01", [account("C1", points=100)])
    pipeline.write_accounts("2026-03-02", [account("C1", points=150)])
    pipeline.write_accounts("2026-03-03", [account("C1", points=180)])
    pipeline.run("2026-03-01")
    pipeline.run("2026-03-03")
    assert deltas(pipeline, "2026-03-03")["C1"][:4] == ("2026-03-01", 2, "changed", 80)
    pipeline.run("2026-03-02")  # arrives late; re-running the following day re-bases it
    pipeline.run("2026-03-03")
    assert deltas(pipeline, "2026-03-03")["C1"][:4] == ("2026-03-02", 1, "changed", 30)


def test_deltas_of_a_day_never_ingested_are_skipped_not_failed(pipeline: Pipeline):
    """A UI backfill ending on D also selects D+1's deltas; if D+1 has no export yet, skip them."""
    import dagster as dg

    from loyalty_pipeline.snapshots.assets import account_deltas

    pipeline.write_accounts("2026-03-01", [account("C1")])
    pipeline.run("2026-03-01")
    result = dg.materialize([account_deltas], partition_key="2026-03-02", resources=pipeline.resources(),
                            instance=pipeline.instance)
    assert result.success
    assert result.get_asset_materialization_events() == []
    assert pipeline.query("SELECT count(*) FROM account_deltas WHERE snapshot_date = '2026-03-02'") == [(0,)]


# Each value a delta compares (macros.sql, delta_values), changed alone on day 2: deltas narrow the members
# they compare by a hash of these values first, so one that does not reach the hash would be missed.
ONE_CHANGE = {
    "email": "moved@example.com", "enrolled": "false", "points_balance": 101, "lifetime_points": 150,
    "tier": "Silver", "tier_since": "2026-02-01", "member_since": "2025-07-01",
    "next_expiry_date": "2026-06-30", "next_expiry_amount": "50",
}


def test_a_change_to_any_compared_value_alone_is_a_delta(pipeline: Pipeline):
    before = [account(f"C_{field}") for field in ONE_CHANGE] + [
        account("SAME"), account("SWAPPED", tier_since="2026-01-01", member_since="2025-06-01"),
        account("CLEARED", next_expiry_date="2026-06-30", next_expiry_amount="50")]
    after = [account(f"C_{field}", **{field: value}) for field, value in ONE_CHANGE.items()] + [
        account("SAME"), account("SWAPPED", tier_since="2025-06-01", member_since="2026-01-01"),
        account("CLEARED")]  # a value becoming NULL
    pipeline.write_accounts("2026-03-01", before)
    pipeline.write_accounts("2026-03-02", after)
    pipeline.run_steps("2026-03-01", today="2026-03-01")
    pipeline.run_steps("2026-03-02", today="2026-03-02")
    changed = {k for k, v in deltas(pipeline, "2026-03-02").items() if v[2] == "changed"}
    assert changed == {f"C_{field}" for field in ONE_CHANGE} | {"SWAPPED", "CLEARED"}
