"""The bare DuckDB reference: the least hand-written SQL that gets the same deltas and core events.

What a competent engineer would write for ONE clean two-day comparison, with none of the product's
obligations, in one connection: both days' files are read straight into typed columns (no text
staging, no line numbers, no lineage, no quarantine, no per-field validation, no flags, no
transactions per step, no payload validation, no analysts' copies), then the deltas and the four
core events (ShopiMind's tiered-loyalty use case: points earned, tier upgraded and downgraded,
points expiring), with only the rules the benchmark's two days can exercise (a member absent from
the previous day is new; "reached before" of points_expiring only looks one day back).

It must still produce the same rows: the processing stage compares its event keys, metadata and
delta members with the pipeline's (`verify`) and reports any difference. Only the event types it
computes (EVENT_TYPES) are compared: a new event type in the catalogue needs no change here.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from ...ingest.readers import quote
from ...program import Program

ACCOUNT_TYPES = {
    "customer_id": "VARCHAR", "email": "VARCHAR", "enrolled": "BOOLEAN", "points_balance": "BIGINT",
    "lifetime_points": "BIGINT", "tier": "VARCHAR", "tier_since": "DATE", "member_since": "DATE",
    "next_expiry_date": "DATE", "next_expiry_amount": "BIGINT",
}
ACTIVITY_TYPES = {"customer_id": "VARCHAR", "occurred_at": "VARCHAR", "points": "BIGINT", "reason": "VARCHAR"}
# The event types `run` derives (the code_names its events query writes): what `verify` compares.
EVENT_TYPES = ("loyalty.points_earned", "loyalty.tier_upgraded", "loyalty.tier_downgraded",
               "loyalty.points_expiring")


def _reader(path: Path, types: dict[str, str]) -> str:
    """Typed columns straight from the file (Parquet exports hold text: cast on the way in)."""
    if path.suffix == ".parquet":
        cols = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in types.items())
        return f"SELECT {cols} FROM read_parquet({quote(str(path))})"
    spec = ", ".join(f"{quote(c)}: {quote(t)}" for c, t in types.items())
    return f"SELECT * FROM read_csv({quote(str(path))}, header=true, columns={{{spec}}})"


def _file(exports: Path, day: dt.date, stem: str) -> Path:
    folder = exports / day.isoformat()
    for ext in (".parquet", ".csv"):
        if (folder / f"{stem}{ext}").exists():
            return folder / f"{stem}{ext}"
    raise FileNotFoundError(f"no {stem} file in {folder}")


def _load_accounts(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> None:
    con.execute(f"""
        CREATE OR REPLACE TABLE {table} AS
        SELECT trim(a.customer_id) AS customer_id, nullif(lower(trim(a.email)), '') AS email, a.enrolled,
               a.points_balance, a.lifetime_points, t.tier, t.rank AS tier_rank, a.tier_since, a.member_since,
               a.next_expiry_date, a.next_expiry_amount
        FROM ({_reader(path, ACCOUNT_TYPES)}) a
        LEFT JOIN tier_map t ON t.alias = lower(trim(a.tier))""")


def run(con: duckdb.DuckDBPyConnection, exports: Path, day: dt.date, previous: dt.date, program: Program,
        today: dt.date) -> dict[str, int]:
    """Day `day` against `previous`, both read from their files: tables accounts_prev, accounts_cur,
    acts_cur, deltas, events."""
    con.execute("CREATE OR REPLACE TEMP TABLE tier_map (alias VARCHAR, tier VARCHAR, rank INTEGER)")
    con.executemany("INSERT INTO tier_map VALUES (?, ?, ?)", program.tier_alias_rows())
    _load_accounts(con, "accounts_prev", _file(exports, previous, program.source.accounts_file))
    _load_accounts(con, "accounts_cur", _file(exports, day, program.source.accounts_file))
    con.execute(f"CREATE OR REPLACE TABLE acts_cur AS SELECT customer_id, points, reason FROM "
                f"({_reader(_file(exports, day, program.source.activities_file), ACTIVITY_TYPES)})")
    con.execute("""
        CREATE OR REPLACE TABLE deltas AS
        SELECT coalesce(c.customer_id, p.customer_id) AS customer_id,
               CASE WHEN p.customer_id IS NULL THEN 'new' WHEN c.customer_id IS NULL THEN 'removed'
                    ELSE 'changed' END AS change_kind,
               coalesce(c.email, p.email) AS email, p.enrolled AS enrolled_before, c.enrolled AS enrolled_after,
               c.points_balance AS balance_after, p.tier AS tier_before, c.tier AS tier_after,
               p.tier_rank AS rank_before, c.tier_rank AS rank_after
        FROM accounts_cur c FULL OUTER JOIN accounts_prev p USING (customer_id)
        WHERE p.customer_id IS NULL OR c.customer_id IS NULL
           OR (c.email, c.enrolled, c.points_balance, c.lifetime_points, c.tier, c.tier_since, c.member_since,
               c.next_expiry_date, c.next_expiry_amount)
              IS DISTINCT FROM (p.email, p.enrolled, p.points_balance, p.lifetime_points, p.tier, p.tier_since,
               p.member_since, p.next_expiry_date, p.next_expiry_amount)""")
    windows = ", ".join(f"({w})" for w in program.expiry_reminder_days) or "(NULL)"
    stale = day < today - dt.timedelta(days=program.max_event_age_days)
    con.execute(f"""
        CREATE OR REPLACE TABLE events AS
        WITH due AS (
            SELECT a.customer_id, a.email, a.next_expiry_date AS d, a.next_expiry_amount AS amount, w.days
            FROM accounts_cur a JOIN (VALUES {windows}) w(days)
              ON date_diff('day', $day, a.next_expiry_date) BETWEEN 0 AND w.days
            WHERE a.enrolled AND a.next_expiry_amount > 0
        ), e AS (
            SELECT 'loyalty.points_earned' AS code_name, a.customer_id, c.email, a.reason AS disc,
                   json_object('points_amount', a.points, 'reason', a.reason, 'new_balance', c.points_balance) AS m
            FROM (SELECT customer_id, reason, sum(points) AS points FROM acts_cur GROUP BY ALL) a
            JOIN accounts_cur c USING (customer_id) WHERE c.enrolled AND a.points > 0
            UNION ALL
            SELECT CASE WHEN rank_after > rank_before THEN 'loyalty.tier_upgraded' ELSE 'loyalty.tier_downgraded' END,
                   customer_id, email, tier_after,
                   CASE WHEN rank_after > rank_before
                            THEN json_object('previous_tier', tier_before, 'new_tier', tier_after)
                        ELSE json_object('previous_tier', tier_before, 'new_tier', tier_after,
                                         'grace_period_days', $grace) END
            FROM deltas
            WHERE change_kind = 'changed' AND enrolled_before AND enrolled_after AND rank_after <> rank_before
            UNION ALL
            SELECT 'loyalty.points_expiring', customer_id, email, strftime(d, '%Y-%m-%d') || ':' || min(days),
                   json_object('points_at_risk', amount, 'expiry_date', d)
            FROM due WHERE NOT EXISTS (
                SELECT 1 FROM accounts_prev p WHERE p.customer_id = due.customer_id AND p.next_expiry_date = due.d
                  AND p.enrolled AND p.next_expiry_amount > 0 AND date_diff('day', $previous, due.d) <= due.days)
            GROUP BY customer_id, email, d, amount
        )
        SELECT sha256(code_name || '|' || customer_id || '|' || strftime($day, '%Y-%m-%d') || '|' || disc) AS event_key,
               customer_id, email, code_name, m::JSON AS metadata,
               CASE WHEN $stale THEN 'suppressed_stale' ELSE 'pending' END AS status
        FROM e""", {"day": day, "previous": previous, "grace": program.downgrade_grace_days, "stale": stale})
    return {
        "rows": con.execute("SELECT count(*) FROM accounts_cur").fetchone()[0],
        "deltas": con.execute("SELECT count(*) FROM deltas").fetchone()[0],
        "events": con.execute("SELECT count(*) FROM events").fetchone()[0],
    }


def verify(pipeline_db: Path, reference_db: Path, day: dt.date) -> dict:
    """Differences between the pipeline's day and the reference's (all zeros = the same rows), on the
    event types the reference derives."""
    con = duckdb.connect(str(pipeline_db), read_only=True)
    try:
        con.execute(f"ATTACH {quote(str(reference_db))} AS ref (READ_ONLY)")
        p = ("(SELECT event_key, metadata::VARCHAR AS m FROM loyalty_events WHERE snapshot_date = $day "
             "AND list_contains($types, code_name))")
        r = "(SELECT event_key, metadata::VARCHAR AS m FROM ref.events)"  # a type not in EVENT_TYPES: a difference
        pd = "(SELECT customer_id, change_kind FROM account_deltas WHERE snapshot_date = $day)"
        rd = "(SELECT customer_id, change_kind FROM ref.deltas)"
        q = (f"SELECT (SELECT count(*) FROM ({p} EXCEPT {r})), (SELECT count(*) FROM ({r} EXCEPT {p})), "
             f"(SELECT count(*) FROM ({pd} EXCEPT {rd})), (SELECT count(*) FROM ({rd} EXCEPT {pd}))")
        a, b, c, d = con.execute(q, {"day": day, "types": list(EVENT_TYPES)}).fetchone()
    finally:
        con.close()
    return {"events_only_in_pipeline": a, "events_only_in_reference": b,
            "deltas_only_in_pipeline": c, "deltas_only_in_reference": d, "same": a == b == c == d == 0}
