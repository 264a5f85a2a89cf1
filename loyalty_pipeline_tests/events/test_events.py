"""Invariants 4, 5 and 8 for loyalty_events: exact events per rule, over small hand-made exports.

The default program: tiers Bronze 0 / Silver 1000 / Gold 5000 / Platinum 15000 on points_balance,
grace 30 days, reminders 30/7/1, approaching threshold 250 with a 7-day cool-down, max age 3 days.
Members whose points should not matter keep a fixed lifetime (no points_earned) and a balance far
from the next tier (no approaching event).
"""

from __future__ import annotations

from pathlib import Path

from loyalty_pipeline.events.catalogue import CATALOGUE
from loyalty_pipeline_tests.events.helpers import ACTIVITY_HEADER, ev, events, program_file, statuses
from loyalty_pipeline_tests.harness import Pipeline, account

D1, D2 = "2026-03-01", "2026-03-02"
L = 50_000  # a lifetime that never changes: no loyalty.points_earned


def test_the_baseline_then_tier_moves_enrolments_opt_outs_and_lifetime_points(tmp_path: Path):
    pipeline = Pipeline(tmp_path, today=D2)
    pipeline.write_accounts(D1, [
        account("UP2", points=900, lifetime=L),
        account("DOWN", points=6000, lifetime=L, tier="Gold"),
        account("ALIAS", points=1500, lifetime=L, tier="Silver"),
        account("JOIN", points=100, lifetime=L, tier=""),
        account("LEFT", points=100, lifetime=L),
        account("OPT", points=2000, lifetime=L, tier="Silver"),
        account("BACK", points=100, lifetime=L, tier="", enrolled="false"),
        account("GONE", points=100, lifetime=L),
        account("EARN", points=100, lifetime=100),
        account("SPEND", points=600, lifetime=L),
        account("OUTSIDER", points=100, lifetime=100, tier="", enrolled="false"),
        account("NEAR", points=900, lifetime=L),                                    # 100 to Silver
        account("EXP", lifetime=L, next_expiry_date="2026-03-02", next_expiry_amount=50),  # tomorrow
    ])
    pipeline.write_accounts(D2, [
        account("UP2", points=5200, lifetime=L, tier="Gold"),          # two ranks at once
        account("DOWN", points=4000, lifetime=L, tier="Silver"),
        account("ALIAS", points=5100, lifetime=L, tier="GOLD"),        # the platform's spelling
        account("JOIN", points=100, lifetime=L, tier="Bronze"),
        account("LEFT", points=100, lifetime=L, tier=""),              # to no tier: not a downgrade
        account("OPT", points=2000, lifetime=L, tier="", enrolled="false"),
        account("BACK", points=100, lifetime=L, tier="Bronze", enrolled="true", member_since=D2),  # re-enrolled
        account("EARN", points=160, lifetime=160, email="Earn@Example.com"),
        account("SPEND", points=300, lifetime=L),
        account("OUTSIDER", points=300, lifetime=300, tier="", enrolled="false"),
        account("NEWGOLD", points=5000, lifetime=L, tier="Gold", member_since=D2),  # new member with a tier
        account("NEWOUT", points=0, lifetime=0, tier="", enrolled="false"),
        account("NEAR", points=900, lifetime=L),        # was already near Silver on the baseline
        account("EXP", lifetime=L, next_expiry_date="2026-03-02", next_expiry_amount=50),  # windows reached
    ])                                                                 # GONE is missing: nothing
    baseline = pipeline.run(D1)
    assert events(pipeline, D1) == set()  # the baseline emits nothing, whatever its members look like
    metadata = baseline.asset_materializations_for_node("loyalty_events")[0].metadata
    assert metadata["baseline"].value is True and metadata["events"].value == 0

    result = pipeline.run(D2)

    assert events(pipeline, D2) == {
        ev(D2, "loyalty.tier_upgraded", "UP2", "Gold", previous_tier="Bronze", new_tier="Gold"),
        ev(D2, "loyalty.tier_upgraded", "ALIAS", "Gold", previous_tier="Silver", new_tier="Gold"),
        ev(D2, "loyalty.tier_downgraded", "DOWN", "Silver", previous_tier="Gold", new_tier="Silver",
           grace_period_days=30),
        ev(D2, "loyalty.tier_joined", "JOIN", "Bronze", new_tier="Bronze"),
        ev(D2, "loyalty.opted_out", "OPT", previous_tier="Silver"),
        ev(D2, "loyalty.enrolled", "BACK", tier="Bronze", points_balance=100),
        ev(D2, "loyalty.enrolled", "NEWGOLD", tier="Gold", points_balance=5000),
        ev(D2, "loyalty.points_earned", "EARN", "purchase", points_amount=60, reason="purchase", new_balance=160),
    }
    assert pipeline.query("SELECT email, status FROM loyalty_events WHERE customer_id = 'EARN'") == [
        ("earn@example.com", "pending")]
    published = pipeline.warehouse.parent / "parquet" / "loyalty_events" / f"{D2}.parquet"  # analysts' copy
    assert pipeline.query(f"SELECT count(*) FROM read_parquet('{published}')") == [(8,)]

    metadata = result.asset_materializations_for_node("loyalty_events")[0].metadata
    fired = {"loyalty.points_earned": 1, "loyalty.tier_upgraded": 2, "loyalty.tier_downgraded": 1,
             "loyalty.enrolled": 2, "loyalty.opted_out": 1, "loyalty.tier_joined": 1}
    assert {k: v.value for k, v in metadata.items() if k.startswith(("events/", "status/"))} == {
        **{f"events/{code}": fired.get(code, 0) for code in CATALOGUE},  # one series per type, zeros included
        "status/pending": 8, "status/suppressed_stale": 0,
    }
    assert metadata["tier_migration"].value.splitlines() == [  # members of D2 by tier on D1 × tier on D2
        "| previous ↓ / new → | Bronze | Silver | Gold | (none) |",
        "|---|---:|---:|---:|---:|",
        "| Bronze | 4 |  | 1 | 1 |",     # EARN, SPEND, NEAR, EXP stayed; UP2; LEFT
        "| Silver |  |  | 1 | 1 |",      # ALIAS; OPT
        "| Gold |  | 1 |  |  |",         # DOWN
        "| (none) | 2 |  |  | 1 |",      # JOIN, BACK; OUTSIDER
        "| (new) |  |  | 1 | 1 |",       # NEWGOLD; NEWOUT
    ]


