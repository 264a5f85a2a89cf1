"""DESIGN invariant 14: quarantine is not a membership change, and welcomes announce recent enrolments
only. The events are what customers receive: when in doubt, the pipeline stays silent and tells ops.
Every day runs through the real daily job (checks included) on a real DuckDB file.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from loyalty_pipeline_tests.events.helpers import ev, events
from loyalty_pipeline_tests.harness import DEFAULT_PROGRAM, Pipeline, account
from loyalty_pipeline_tests.operations.helpers import checks_of, materialized

D1, D2, D3 = "2026-03-01", "2026-03-02", "2026-03-03"
L = 50_000  # a lifetime that never changes: no loyalty.points_earned in these scenarios
REAL_NAMES = {"Gold": ["Loyal gold"], "Platinum": ["Tier 1 - Top", "Loyal Star Platinum"]}  # vendors' spellings


def deltas(pipeline: Pipeline, day: str) -> dict[str, tuple]:
    rows = pipeline.query("SELECT customer_id, change_kind, tier_before, tier_after FROM account_deltas "
                          "WHERE snapshot_date = $d", {"d": day})
    return {r[0]: r[1:] for r in rows}


def held_back(result) -> int:
    return result.asset_materializations_for_node("loyalty_events")[0].metadata["held_back/loyalty.enrolled"].value


def test_quarantine_is_not_a_membership_change(tmp_path: Path):
    pipeline = Pipeline(tmp_path, today=D3)
    pipeline.write_accounts(D1, [account("A", points=100, lifetime=L), account("E", points=1200, lifetime=L,
                                                                               tier="Silver")])
    pipeline.write_accounts(D2, [account("A", points=100, lifetime=L),
                                 account("E", points="12a", lifetime=L, tier="Gold"),      # rejected on D2
                                 account("K", points="1.5", member_since=D2)])             # rejected, first seen
    pipeline.write_accounts(D3, [account("A", points=100, lifetime=L),
                                 account("E", points=5500, lifetime=L, tier="Gold"),
                                 account("K", points=80, member_since=D2)])
    for day in (D1, D2, D3):
        pipeline.run(day)

    # Rejected on D2: not removed, no delta, no event.
    assert deltas(pipeline, D2) == {}
    assert events(pipeline, D2) == set()
    # Back on D3: E compares with its last valid row (D1, Silver), so its move to Gold is announced as what
    # it is; K was in the export before (rejected), so it is not new: no delta, no welcome.
    assert deltas(pipeline, D3) == {"E": ("changed", "Silver", "Gold")}
    assert events(pipeline, D3) == {ev(D3, "loyalty.tier_upgraded", "E", "Gold", previous_tier="Silver",
                                       new_tier="Gold")}


def test_welcomes_announce_recent_enrolments_only(tmp_path: Path):
    pipeline = Pipeline(tmp_path, today=D2)
    pipeline.write_accounts(D1, [account("A", points=100, lifetime=L)])
    pipeline.write_accounts(D2, [account("A", points=100, lifetime=L),
                                 account("NEW", points=50, member_since=D2),
                                 account("WEEK", points=50, member_since="2026-02-27"),    # max_event_age_days: 3
                                 account("OLD1", points=50, member_since="2026-02-26"),    # 4 days: a migration
                                 account("OLD2", points=2000, tier="Silver", member_since="2019-05-04"),
                                 account("UNKNOWN", points=50, member_since="")])           # no date: announced
    pipeline.run(D1)
    result = pipeline.run(D2)
    assert events(pipeline, D2) == {
        ev(D2, "loyalty.enrolled", "NEW", tier="Bronze", points_balance=50),
        ev(D2, "loyalty.enrolled", "WEEK", tier="Bronze", points_balance=50),
        ev(D2, "loyalty.enrolled", "UNKNOWN", tier="Bronze", points_balance=50),
    }
    assert held_back(result) == 2  # OLD1, OLD2: counted for ops, never stored as events
    assert pipeline.query("SELECT count(*) FROM loyalty_events WHERE customer_id LIKE 'OLD%'") == [(0,)]


def test_unknown_tiers_stop_the_day_until_ops_add_the_aliases(tmp_path: Path):
    program = tmp_path / "program.yaml"
    program.write_text(DEFAULT_PROGRAM.read_text())
    pipeline = Pipeline(tmp_path, program_path=program, today=D3)
    pipeline.write_accounts(D1, [account("A", points=100, lifetime=L),
                                 account("B", points=2000, lifetime=L, tier="Silver", member_since="2019-03-01")])
    pipeline.write_accounts(D2, [account("A", points=100, lifetime=L),
                                 account("B", points=6000, lifetime=L, tier="Loyal gold", member_since="2019-03-01"),
                                 account("F", points=20000, lifetime=L, tier="Tier 1 - Top", member_since="2018-01-01"),
                                 account("M", points=16000, lifetime=L, tier="Loyal Star Platinum", member_since=D2)])
    pipeline.write_accounts(D3, [account("A", points=100, lifetime=L),
                                 account("B", points=6000, lifetime=L, tier="Loyal gold", member_since="2019-03-01"),
                                 account("F", points=20000, lifetime=L, tier="Tier 1 - Top", member_since="2018-01-01"),
                                 account("M", points=16000, lifetime=L, tier="Loyal Star Platinum", member_since=D2)])
    pipeline.run(D1)

    # Three real vendor names the program does not know: configuration drift, not bad rows. The day stops
    # before its deltas, events and deliveries, naming each spelling with its count.
    blocked = pipeline.run(D2, expect_success=False)
    check = checks_of(blocked)["tiers_known"]
    assert not blocked.success and not check.passed
    assert ("3 of 4 rows (75.0%) have a tier the program does not know: 'Loyal Star Platinum' (1), "
            "'Loyal gold' (1), 'Tier 1 - Top' (1)") in check.description
    assert "aliases in program.yaml" in check.description
    assert materialized(blocked) == {"loyalty_export", "loyalty_snapshot"}

    # Ops add the aliases and re-run the day: the rows are snapshot rows, the day goes on.
    raw = yaml.safe_load(program.read_text())
    for tier in raw["tiers"]:
        tier["aliases"] += REAL_NAMES.get(tier["name"], [])
    program.write_text(yaml.safe_dump(raw, sort_keys=False))
    fixed = pipeline.run(D2)
    assert checks_of(fixed)["tiers_known"].passed
    assert pipeline.query("SELECT customer_id, tier FROM snapshots WHERE snapshot_date = $d ORDER BY ALL",
                          {"d": D2}) == [("A", "Bronze"), ("B", "Gold"), ("F", "Platinum"), ("M", "Platinum")]
    assert pipeline.query("SELECT count(*) FROM quarantine WHERE snapshot_date = $d", {"d": D2}) == [(0,)]
    # B's real move is announced; F joined the export with an enrolment from 2018 (held back), M is new.
    assert events(pipeline, D2) == {
        ev(D2, "loyalty.tier_upgraded", "B", "Gold", previous_tier="Silver", new_tier="Gold"),
        ev(D2, "loyalty.enrolled", "M", tier="Platinum", points_balance=16000),
    }
    assert held_back(fixed) == 1
    pipeline.run(D3)
    assert events(pipeline, D3) == set()


def test_a_corrected_last_valid_row_rebuilds_the_deltas_that_read_it(tmp_path: Path):
    """D3's deltas read D1 for a member rejected on D2 (the previous day): a corrected D1 rebuilds them."""
    pipeline = Pipeline(tmp_path, today=D3)
    pipeline.write_accounts(D1, [account("A", points=100, lifetime=L), account("E", points=1200, lifetime=L,
                                                                               tier="Silver")])
    pipeline.write_accounts(D2, [account("A", points=100, lifetime=L), account("E", points="12a", lifetime=L)])
    pipeline.write_accounts(D3, [account("A", points=100, lifetime=L), account("E", points=5500, lifetime=L,
                                                                               tier="Gold")])
    for day in (D1, D2, D3):
        pipeline.run(day)
    assert deltas(pipeline, D3) == {"E": ("changed", "Silver", "Gold")}

    pipeline.write_accounts(D1, [account("A", points=100, lifetime=L), account("E", points=5200, lifetime=L,
                                                                               tier="Gold")])
    pipeline.run(D1)
    rerun = pipeline.run(D3)
    assert rerun.asset_materializations_for_node("account_deltas")[0].metadata["reused"].value is False
    assert deltas(pipeline, D3) == {"E": ("changed", "Gold", "Gold")}  # its balance moved, its tier did not
    assert events(pipeline, D3) == set()
