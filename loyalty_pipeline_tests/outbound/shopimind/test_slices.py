"""The account and departure selections in slices of the members (core/candidates.py) select exactly what
one query over every member selects: the same rows, actions and counts, in the same order and chunks,
on a real warehouse holding every state a member can be in (sent, failed, uncertain, rejected with the
same or other values, in flight, acknowledged on a later day, re-keyed or not, deleted before or after
the last write, opted out, absent, quarantined, another destination's), for a newest and a stale day.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import duckdb
import pytest

from loyalty_pipeline.outbound.core.candidates import WHOLE, bounded_memory, count_actions, slices, stream
from loyalty_pipeline.outbound.shopimind.accounts import AccountRow, preview_accounts
from loyalty_pipeline.outbound.shopimind.delivery import DeliverySettings, member_slices, sql
from loyalty_pipeline.outbound.shopimind.departures import DepartureRow, LeavePolicy, _params
from loyalty_pipeline.warehouse.connection import connect

DEST = "https://shop.example"
DAYS = [dt.date(2026, 3, d) for d in range(1, 6)]
NEWEST, STALE = DAYS[-1], DAYS[2]
LATER = NEWEST + dt.timedelta(days=1)  # acknowledged from a day after the one run (a re-run of an old day)
STATUSES = ("sent", "failed", "uncertain", "rejected", "in_flight")
# Keys that sort around each other (prefixes, case, accents): a bound falls between any two of them.
IDS = [f"C{i:04d}" for i in range(160)] + ["C1", "C10", "C100", "c0005", "Ç7", "é", "Z", "a b", "C0001-x"]


def _ts(rng: random.Random) -> dt.datetime:
    return dt.datetime(2026, 3, 1, tzinfo=dt.UTC) + dt.timedelta(hours=rng.randrange(0, 24 * 6))


def _warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    rng = random.Random(17)
    con = connect(path)
    values = {}  # (day, member) -> the mapped values
    for member in IDS:
        for d in DAYS:
            if rng.random() < 0.8:
                row = (rng.choice([100, 200]), rng.choice([None, "Bronze", "Silver"]),
                       rng.choice([None, DAYS[0]]), rng.choice([None, DAYS[1]]), rng.choice([None, 5]))
                values[d, member] = row
                con.execute("INSERT INTO snapshots (snapshot_date, customer_id, enrolled, points_balance, "
                            "lifetime_points, tier, tier_since, next_expiry_date, next_expiry_amount, dq_flags, "
                            "source_file, source_line) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, [], 'f.csv', 1)",
                            [d, member, rng.random() < 0.85, *row])
            elif rng.random() < 0.3:  # in the export, but its row was quarantined
                con.execute("INSERT INTO quarantine VALUES (?, 'accounts', 'f.csv', 2, ?, 'points_balance', "
                            "'lots', 'not an integer', '[]')", [d, member])
        held = [v for (d, m), v in values.items() if m == member]
        for destination in (DEST, "https://other.example"):
            if held and rng.random() < 0.75:  # what ShopiMind acknowledged: some day's values, or other ones
                acked = rng.choice(held) if rng.random() < 0.7 else (300, "Gold", None, None, None)
                con.execute("INSERT INTO account_sync_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [destination, member, rng.choice([*DAYS, LATER]), acked[0], acked[1] or "", *acked[2:],
                             _ts(rng), rng.choice([True, False, None])])
        for kind in ("account", "account_delete"):
            if rng.random() < 0.6:
                status = rng.choice(STATUSES)
                con.execute("INSERT INTO delivery_state (destination, kind, key, snapshot_date, customer_id, "
                            "status, attempts, last_attempt_at, sent_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, "
                            "?, ?, now())", [DEST, kind, member, rng.choice(DAYS), member, status, _ts(rng),
                                             _ts(rng) if status == "sent" or rng.random() < 0.3 else None])
    con.execute("INSERT INTO quarantine VALUES (?, 'accounts', 'f.csv', 3, NULL, 'customer_id', NULL, 'missing', "
                "'[]')", [NEWEST])
    # Deletions refused since the member's last write (every fifth): not retried blindly.
    con.execute("UPDATE delivery_state SET status = 'rejected', last_attempt_at = '2026-03-09' "
                "WHERE kind = 'account_delete' AND hash(key) % 5 = 0")
    # Refused payloads: half of them the values the member has on the newest day (not retried blindly).
    con.execute(f"""
        UPDATE delivery_state d SET payload_hash = md5(to_json({{b: s.points_balance, t: coalesce(s.tier, ''),
            s: s.tier_since, d: s.next_expiry_date, a: s.next_expiry_amount}})::VARCHAR)
        FROM snapshots s
        WHERE d.kind = 'account' AND d.status = 'rejected' AND s.customer_id = d.key
          AND s.snapshot_date = '{NEWEST}' AND hash(d.key) % 2 = 0""")
    return con


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> duckdb.DuckDBPyConnection:
    con = _warehouse(tmp_path_factory.mktemp("slices") / "w.duckdb")
    yield con
    con.close()


def _selections(day: dt.date, policy: LeavePolicy):
    accounts = (AccountRow, sql("shopimind_accounts"), {"day": day, "destination": DEST})
    departures = (DepartureRow, sql("shopimind_departures"), _params(day, DEST, policy))
    return accounts, departures


def _rows(con, row, query, params, over, size=7):
    """Every candidate (whatever its action) in customer_id order, chunk by chunk; `written_s_ago` left
    out (now() moves between queries)."""
    statement = f"SELECT * FROM ({query}) ORDER BY customer_id"
    return [[r._replace(written_s_ago=None) if hasattr(r, "written_s_ago") else r for r in chunk]
            for chunk in stream(con, row, f"SELECT {', '.join(row._fields)} FROM ({statement})", params, size, over)]


@pytest.mark.parametrize("day", [NEWEST, STALE], ids=["newest", "stale"])
@pytest.mark.parametrize("policy", [LeavePolicy("delete", 3), LeavePolicy("delete", 2), LeavePolicy("keep", 3)],
                         ids=["grace3", "grace2", "keep"])
def test_sliced_selections_equal_one_query_over_every_member(warehouse, day, policy):
    seen_actions = set()
    for row, query, params in _selections(day, policy):
        whole = _rows(warehouse, row, query, params, WHOLE)
        counted = count_actions(warehouse, query, params, *(("reason",) if row is DepartureRow else ()))
        seen_actions |= {a for a, *_ in counted}
        for size in (4, 25):
            over = member_slices(warehouse, day, DeliverySettings(slice_members=size))
            assert len(over) > 3
            assert _rows(warehouse, row, query, params, over) == whole, (row.__name__, size)
            assert count_actions(warehouse, query, params, *(("reason",) if row is DepartureRow else ()),
                                 over=over) == counted
    if day == STALE:
        assert seen_actions == {"unchanged", "suppressed_stale"}
    elif policy.on_leave == "keep":
        assert seen_actions == {"unchanged", "rejected_unchanged", "send", "suppressed_stale", "kept"}
    else:  # every action the two selections know
        assert seen_actions == {"unchanged", "rejected_unchanged", "send", "suppressed_stale", "delete", "rekey",
                                "previously_rejected"}


def test_the_scenario_covers_both_departure_reasons_and_other_destinations(warehouse):
    _, (row, query, params) = _selections(NEWEST, LeavePolicy("delete", 3))
    reasons = {reason for (_, reason) in count_actions(warehouse, query, params, "reason")}
    assert reasons == {"opted_out", "absent"}
    assert warehouse.execute("SELECT count(DISTINCT destination) FROM account_sync_state").fetchone()[0] == 2


def test_slices_cover_every_key_in_ranges_of_at_most_the_slice_size(warehouse):
    members = "SELECT customer_id FROM snapshots WHERE snapshot_date = $day"
    n = warehouse.execute(f"SELECT count(*) FROM ({members})", {"day": NEWEST}).fetchone()[0]
    over = slices(warehouse, members, {"day": NEWEST}, 10)
    assert len(over) == -(-n // 10)  # ceil: the sample is every member at this size, so the bounds are exact
    assert over[0]["lo"] is None and over[-1]["hi"] is None
    assert all(a["hi"] == b["lo"] for a, b in zip(over, over[1:], strict=False))  # contiguous: no key falls between
    sizes = [warehouse.execute(f"SELECT count(*) FROM ({members}) WHERE ($lo IS NULL OR customer_id >= $lo) "
                               "AND ($hi IS NULL OR customer_id < $hi)", {"day": NEWEST, **b}).fetchone()[0]
             for b in over]
    assert sum(sizes) == n and max(sizes) <= 10
    assert slices(warehouse, members, {"day": NEWEST}, n) == WHOLE


def test_a_delivery_lowers_the_memory_limit_while_it_runs_and_restores_it(tmp_path):
    con = duckdb.connect(str(tmp_path / "m.duckdb"), config={"memory_limit": "1GB"})
    limit = lambda: con.execute("SELECT current_setting('memory_limit')").fetchone()[0]  # noqa: E731
    before = limit()
    with bounded_memory(con, "256MB"):
        assert limit() == "244.1 MiB"
        assert con.cursor().execute("SELECT current_setting('memory_limit')").fetchone()[0] == "244.1 MiB"
    assert limit() == before
    with bounded_memory(con, "4GB"):  # never raised above the warehouse's own
        assert limit() == before
    with pytest.raises(RuntimeError), bounded_memory(con, "100MB"):
        raise RuntimeError("a failed delivery")
    assert limit() == before


def test_the_account_selection_needs_the_memory_of_a_slice_not_of_the_members(tmp_path):
    """500,000 members, 5 % changed, spilling off (what does not fit fails): one query over every member
    does not fit in 48 MB; in slices of 20,000 the same selection does, with the same counts."""
    con = connect(tmp_path / "w.duckdb")
    member = "'member-' || lpad(i::VARCHAR, 9, '0')"
    con.execute(f"INSERT INTO snapshots (snapshot_date, customer_id, enrolled, points_balance, lifetime_points, tier, "
                f"dq_flags, source_file, source_line) SELECT '{NEWEST}', {member}, true, i % 1000, 0, 'Bronze', [], "
                "'f.csv', i FROM range(500000) t(i)")
    con.execute(f"INSERT INTO account_sync_state SELECT $d, {member}, '{NEWEST}', i % 1000 + (i % 20 = 0)::INT, "
                "'Bronze', NULL, NULL, NULL, now(), true FROM range(500000) t(i)", {"d": DEST})
    con.execute("CHECKPOINT")
    con.execute("SET temp_directory = ''")
    whole = preview_accounts(con, NEWEST, DEST, DeliverySettings(memory_limit=None))["actions"]
    assert whole == {"unchanged": 475_000, "send": 25_000}
    with pytest.raises(duckdb.OutOfMemoryException):
        preview_accounts(con, NEWEST, DEST, DeliverySettings(slice_members=500_000, memory_limit="48MB"))
    sliced = preview_accounts(con, NEWEST, DEST, DeliverySettings(slice_members=20_000, memory_limit="48MB"))
    assert sliced["actions"] == whole
    con.close()
