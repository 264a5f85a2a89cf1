"""Exports built from the vendors' own published objects (fixtures/README.md, "Vendor exports"), three
days each: the canonical rows and the marketing events they give, and the same outcome whatever the
order of the lines. Each day runs through the real daily steps on a real DuckDB file.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
from pathlib import Path

import duckdb
import pytest

from loyalty_pipeline.devtools.emulator import Emulator
from loyalty_pipeline.events.derive import build_events
from loyalty_pipeline.ingest.files import ExportError, find_export
from loyalty_pipeline.ingest.platforms import loyaltylion
from loyalty_pipeline.ingest.steps import ingest_export
from loyalty_pipeline.outbound.shopimind.resources import KEY_ENV
from loyalty_pipeline.program import load_program
from loyalty_pipeline.snapshots.steps import build_deltas, build_snapshot
from loyalty_pipeline.warehouse.connection import connect
from loyalty_pipeline_tests.harness import Pipeline
from loyalty_pipeline_tests.ingest.helpers import FIXTURES, derived_tables, program_for
from loyalty_pipeline_tests.outbound.shopimind.helpers import shopimind_for

VENDORS = FIXTURES / "vendors"
D1, D2, D3 = (dt.date(2026, 3, d) for d in (1, 2, 3))
TODAY = D3  # every event of the three days is recent: pending, none suppressed
SNAPSHOT = ("SELECT customer_id, email, enrolled, points_balance, lifetime_points, tier, tier_since, member_since, "
            "next_expiry_date, next_expiry_amount, dq_flags FROM snapshots WHERE snapshot_date = $d ORDER BY ALL")


def run(root: Path, platform: str, folder: str, *, shuffle: int | None = None) -> dict:
    """Process the folder's days in date order; with `shuffle`, each file's lines in a random order first."""
    root.mkdir(parents=True, exist_ok=True)
    program = load_program(program_for(root, platform))
    exports = root / "exports"
    con = connect(root / "warehouse.duckdb")
    out: dict = {"held_back": {}}
    try:
        for fixture in sorted((VENDORS / folder).iterdir()):
            day = dt.date.fromisoformat(fixture.stem)
            target = exports / fixture.stem / f"accounts{fixture.suffix}"
            target.parent.mkdir(parents=True)
            if shuffle is None:
                shutil.copy(fixture, target)
            else:
                head, *lines = fixture.read_text().splitlines(keepends=True)
                body = [head, *lines] if fixture.suffix == ".jsonl" else lines
                random.Random(shuffle).shuffle(body)
                target.write_text(("" if fixture.suffix == ".jsonl" else head) + "".join(body))
            ingest_export(con, exports, day, program)
            build_snapshot(con, day, program)
            build_deltas(con, day)
            out["held_back"][day] = build_events(con, day, program, TODAY)["held_back"]
        out |= derived_tables(con) | {
            "rows": {day: con.execute(SNAPSHOT, {"d": day}).fetchall() for day in (D1, D2, D3)},
        }
    finally:
        con.close()
    return out


def events(outcome: dict, day: dt.date) -> set[tuple]:
    """(code_name, customer_id, metadata) of the day's events (all pending: TODAY is D3)."""
    assert {status for *_, status in outcome["events"]} <= {"pending"}
    return {(code, customer, json.dumps(json.loads(metadata), sort_keys=True))
            for d, code, customer, metadata, _ in outcome["events"] if d == day}


def ev(code: str, customer: str, **metadata) -> tuple:
    return code, customer, json.dumps(metadata, sort_keys=True)


FOLDERS = {"yotpo": "yotpo", "yotpo_report": "yotpo", "loyaltylion": "loyaltylion",
           "voucherify_v1": "voucherify", "voucherify_v2": "voucherify"}


