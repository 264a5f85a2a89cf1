"""Invariant 5, property-style: recomputing partitions in any order never changes or duplicates a key.

Random multi-day exports (seeded) exercise every event type: balances near tier thresholds, platform
spellings of tiers, opt-outs and re-enrolments, members missing a day, export days missing (gaps),
expiry batches, and activities files on some days only.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path

import duckdb
import pytest

from loyalty_pipeline.events.catalogue import CATALOGUE
from loyalty_pipeline.events.derive import build_events
from loyalty_pipeline.ingest.files import ExportError
from loyalty_pipeline.ingest.steps import ingest_export
from loyalty_pipeline.program import load_program
from loyalty_pipeline.snapshots.steps import build_deltas, build_snapshot
from loyalty_pipeline.warehouse.connection import connect, sql_files
from loyalty_pipeline_tests.events.helpers import ACTIVITY_HEADER
from loyalty_pipeline_tests.harness import DEFAULT_PROGRAM, Pipeline, account

START = dt.date(2026, 3, 1)
TODAY = dt.date(2026, 3, 12)  # some days are older than max_event_age_days: both statuses occur
SPELLINGS = {"Bronze": ["Bronze", "BRONZE", "Base"], "Silver": ["Silver", "SILVER"],
             "Gold": ["Gold", "GOLD", "Or"], "Platinum": ["Platinum", "VIP"]}
THRESHOLDS = [("Platinum", 15000), ("Gold", 5000), ("Silver", 1000), ("Bronze", 0)]


def tier_for(points: int) -> str:
    return next((name for name, threshold in THRESHOLDS if points >= threshold), "Bronze")


def write_random_exports(pipeline: Pipeline, rng: random.Random, n_days: int = 10, members: int = 60) -> list[str]:
    """Write the exports of a random program history; return the business dates that have one."""
    # Balances start just below a tier threshold and walk up and down in small steps, so members
    # come near the next tier, move away and come back (the approaching cool-down), and change tier.
    state = {f"M{i:03d}": {"points": rng.choice([1000, 5000, 15000]) - rng.randint(50, 450),
                           "lifetime": 20_000, "enrolled": rng.random() < 0.9, "tier": None,
                           "expiry": None, "amount": 0, "since": "2025-06-01"} for i in range(members)}
    written = []
    for i in range(n_days):
        day = START + dt.timedelta(days=i)
        activities = []
        for cid, m in state.items():
            if rng.random() < 0.5:
                for reason in rng.sample(["purchase", "review", "redemption", "redemption"], rng.choice([1, 1, 2])):
                    points = rng.choice([40, 90, 150]) * (-1 if reason == "redemption" else 1)
                    m["points"] += points
                    m["lifetime"] += max(points, 0)
                    activities.append({"customer_id": cid, "occurred_at": "", "points": points, "reason": reason})
            if rng.random() < 0.06:
                m["enrolled"] = not m["enrolled"]
                m["since"] = day.isoformat() if m["enrolled"] else m["since"]  # a re-enrolment is recent
            if rng.random() < 0.12:
                m["expiry"] = day + dt.timedelta(days=rng.choice([0, 1, 3, 6, 8, 20, 29, 31, 45]))
                m["amount"] = rng.choice([0, 40, 150])
            if m["tier"] is None or rng.random() > 0.1:  # sometimes the platform lags one day behind
                m["tier"] = tier_for(m["points"])
        if rng.random() < 0.1:
            state[f"N{i:02d}"] = {"points": rng.choice([0, 900]), "lifetime": 20_000, "enrolled": True,
                                  "tier": "Bronze", "expiry": None, "amount": 0, "since": day.isoformat()}
        if i > 0 and rng.random() < 0.2:
            continue  # no export that day: the next one compares across the gap
        rows = [account(cid, points=m["points"], lifetime=m["lifetime"], enrolled=str(m["enrolled"]).lower(),
                        # Not yet placed in a tier, some days: the next day is a tier_joined.
                        tier=rng.choice(SPELLINGS[m["tier"]]) if m["enrolled"] and rng.random() > 0.05 else "",
                        next_expiry_date=m["expiry"].isoformat() if m["expiry"] else "",
                        next_expiry_amount=m["amount"] if m["expiry"] else "", member_since=m["since"])
                for cid, m in state.items() if rng.random() > 0.05]  # a member may be missing a day
        pipeline.write_accounts(day.isoformat(), rows)
        if rng.random() < 0.5:
            pipeline.write_csv(day.isoformat(), "activities.csv", ACTIVITY_HEADER, activities)
        written.append(day.isoformat())
    return written


def all_events(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute("SELECT event_key, snapshot_date, customer_id, email, code_name, discriminator, "
                       "metadata::VARCHAR, status FROM loyalty_events ORDER BY event_key").fetchall()


def assert_no_duplicate_key(con: duckdb.DuckDBPyConnection) -> None:
    assert con.execute("SELECT count(*) - count(DISTINCT event_key) FROM loyalty_events").fetchone()[0] == 0


@pytest.mark.parametrize("seed", [1, 42, 2026])
def test_any_order_of_recomputation_gives_the_same_events(tmp_path: Path, seed: int):
    rng = random.Random(seed)
    pipeline = Pipeline(tmp_path)
    days = [dt.date.fromisoformat(d) for d in write_random_exports(pipeline, rng)]
    program = load_program(DEFAULT_PROGRAM)

    def snapshot(con, day):
        ingest_export(con, pipeline.exports, day, program)
        build_snapshot(con, day, program)

    def events(con, day):
        build_deltas(con, day)
        build_events(con, day, program, TODAY)

    in_order = connect(tmp_path / "in_order.duckdb")
    for day in days:
        snapshot(in_order, day)
        events(in_order, day)
    expected = all_events(in_order)
    assert_no_duplicate_key(in_order)
    assert {row[4] for row in expected} == set(CATALOGUE)  # the history exercises every event type
    assert {row[7] for row in expected} == {"pending", "suppressed_stale"}

    # The same history processed in a random order, then random days recomputed in random orders.
    shuffled = connect(tmp_path / "shuffled.duckdb")
    for day in rng.sample(days, len(days)):
        snapshot(shuffled, day)
    for day in rng.sample(days, len(days)):
        events(shuffled, day)
    assert all_events(shuffled) == expected
    for day in rng.choices(days, k=12):
        step = rng.choice(["events", "deltas+events", "everything"])
        if step == "everything":
            snapshot(shuffled, day)
        if step == "events":
            build_events(shuffled, day, program, TODAY)
        else:
            events(shuffled, day)
        assert_no_duplicate_key(shuffled)
    assert all_events(shuffled) == expected
    in_order.close()
    shuffled.close()


@pytest.mark.real  # long scenario: every day re-run through the job in random orders
def test_recomputing_days_through_the_job_in_random_order_keeps_every_key(tmp_path: Path):
    rng = random.Random(5)
    pipeline = Pipeline(tmp_path, today=TODAY.isoformat())
    days = write_random_exports(pipeline, rng, n_days=6, members=30)
    for day in days:
        pipeline.run(day)
    before = pipeline.query("SELECT * FROM loyalty_events ORDER BY event_key")
    assert len({row[0] for row in before}) == len(before) > 20
    for day in rng.choices(days, k=4):
        pipeline.run(day)
        assert pipeline.query("SELECT count(*) - count(DISTINCT event_key) FROM loyalty_events") == [(0,)]
    assert pipeline.query("SELECT * FROM loyalty_events ORDER BY event_key") == before


def test_events_refuse_deltas_made_before_a_late_earlier_day(tmp_path: Path):
    pipeline = Pipeline(tmp_path)
    program = load_program(DEFAULT_PROGRAM)
    d1, d2, d3 = (START + dt.timedelta(days=i) for i in range(3))
    for day, points in ((d1, 100), (d2, 150), (d3, 180)):
        pipeline.write_accounts(day.isoformat(), [account("C", points=points)])
    con = connect(tmp_path / "w.duckdb")
    for day in (d1, d3):
        ingest_export(con, pipeline.exports, day, program)
        build_snapshot(con, day, program)
        build_deltas(con, day)
        build_events(con, day, program, TODAY)
    ingest_export(con, pipeline.exports, d2, program)  # d2 arrives late: d3's deltas are now stale
    build_snapshot(con, d2, program)
    with pytest.raises(ExportError, match="materialize account_deltas for 2026-03-03 first"):
        build_events(con, d3, program, TODAY)
    build_deltas(con, d3)
    build_events(con, d3, program, TODAY)
    assert con.execute("SELECT metadata::VARCHAR FROM loyalty_events WHERE snapshot_date = $d", {"d": d3}).fetchall() \
        == [('{"points_amount":30,"reason":"purchase","new_balance":180}',)]
    con.close()


def test_the_tier_matrix_from_the_deltas_is_the_join_of_the_two_days(tmp_path: Path):
    """tier_matrix reads D's tiers and its deltas, not the two snapshots joined: it must count what the
    join counts, members rejected on P (compared by the deltas with an older row) and duplicates included."""
    rng = random.Random(7)
    pipeline = Pipeline(tmp_path)
    days = [dt.date.fromisoformat(d) for d in write_random_exports(pipeline, rng, n_days=8, members=60)]
    for day in days[1:]:  # a few rows refused, a few members twice
        path = pipeline.exports / day.isoformat() / "accounts.csv"
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        for row in rng.sample(rows, 5):
            row["points_balance"] = "x"
        rows += [dict(row) for row in rng.sample(rows, 2)]
        pipeline.write_accounts(day.isoformat(), rows)
    program = load_program(DEFAULT_PROGRAM)
    con = connect(tmp_path / "w.duckdb")
    compared = 0
    for previous, day in zip(days, days[1:], strict=False):
        for step_day in ([previous] if previous == days[0] else []) + [day]:
            ingest_export(con, pipeline.exports, step_day, program)
            build_snapshot(con, step_day, program)
            build_deltas(con, step_day)
        joined = con.execute(
            "SELECT CASE WHEN p.customer_id IS NULL THEN '(new)' ELSE coalesce(p.tier, '(none)') END, "
            "coalesce(d.tier, '(none)'), count(*) FROM snapshots d "
            "LEFT JOIN snapshots p ON p.snapshot_date = $previous AND p.customer_id = d.customer_id "
            "WHERE d.snapshot_date = $day GROUP BY ALL", {"day": day, "previous": previous}).fetchall()
        assert sorted(con.execute(sql_files("loyalty_pipeline.events")("tier_matrix"),
                                  {"day": day, "previous": previous}).fetchall()) == sorted(joined)
        compared += 1
    # The history holds members rejected on the previous day and back the next.
    assert compared == len(days) - 1 and con.execute(
        "SELECT count(*) FROM quarantine q JOIN snapshots s ON s.customer_id = q.customer_id "
        "AND s.snapshot_date > q.snapshot_date WHERE q.kind = 'accounts'").fetchone()[0] > 0
    con.close()
