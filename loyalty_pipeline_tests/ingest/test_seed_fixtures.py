"""The seed documents' example payloads (fixtures/README.md) parse into the expected canonical rows."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal

import duckdb

from loyalty_pipeline.ingest.files import find_export
from loyalty_pipeline.ingest.platforms import loyaltylion
from loyalty_pipeline_tests.ingest.helpers import FIXTURES, counts, platform_pipeline

DAY = "2026-03-10"
SNAPSHOT = ("SELECT customer_id, email, enrolled, points_balance, lifetime_points, tier, tier_since, member_since, "
            "next_expiry_date, next_expiry_amount, dq_flags, source_line FROM snapshots ORDER BY source_line")
QUARANTINE = "SELECT source_line, customer_id, field, value, reason FROM quarantine ORDER BY source_line"


def _run(tmp_path, platform: str, fixture: str):
    pipeline = platform_pipeline(tmp_path, platform)
    target = pipeline.exports / DAY / "accounts.jsonl"
    target.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / fixture, target)
    pipeline.run(DAY)
    raw, members, quarantined = counts(pipeline, DAY)
    assert raw == members + quarantined
    return pipeline


def test_yotpo_webhook_customers(tmp_path):
    pipeline = _run(tmp_path, "yotpo", "yotpo_customers.jsonl")
    assert pipeline.query(SNAPSHOT) == [
        # "Gold" as is; vip_tier_ends_at has no canonical column; loyalty_opt_in_date is the enrolment;
        # points_expire_at alone (expiry on inactivity): the whole balance is at risk that day.
        ("3755023171721", "anniversary@example.com", True, 4050, 4050, "Gold", None, dt.date(2020, 8, 3),
         dt.date(2021, 1, 30), 4050, [], 1),
        # "Base" is an alias of Bronze; is_member false does not matter, is_opt_in does.
        ("9121261453557", "new.member@example.com", True, 25, 25, "Bronze", None, dt.date(2025, 11, 28),
         None, None, [], 2),
        # Only the typo twin thirty_party_id; the opt-in sentinel 0001-01-01 00:00:00 +0200; the scraped
        # "[email protected]"; "Power User" is an alias of Gold.
        ("2691804725305", None, True, 460, 2460, "Gold", None, None, None, None,
         ["invalid_email", "sentinel_date"], 3),
        # No vip_tier_name in this payload: no tier. Its points_expire_at: all 100 points at risk.
        ("3798152839268", "expiring@example.com", True, 100, 100, None, None, dt.date(2020, 10, 15),
         dt.date(2023, 8, 15), 100, [], 4),
    ]
    assert pipeline.query(QUARANTINE) == [
        (5, None, "customer_id", None, "missing_id"),           # third_party_id and thirty_party_id null
        (6, "4302977345", "enrolled", None, "missing_field"),  # swell/tier/earned carries no opt-in key at all
    ]


def test_loyaltylion_customers(tmp_path):
    pipeline = _run(tmp_path, "loyaltylion", "loyaltylion_customers.jsonl")
    assert pipeline.query(SNAPSHOT) == [
        # lifetime = approved 200 + spent 500 (the 300 pending are not earned yet); started_at
        # "2017-03-03 00:00:00Z".
        ("2134606599", "jessica@example.com", True, 200, 700, "Silver", dt.date(2017, 3, 3),
         dt.date(2015, 12, 10), None, None, [], 1),
        # Blocked: not a member any more, whatever `enrolled` says.
        ("192838592", "referrer@example.com", False, 200, 700, "Bronze", dt.date(2017, 3, 3),
         dt.date(2015, 12, 10), None, None, [], 2),
    ]
    assert pipeline.query(QUARANTINE) == []
    assert pipeline.query("SELECT lifetime_points FROM raw_accounts ORDER BY source_line") == [(700,), (700,)]


def test_loyaltylion_point_tier_bounds_come_back_times_100(tmp_path):
    target = tmp_path / DAY / "accounts.jsonl"
    target.parent.mkdir()
    shutil.copy(FIXTURES / "loyaltylion_customers.jsonl", target)
    file = find_export(tmp_path, dt.date.fromisoformat(DAY), "accounts", required=True)
    assert duckdb.sql(loyaltylion.tiers_sql(file)).fetchall() == [
        ("Bronze", 1, None, Decimal("0.00"), Decimal("20000.00")),   # "number": 1, "0.00".."200.00"
        ("Silver", None, 2, Decimal("20001.00"), Decimal("40000.00")),  # "position": 2, "200.01".."400.00"
    ]


def test_voucherify_member_with_its_tier(tmp_path):
    pipeline = _run(tmp_path, "voucherify", "voucherify_members.jsonl")
    assert pipeline.query(SNAPSHOT) == [
        # source_id "4lx-d03" kept as text; email null; "Loyal silver" is an alias of Silver.
        ("4lx-d03", None, True, 180, 200, "Silver", dt.date(2024, 3, 14), dt.date(2024, 3, 14),
         dt.date(2024, 6, 30), 20, [], 1),
    ]