@pytest.mark.parametrize("folder", list(FOLDERS))
def test_line_order_never_changes_the_outcome(tmp_path: Path, folder: str):
    as_written = run(tmp_path / "written", FOLDERS[folder], folder)
    for seed in (1, 2):
        assert run(tmp_path / f"shuffled{seed}", FOLDERS[folder], folder, shuffle=seed) == as_written, seed


# -- Yotpo: the webhooks' customer objects (API spelling read too), three days -------------------------------

def test_yotpo_customer_objects_over_three_days(tmp_path: Path):
    outcome = run(tmp_path, "yotpo", "yotpo")
    # Day 1, line 1 is the points-expiration-reminder customer: no vip_tier_name at all (no tier) and only
    # points_expire_at (expiry on inactivity): the whole balance is at risk on that date.
    assert outcome["rows"][D1] == [
        ("2691804725305", None, True, 460, 2460, "Gold", None, None, None, None, ["invalid_email", "sentinel_date"]),
        ("3755023171721", "anniversary@example.com", True, 4050, 4050, "Gold", None, dt.date(2020, 8, 3),
         None, None, []),
        ("3798152839268", "expiring@example.com", True, 100, 100, None, None, dt.date(2020, 10, 15),
         dt.date(2026, 4, 1), 100, []),
        ("9121261453557", "new.member@example.com", True, 25, 25, "Bronze", None, dt.date(2025, 11, 28),
         None, None, []),
    ]
    # swell/tier/earned's customer carries no opt-in key at all: that row alone is quarantined, every day.
    assert outcome["quarantine"] == [(day, "4302977345", "enrolled", None, "missing_field") for day in (D1, D2, D3)]
    assert events(outcome, D1) == set()  # the baseline
    assert events(outcome, D2) == {
        ev("loyalty.tier_upgraded", "3755023171721", previous_tier="Gold", new_tier="Platinum"),  # "VIP"
        ev("loyalty.points_earned", "3755023171721", points_amount=11150, reason="purchase", new_balance=15200),
        ev("loyalty.tier_downgraded", "2691804725305", previous_tier="Gold", new_tier="Silver", grace_period_days=30),
        ev("loyalty.enrolled", "9121261453558", tier="Bronze", points_balance=50),  # opted in on D2
        ev("loyalty.points_expiring", "3798152839268", points_at_risk=100, expiry_date="2026-04-01"),  # 30 days
    }
    # The customer opted in back in 2019 and new to the export on D2 (a migration) gets no welcome.
    assert outcome["held_back"][D2] == {"loyalty.enrolled": 1}
    # D3: an opt-out; the anniversary customer is gone (a delta, no event).
    assert events(outcome, D3) == {ev("loyalty.opted_out", "9121261453557", previous_tier="Bronze")}
    assert [d[3:5] for d in outcome["account_deltas"] if d[0] == D3] == [
        ("3755023171721", "removed"), ("9121261453557", "changed")]


def write(root: Path, day: dt.date, lines: list, name: str = "accounts.jsonl") -> None:
    path = root / "exports" / day.isoformat() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))


def ingest(root: Path, platform: str, day: dt.date = D1, **program):
    """Ingest and validate one day (a real DuckDB file); the open connection, for queries."""
    prog = load_program(program_for(root, platform, **program))
    con = connect(root / "warehouse.duckdb")
    ingest_export(con, root / "exports", day, prog)
    build_snapshot(con, day, prog)
    return con