def test_activities_give_points_per_reason(tmp_path: Path):
    pipeline = Pipeline(tmp_path, today=D2)
    pipeline.write_accounts(D1, [
        account("A", points=1000, lifetime=2000, tier="Silver"), account("B", points=500),
        account("C", points=500), account("NE", points=0, tier="", enrolled="false"),
        account("E", points=100, lifetime=100),
    ])
    pipeline.write_accounts(D2, [
        account("A", points=970, lifetime=2170, tier="Silver"), account("B", points=470),
        account("C", points=490), account("NE", points=100, tier="", enrolled="false"),
        account("E", points=150, lifetime=150),    # lifetime rose, but the activities file says nothing
        account("NEW", points=80, lifetime=80, member_since=D2),
    ])
    pipeline.write_csv(D2, "activities.csv", ACTIVITY_HEADER, [
        {"customer_id": "A", "occurred_at": "2026-03-02T10:00:00+01:00", "points": 100, "reason": "purchase"},
        {"customer_id": "A", "occurred_at": "2026-03-02T11:00:00+01:00", "points": 50, "reason": "Review"},
        {"customer_id": "A", "occurred_at": "2026-03-02T12:00:00+01:00", "points": 20, "reason": "purchase"},
        {"customer_id": "A", "occurred_at": "2026-03-02T13:00:00+01:00", "points": -200, "reason": "redemption"},
        {"customer_id": "B", "occurred_at": "", "points": -30, "reason": "refund"},
        {"customer_id": "C", "occurred_at": "", "points": 40, "reason": ""},           # default reason
        {"customer_id": "C", "occurred_at": "", "points": -50, "reason": "purchase"},  # net -10: nothing
        {"customer_id": "NE", "occurred_at": "", "points": 100, "reason": "purchase"},  # not enrolled
        {"customer_id": "NEW", "occurred_at": "", "points": 80, "reason": "purchase"},
        {"customer_id": "GHOST", "occurred_at": "", "points": 10, "reason": "purchase"},  # not in the export
    ])
    pipeline.run(D1)
    pipeline.run(D2)
    assert events(pipeline, D2) == {
        ev(D2, "loyalty.points_earned", "A", "purchase", points_amount=120, reason="purchase", new_balance=970),
        ev(D2, "loyalty.points_earned", "A", "review", points_amount=50, reason="review", new_balance=970),
        ev(D2, "loyalty.points_earned", "NEW", "purchase", points_amount=80, reason="purchase", new_balance=80),
        ev(D2, "loyalty.enrolled", "NEW", tier="Bronze", points_balance=80),
    }