def yotpo_fixture(day: dt.date) -> list[dict]:
    return [json.loads(line) for line in (VENDORS / "yotpo" / f"{day}.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("order", ["untiered first", "tiered first"])
def test_yotpo_presence_is_per_record_not_decided_by_the_first_one(tmp_path: Path, order: str):
    reminder, anniversary = yotpo_fixture(D1)[:2]  # no vip_tier_name / "Gold"
    write(tmp_path, D1, [reminder, anniversary] if order == "untiered first" else [anniversary, reminder])
    con = ingest(tmp_path, "yotpo")
    assert con.execute("SELECT customer_id, tier FROM snapshots ORDER BY ALL").fetchall() == [
        ("3755023171721", "Gold"), ("3798152839268", None)]


def test_yotpo_a_missing_required_value_quarantines_its_row_only(tmp_path: Path):
    reminder, anniversary, power = yotpo_fixture(D1)[:3]
    del anniversary["points_earned"]
    write(tmp_path, D1, [anniversary, power, reminder])  # the first record is the faulty one
    con = ingest(tmp_path, "yotpo")
    assert con.execute("SELECT source_line, customer_id, field, value, reason FROM quarantine").fetchall() == [
        (1, "3755023171721", "lifetime_points", None, "missing_field")]
    assert con.execute("SELECT count(*) FROM snapshots").fetchall() == [(2,)]


def test_yotpo_points_expire_at_is_the_next_expiry_of_the_whole_balance(tmp_path: Path):
    """Expiry on inactivity: Yotpo gives only the date the customer's points expire."""
    anniversary = yotpo_fixture(D1)[1]
    anniversary["points_expire_at"] = "2026-04-01T16:58:44.000Z"  # 31 days after D1, 30 after D2
    write(tmp_path, D1, [anniversary])
    write(tmp_path, D2, [anniversary])
    program = load_program(program_for(tmp_path, "yotpo"))
    con = connect(tmp_path / "warehouse.duckdb")
    for day in (D1, D2):
        ingest_export(con, tmp_path / "exports", day, program)
        build_snapshot(con, day, program)
        build_deltas(con, day)
        build_events(con, day, program, TODAY)
    assert con.execute("SELECT next_expiry_date, next_expiry_amount FROM snapshots WHERE snapshot_date = $d",
                       {"d": D2}).fetchall() == [(dt.date(2026, 4, 1), 4050)]
    assert con.execute("SELECT code_name, metadata::VARCHAR FROM loyalty_events").fetchall() == [
        ("loyalty.points_expiring", '{"points_at_risk":4050,"expiry_date":"2026-04-01"}')]


def test_yotpo_a_field_no_record_has_fails_the_day_naming_it(tmp_path: Path):
    records = yotpo_fixture(D1)
    for record in records:
        record.pop("points_earned")
    write(tmp_path, D1, records)
    with pytest.raises(ExportError, match=r"accounts\.jsonl: no record has points_earned \(lifetime_points\)"):
        ingest(tmp_path, "yotpo")


# -- Yotpo: the dashboard customer report (no shop id: the email is the member's id) -----------------------------

def test_yotpo_dashboard_report_is_keyed_by_email(tmp_path: Path):
    outcome = run(tmp_path, "yotpo", "yotpo_report")
    assert outcome["rows"][D1] == [
        ("anniversary@example.com", "anniversary@example.com", True, 4050, 4050, "Gold", None, dt.date(2020, 8, 3),
         None, None, []),
        ("new.member@example.com", "new.member@example.com", True, 25, 25, "Bronze", None, dt.date(2025, 11, 28),
         None, None, []),
        # " Power.User@Example.com " is one member's address, trimmed and lower-cased as its id.
        ("power.user@example.com", "power.user@example.com", True, 460, 2460, "Gold", None, dt.date(2019, 11, 28),
         None, None, []),
    ]
    assert outcome["quarantine"][0] == (D1, None, "customer_id", None, "missing_id")  # a row without an email
    assert events(outcome, D2) == {
        ev("loyalty.tier_upgraded", "anniversary@example.com", previous_tier="Gold", new_tier="Platinum"),
        ev("loyalty.points_earned", "anniversary@example.com", points_amount=11150, reason="purchase",
           new_balance=15200),
        ev("loyalty.tier_downgraded", "power.user@example.com", previous_tier="Gold", new_tier="Silver",
           grace_period_days=30),
        ev("loyalty.enrolled", "newbie@example.com", tier="Bronze", points_balance=50),
    }
    # loyalty_eligible false: not a member any more.
    assert events(outcome, D3) == {ev("loyalty.opted_out", "new.member@example.com", previous_tier="Bronze")}


def test_yotpo_report_members_reach_shopimind_by_email(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The real daily job, over real HTTP to the emulator, which only knows these contacts by email."""
    emails = ["anniversary@example.com", "new.member@example.com", "power.user@example.com"]
    with Emulator() as emulator:
        monkeypatch.setenv(KEY_ENV, emulator.api_key)
        emulator.configure(strict_contacts=True)
        emulator.seed_contacts([{"email": email} for email in emails])
        pipe = Pipeline(tmp_path, program_path=program_for(tmp_path, "yotpo"), today=D1.isoformat(),
                        shopimind=shopimind_for(emulator))
        target = pipe.exports / D1.isoformat() / "accounts.csv"
        target.parent.mkdir(parents=True)
        shutil.copy(VENDORS / "yotpo_report" / "2026-03-01.csv", target)
        pipe.run(D1.isoformat())
        state = emulator.state()
    contacts = {c["id_contact"]: c["email"] for c in state["contacts"]}
    assert {contacts[r["contact_id"]]: (r["points_balance"], r["tier"])
            for rows in state["records"].values() for r in rows} == {
        "anniversary@example.com": (4050, "Gold"), "new.member@example.com": (25, "Bronze"),
        "power.user@example.com": (460, "Gold")}
    assert pipe.query("SELECT DISTINCT status FROM delivery_state") == [("sent",)]


# -- LoyaltyLion: points count as earned once approved -------------------------------------------------------------

def test_loyaltylion_customers_over_three_days(tmp_path: Path):
    outcome = run(tmp_path, "loyaltylion", "loyaltylion")
    lifetime = {(day, row[0]): row[4] for day, rows in outcome["rows"].items() for row in rows}
    # Member 5000002 of issue 14: 300 points pending on D2 (not earned: no event, lifetime 400), declined on D3
    # (lifetime does not fall).
    assert [lifetime[day, "5000002"] for day in (D1, D2, D3)] == [400, 400, 400]
    # Jessica (the webhook example's customer): 300 pending on D2, approved on D3: earned on D3.
    assert [lifetime[day, "2134606599"] for day in (D1, D2, D3)] == [700, 700, 1000]
    assert events(outcome, D2) == {
        ev("loyalty.tier_upgraded", "5000003", previous_tier="Bronze", new_tier="Silver"),
        ev("loyalty.points_earned", "5000003", points_amount=400, reason="purchase", new_balance=1200),
        ev("loyalty.tier_downgraded", "5000004", previous_tier="Gold", new_tier="Silver", grace_period_days=30),
        ev("loyalty.enrolled", "5000007", tier="Bronze", points_balance=150),
        ev("loyalty.points_expiring", "5000008", points_at_risk=700, expiry_date="2026-04-01"),
    }
    assert events(outcome, D3) == {
        ev("loyalty.points_earned", "2134606599", points_amount=300, reason="purchase", new_balance=500),
        ev("loyalty.opted_out", "5000005", previous_tier="Silver"),  # blocked
    }
    assert [d[3:5] for d in outcome["account_deltas"] if d[0] == D3 and d[4] == "removed"] == [("5000006", "removed")]


def test_loyaltylion_tier_sequence_is_number_with_position_as_sent(tmp_path: Path):
    (tmp_path / D1.isoformat()).mkdir()
    shutil.copy(VENDORS / "loyaltylion" / "2026-03-01.jsonl", tmp_path / D1.isoformat() / "accounts.jsonl")
    file = find_export(tmp_path, D1, "accounts", required=True)
    assert duckdb.sql(loyaltylion.tiers_sql(file)).fetchall() == [
        # The API reference's shape: number (1-based) and position (0-based) both sent; bounds × 100.
        ("Bronze", 1, 0, 0, 999),
        ("Silver", 2, 1, 1000, 4999),
        ("Gold", 3, 2, 5000, 14999),
        # The webhook example's tier: position only (2, for the second tier): no number is made up.
        ("Silver", None, 2, 20001, 40000),
    ]


# -- Voucherify: the real v1 and v2 responses, and the joins an extraction must add ------------------------------

@pytest.mark.parametrize("folder", ["voucherify_v1", "voucherify_v2"])
def test_voucherify_members_over_three_days(tmp_path: Path, folder: str):
    outcome = run(tmp_path, "voucherify", folder)
    ids = {"voucherify_v1": ("0004521000123", "0004521000124", "0004521000125", "0004521000127", "0004521000128"),
           "voucherify_v2": ("SHOP-00002", "SHOP-00003", "SHOP-00004", "SHOP-00006", "SHOP-00007")}[folder]
    up, down, quitter, expiring, joiner = ids
    assert events(outcome, D2) == {
        ev("loyalty.tier_upgraded", up, previous_tier="Bronze", new_tier="Silver"),  # "Base" → "Loyal silver"
        ev("loyalty.points_earned", up, points_amount=400, reason="purchase", new_balance=1300),
        ev("loyalty.tier_downgraded", down, previous_tier="Gold", new_tier="Silver", grace_period_days=30),
        ev("loyalty.enrolled", joiner, tier="Bronze", points_balance=150),
        ev("loyalty.points_expiring", expiring, points_at_risk=250, expiry_date="2026-04-01"),
    }
    assert events(outcome, D3) == {ev("loyalty.opted_out", quitter, previous_tier="Silver")}  # inactive
    assert outcome["quarantine"] == []


def test_voucherify_v2_membership_as_published(tmp_path: Path):
    membership = json.loads((VENDORS / "voucherify_unjoined" / "v2_memberships.jsonl").read_text())
    membership["customer"] = {"id": membership["member"]["customer_id"], "name": "Alex Doe", "email": None,
                              "source_id": "4lx-d03", "metadata": {"region": "EMEA"}, "object": "customer"}
    write(tmp_path, D1, [membership])
    con = ingest(tmp_path, "voucherify")
    # balance.points, lifetime_bucket.points.total (earned 730 + added 2500), next_expiration, member.created_at;
    # tier_progress null: no tier.
    assert con.execute(SNAPSHOT, {"d": D1}).fetchall() == [
        ("4lx-d03", None, True, 170, 3230, None, None, dt.date(2026, 4, 16), dt.date(2026, 6, 9), 120, [])]


@pytest.mark.parametrize(("fixture", "named"), [
    ("v1_members.jsonl", ["customer.source_id or holder.source_id (customer_id)", "GET /v1/customers/{holder_id}",
                          "tiers.data or cards[0].tier_progress (tier)",
                          "GET /v1/loyalties/members/{memberId}/tiers"]),
    ("v2_memberships.jsonl", ["customer.source_id or holder.source_id (customer_id)",
                              "/{member.customer_id} for a v2 membership"]),
])
def test_voucherify_a_missing_join_fails_the_day_saying_so(tmp_path: Path, fixture: str, named: list[str]):
    write(tmp_path, D1, (VENDORS / "voucherify_unjoined" / fixture).read_text().splitlines())
    with pytest.raises(ExportError) as failure:
        ingest(tmp_path, "voucherify")
    for text in named:
        assert text in str(failure.value)


def test_voucherify_a_join_missing_from_one_member_quarantines_that_member(tmp_path: Path):
    members = [json.loads(line) for line in (VENDORS / "voucherify_v1" / "2026-03-01.jsonl").read_text().splitlines()]
    del members[1]["tiers"]
    del members[2]["customer"]
    write(tmp_path, D1, members)
    con = ingest(tmp_path, "voucherify")
    assert con.execute("SELECT source_line, customer_id, field, reason FROM quarantine ORDER BY ALL").fetchall() == [
        (2, "0004521000123", "tier", "missing_field"), (3, None, "customer_id", "missing_id")]