def test_expiry_reminders_fire_once_per_window_and_only_the_smallest_after_a_gap(tmp_path: Path):
    days = ["2026-03-01", "2026-03-02", "2026-03-27", "2026-03-28", "2026-03-31"]
    pipeline = Pipeline(tmp_path, today=days[-1])

    def exp(cid: str, date: str, amount: int = 80, **kw) -> dict:
        return account(cid, next_expiry_date=date, next_expiry_amount=amount, **kw)

    pipeline.write_accounts(days[0], [
        exp("STEP", "2026-04-01"),          # 31 days left
        exp("BASE", "2026-03-30", 70),      # 29: already within 30 on the baseline
        exp("SKIP", "2026-04-02", 90),      # 32
        exp("MISS", "2026-04-02"), account("NEWB"), exp("OUT", "2026-03-05", enrolled="false", tier=""),
        exp("NONE", "2026-03-05", 0),
    ])
    pipeline.write_accounts(days[1], [
        exp("STEP", "2026-04-01"),          # 30: crosses 30
        exp("BASE", "2026-03-30", 70),
        exp("SKIP", "2026-04-02", 90),      # 31
        account("NEWB"), exp("OUT", "2026-03-05", enrolled="false", tier=""),
        exp("NONE", "2026-03-05", 0),       # MISS is missing today
    ])
    pipeline.write_accounts(days[2], [      # after a 25-day gap
        exp("STEP", "2026-04-01"),          # 5: 7 crossed (30 was already)
        exp("BASE", "2026-03-30", 70),      # 3: 7 crossed
        exp("SKIP", "2026-04-02", 90),      # 6: 30 and 7 crossed at once → 7 only
        exp("MISS", "2026-04-02"),          # 6: 30 and 7 → 7 only (and back after a day away: not enrolled)
        account("NEWB"),
    ])
    pipeline.write_accounts(days[3], [
        exp("STEP", "2026-04-01"), exp("BASE", "2026-03-30", 70), exp("SKIP", "2026-04-02", 90),
        exp("NEWB", "2026-04-03", 40),      # a new batch 6 days out: 30 and 7 at once → 7
    ])                                      # MISS is missing again
    pipeline.write_accounts(days[4], [
        exp("STEP", "2026-04-01"),          # 1: crosses 1
        exp("BASE", "2026-03-30", 70),      # -1: already expired, nothing
        exp("SKIP", "2026-04-02", 60),      # 2: nothing (the amount changed, not the batch)
        exp("MISS", "2026-04-02"),          # 2: 7 was reached on 03-27, a missing day does not reset it
        exp("NEWB", "2026-04-03", 40),
    ])
    for day in days:
        pipeline.run(day)

    def expiring(day: str, cid: str, date: str, window: int, amount: int) -> tuple:
        return ev(day, "loyalty.points_expiring", cid, f"{date}:{window}", points_at_risk=amount, expiry_date=date)

    assert [events(pipeline, day) for day in days] == [
        set(),
        {expiring(days[1], "STEP", "2026-04-01", 30, 80)},
        {expiring(days[2], "STEP", "2026-04-01", 7, 80), expiring(days[2], "BASE", "2026-03-30", 7, 70),
         expiring(days[2], "SKIP", "2026-04-02", 7, 90), expiring(days[2], "MISS", "2026-04-02", 7, 80)},
        {expiring(days[3], "NEWB", "2026-04-03", 7, 40)},
        {expiring(days[4], "STEP", "2026-04-01", 1, 80)},
    ]


def test_approaching_tier_upgrade_and_its_cool_down(tmp_path: Path):
    days = ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-05", "2026-03-09", "2026-03-12"]
    balances = {  # per day; None = not in the export. Silver needs 1000, Gold 5000 (threshold 250).
        "COOL": [700, 800, 600, 850, 600, 900],          # in, away, back in 3 days later, away, in 7 days later
        "EXACT": [749, 750, 750, 750, 750, 750],         # 250 to go: in
        "STAY": [800, 850, 900, 950, 990, 999],          # in from the baseline on: never a crossing
        "ZERO": [700, 1000, 1000, 1000, 1000, 1000],     # still Bronze at the threshold: nothing to go
        "ROUTE": [700, 800, 4800, 4800, 4800, 4800],     # near Silver, then Silver and near Gold
        "NEW": [None, 800, 800, 800, 800, 800],          # a new member: enrolled only
        "TOP": [20000, 14900, 14900, 14900, 14900, 14900],
    }

    pipeline = Pipeline(tmp_path, today=days[-1])
    tiers = {"ROUTE": ["Bronze", "Bronze", "Silver", "Silver", "Silver", "Silver"],
             "TOP": ["Platinum"] * 6}
    for i, day in enumerate(days):
        pipeline.write_accounts(day, [
            account(cid, points=series[i], lifetime=L, tier=tiers.get(cid, ["Bronze"] * 6)[i])
            for cid, series in balances.items() if series[i] is not None])
        pipeline.run(day)

    def near(day: str, cid: str, current: str, nxt: str, to_go: int) -> tuple:
        return ev(day, "loyalty.approaching_tier_upgrade", cid, nxt, current_tier=current, next_tier=nxt,
                  points_to_next_tier=to_go)

    def approaching(day: str) -> set[tuple]:
        return {e for e in events(pipeline, day) if e[1] == "loyalty.approaching_tier_upgrade"}

    assert [approaching(day) for day in days] == [
        set(),
        {near(days[1], "COOL", "Bronze", "Silver", 200), near(days[1], "EXACT", "Bronze", "Silver", 250),
         near(days[1], "ROUTE", "Bronze", "Silver", 200)},
        {near(days[2], "ROUTE", "Silver", "Gold", 200)},   # another next tier: no cool-down
        set(),                                             # COOL back in 3 days after: cooling down
        set(),
        {near(days[5], "COOL", "Bronze", "Silver", 100)},  # 7 days after the last crossing
    ]
    assert ev(days[2], "loyalty.tier_upgraded", "ROUTE", "Silver", previous_tier="Bronze",
              new_tier="Silver") in events(pipeline, days[2])


def test_old_days_are_suppressed_unless_the_run_asks_to_send_them(tmp_path: Path):
    rows = [[account("C", points=100, lifetime=100)], [account("C", points=150, lifetime=150)]]
    for day, accounts in zip((D1, D2), rows, strict=True):
        Pipeline(tmp_path).write_accounts(day, accounts)

    Pipeline(tmp_path, today="2026-03-05").run(D1)
    on_time = Pipeline(tmp_path, today="2026-03-05")  # D2 is exactly max_event_age_days (3) old
    on_time.run(D2)
    assert statuses(on_time, D2) == {"pending": 1}
    (event,) = events(on_time, D2)

    late = Pipeline(tmp_path, today="2026-03-06")     # one day more: a backfill, not news
    late.run(D2)
    assert statuses(late, D2) == {"suppressed_stale": 1}
    assert events(late, D2) == {event}                # same key, same metadata

    late.run(D2, run_config={"ops": {"loyalty_events": {"config": {"send_stale": True}}}})
    assert statuses(late, D2) == {"pending": 1}
    assert events(late, D2) == {event}


def test_program_switches_and_knobs(tmp_path: Path):
    program = program_file(tmp_path, events={"loyalty.points_earned": False, "loyalty.tier_joined": False},
                           downgrade_grace_days=14, expiry_reminder_days=[10, 3], tier_basis="lifetime_points",
                           approaching_tier_threshold=100)
    pipeline = Pipeline(tmp_path, program_path=program, today=D2)
    pipeline.write_accounts(D1, [
        account("DOWN", points=6000, lifetime=6000, tier="Gold"),
        account("JOIN", points=100, lifetime=100, tier=""),
        account("EXP", lifetime=L, next_expiry_date="2026-03-12", next_expiry_amount=5),   # 11 days left
        account("LIFE", points=10, lifetime=880),                                          # 120 to Silver
    ])
    pipeline.write_accounts(D2, [
        account("DOWN", points=4000, lifetime=6000, tier="Silver"),
        account("JOIN", points=100, lifetime=100, tier="Bronze"),                          # switched off
        account("EXP", lifetime=L, next_expiry_date="2026-03-12", next_expiry_amount=5),   # 10: window 10
        account("LIFE", points=10, lifetime=910),                   # 90 to Silver on lifetime; points_earned off
    ])
    pipeline.run(D1)
    result = pipeline.run(D2)
    assert events(pipeline, D2) == {
        ev(D2, "loyalty.tier_downgraded", "DOWN", "Silver", previous_tier="Gold", new_tier="Silver",
           grace_period_days=14),
        ev(D2, "loyalty.points_expiring", "EXP", "2026-03-12:10", points_at_risk=5, expiry_date="2026-03-12"),
        ev(D2, "loyalty.approaching_tier_upgrade", "LIFE", "Silver", current_tier="Bronze", next_tier="Silver",
           points_to_next_tier=90),
    }
    metadata = result.asset_materializations_for_node("loyalty_events")[0].metadata
    assert "events/loyalty.tier_joined" not in metadata and metadata["events/loyalty.tier_downgraded"].value == 1


def test_an_unknown_event_switch_fails_the_day(tmp_path: Path):
    program = program_file(tmp_path, events={"loyalty.tier_jioned": False})
    pipeline = Pipeline(tmp_path, program_path=program, today=D1)
    pipeline.write_accounts(D1, [account("C")])
    result = pipeline.run(D1, expect_success=False)
    assert not result.success
    assert pipeline.query("SELECT count(*) FROM snapshots") == [(1,)]  # only the events step failed
