"""Deterministic, streaming simulator of a loyalty program's daily FULL exports.

`generate_sample(out_dir, members=..., days=..., end=...)` writes one directory per business date,
`out_dir/<YYYY-MM-DD>/`, holding

* `accounts.<fmt>`  - a full export of every member present that day (canonical columns, in this order:
  customer_id, email, enrolled, points_balance, lifetime_points, tier, tier_since, member_since,
  next_expiry_date, next_expiry_amount);
* `activities.<fmt>` (when `activities=True`) - customer_id, occurred_at, points, reason: the movements
  that explain, member by member, the difference between the previous day's export and this one;
* `injected_bad_rows.json` - the deliberately broken or suspicious rows added to `accounts` that day.

(The file stems come from `program.source.accounts_file` / `activities_file`, "accounts" and
"activities" by default.)

How it works
------------
Everything is set-based DuckDB SQL on an in-process connection whose database and spill files live in
a temporary directory, so 10 million members never become Python objects:

* `simulate(con, ...)` is a generator over business dates. Day 1 builds the table `state_0` from the
  member numbers 1..members; every later day builds `state_<i>` from `state_<i-1>` through the view
  `draws`, where every random choice is `hash(seed, seq, day, 'salt')`, plus the view `activities_<i>`.
  It yields a `SimDay` naming them, after dropping the previous day's.
* The state table is the canonical, *typed* state, one row per member present in the export:
  `seq, enrolled, member_since, points_balance, lifetime_points, tier_rank (0 = no tier, else the
  position in program.ordered_tiers()), tier_since, next_expiry_date, next_expiry_amount`, plus the
  day's movements on the member's row (`exp_pts`, `r1/p1/t1`, `r2/p2/t2`: expired points, then one or
  two reasons with points and local timestamps), which the activities view unpivots. Stable per-member
  attributes are SQL macros of `seq` (`cust_id`, `email_norm`, `email_raw`, `tier_name`, `tier_raw`), so
  the state stays narrow; `canonical_accounts_sql(day.state)` gives the typed canonical columns.
* `write_canonical(con, day, day_dir, ...)` writes the canonical files with
  `COPY (SELECT ... ORDER BY ...) TO ...`. A per-platform writer (Yotpo, LoyaltyLion, Voucherify
  shapes) is another function with the same signature over the same `SimDay`, registered in `WRITERS`.

Determinism: the same arguments give byte-identical files (all randomness is hashed, every output is
ordered by a total key).

Simulation (per day, on the members of the previous day)
----------------------------------------------------------
* ~0.05 % of members disappear from the export for good; ~0.1 % of members opt out (enrolled becomes
  false, they stay in the file with their balance, lose their tier and their expiry);
  ~0.2 % new enrolments (new customer ids, member_since = the date, 60 % with a first purchase).
* ~5 % of enrolled members have a balance change: purchases (balance and lifetime up), reviews,
  referrals, birthday bonuses, redemptions (balance down, never below 0), refunds (balance down, rarely
  below 0). 15 % of those have two reasons that day (e.g. purchase + review). A share of the changes
  is aimed at a tier boundary, so that with incidental crossings about 0.5 % of members move tier
  each day, in both directions when the tier basis is points_balance.
* Points expire: on `next_expiry_date` the balance drops by `next_expiry_amount` (an `expiry` activity
  at 00:00) and a new batch 60-179 days ahead is set. Initial expiry dates are spread over the next
  120 days, so the 30/7/1-day reminder windows are crossed every day. `next_expiry_amount` never
  exceeds the balance; when nothing expires the date is empty and the amount 0.
* The tier always follows the program's thresholds on its `tier_basis` (the lowest tier is the floor
  for every enrolled member, negative balances included); `tier_since` is the date of the last change.
  Non-members (enrolled=false) have no tier, no tier_since and no expiry.
* Activities of day D explain exactly D-1 -> D for every member present both days: per customer
  sum(points) = points_balance delta, and the sum of purchase/review/referral/birthday points =
  lifetime_points delta (refunds do not lower lifetime_points). A new member's activities sum to the
  first balance. `occurred_at` is a local ISO timestamp with the program time zone's UTC offset.

Bad rows
--------
`bad_row_rate` is the fraction of the day's clean row count added as EXTRA rows (rounded); a bad row
replaces nothing, the clean population stays intact in every format. Each bad row is anchored on a
hash-chosen enrolled member and written on the line right after that member's row. Kinds, in turn:
`missing_customer_id`, `non_integer_points_balance` ("12a" / "1.5"), `non_integer_lifetime_points`,
`unknown_tier` ("Diamond"), `malformed_date` ("2026-13-45" in member_since, tier_since or
next_expiry_date), `duplicate` (the anchor's own customer_id with a different points_balance and
lifetime_points), and flag-only anomalies in otherwise valid rows: `invalid_email`, `sentinel_date`
(member_since "0001-01-01"), `negative_balance` (below `program.negative_balance_floor`). All kinds but
`duplicate` carry a fresh customer id "C9<dd><7 digits>" that never names a clean member (absent for
`missing_customer_id`) and appears on that day only.

`injected_bad_rows.json` lists them, ordered by line: {"line", "customer_id" (null when missing),
"kind", "field", "value" (the text written in that field; "" for an empty one)}. `line` is the 1-based
line number in the CSV file, the header being line 1; for parquet and jsonl it is the 1-based record
number + 1, so the same number designates the same row in every format.

Formats
-------
* csv: header, comma, quoted only when needed; empty field = no value.
* parquet: accounts columns are all VARCHAR holding exactly the CSV text (NULL for empty), so the bad
  values fit; activities are typed (points BIGINT, others VARCHAR).
* jsonl: one object per line with every field present: ids, emails, tiers and dates as strings,
  integers as numbers, enrolled as a boolean, null when empty; a bad value that is not an integer
  stays a string (e.g. "points_balance": "12a").
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb

from ...program import Platform, Program, Tier, load_program, normalize_tier_name
from ...settings import PROJECT_ROOT

Fmt = Literal["csv", "parquet", "jsonl"]

# Daily rates (fractions of the previous day's members).
GONE_RATE = 0.0005
OPT_OUT_RATE = 0.001
ENROL_RATE = 0.002
CHANGE_RATE = 0.05  # of enrolled members; expiries come on top (~0.8 %/day)
TARGETED_SHARE = 0.03  # of the changes: aimed at a tier boundary
SPLIT_SHARE = 0.15  # of the other changes: two reasons on one day
ALIAS_SHARE = 0.06  # members whose tier is written with an alias
DEFAULT_MEMORY_LIMIT = "2GB"

ACCOUNT_COLUMNS = (
    "customer_id",
    "email",
    "enrolled",
    "points_balance",
    "lifetime_points",
    "tier",
    "tier_since",
    "member_since",
    "next_expiry_date",
    "next_expiry_amount",
)
ACTIVITY_COLUMNS = ("customer_id", "occurred_at", "points", "reason")
REASONS = ("purchase", "review", "referral", "birthday", "redemption", "expiry", "refund")
EARNING_REASONS = ("purchase", "review", "referral", "birthday")
BAD_KINDS = (
    "missing_customer_id",
    "non_integer_points_balance",
    "non_integer_lifetime_points",
    "unknown_tier",
    "malformed_date",
    "duplicate",
    "invalid_email",
    "sentinel_date",
    "negative_balance",
)
_UNKNOWN_TIERS = ("Diamond", "Titanium", "Obsidian", "Elite Plus")
_BAD_EMAILS = ("not-an-email", "anna.martin@", "john..doe@@example.com", "[email protected]")
_FIRST = ("anna", "louis", "emma", "hugo", "lea", "noah", "chloe", "jules", "ines", "adam", "sara", "tom")
_LAST = ("martin", "bernard", "dubois", "thomas", "robert", "petit", "durand", "leroy", "moreau", "simon")
_DOMAINS = ("gmail.com", "yahoo.fr", "orange.fr", "outlook.com", "free.fr", "example.com")
_STORE_PREFIXES = ("0004", "0012", "0450", "1203", "9981")  # 13-digit numeric ids: prefix + 9 digits
_EXTENSIONS = {"csv": "csv", "parquet": "parquet", "jsonl": "jsonl"}


# ---------------------------------------------------------------------------------------------------
# SQL helpers


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _list(values: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(_lit(v) for v in values) + "]"


def _pick(values: list[str] | tuple[str, ...], hash_expr: str) -> str:
    """SQL: one of `values`, chosen by a non-negative BIGINT hash expression."""
    return f"{_list(values)}[1 + ({hash_expr}) % {len(values)}]"


def _date(day: dt.date) -> str:
    return f"DATE '{day.isoformat()}'"


def _utc_offset(program: Program, day: dt.date, hour: int) -> str:
    offset = program.tz.utcoffset(dt.datetime.combine(day, dt.time(hour))) or dt.timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def install_macros(con: duckdb.DuckDBPyConnection, program: Program, seed: int) -> None:
    """Pseudo-randomness, stable per-member attributes and the program's tier rules, as SQL macros.

    Tier ranks in SQL are positions 1..n in `program.ordered_tiers()` (0 = no tier).
    """
    tiers: list[Tier] = program.ordered_tiers()
    n = len(tiers)
    seed = int(seed)
    macros = [
        # h: a non-negative BIGINT hash; u: uniform in [0, 1).
        f"h(s, d, salt) AS (hash({seed}::BIGINT, s::BIGINT, d::BIGINT, salt::VARCHAR) >> 1)::BIGINT",
        "u(s, d, salt) AS (h(s, d, salt) % 1000000007) / 1000000007.0",
        "tier_of(b) AS CASE "
        + " ".join(f"WHEN b >= {t.threshold} THEN {i}" for i, t in reversed(list(enumerate(tiers, 1))) if i > 1)
        + " ELSE 1 END",
        "tier_thr(r) AS CASE r " + " ".join(f"WHEN {i} THEN {t.threshold}" for i, t in enumerate(tiers, 1)) + " END",
        "tier_next_thr(r) AS CASE r "
        + " ".join(f"WHEN {i} THEN {tiers[i].threshold}" for i in range(1, n))
        + " ELSE NULL END",
        "tier_name(r) AS CASE r " + " ".join(f"WHEN {i} THEN {_lit(t.name)}" for i, t in enumerate(tiers, 1)) + " END",
        "tier_raw(s, r) AS CASE WHEN r = 0 THEN NULL "
        f"WHEN u(s, 0, 'alias') < {ALIAS_SHARE} THEN CASE r "
        + " ".join(
            f"WHEN {i} THEN {_pick(t.aliases or [t.name], 'h(s, 0, ' + _lit('alias_pick') + ')')}"
            for i, t in enumerate(tiers, 1)
        )
        + " END ELSE tier_name(r) END",
        # Ids: 10 % are 13-digit numeric store ids (leading zeros common), the rest "C" + 10 digits.
        # The 9 low digits are a bijection of seq, so ids are unique.
        f"cust_id(s) AS CASE WHEN u(s, 0, 'idkind') < 0.10 THEN "
        f"{_pick(_STORE_PREFIXES, 'h(s, 0, ' + _lit('idpre') + ')')} || "
        f"substr((1000000000 + (s::HUGEINT * 387420489 + {(seed * 7919) % 1_000_000_000}) % 1000000000)"
        "::VARCHAR, 2) "
        "ELSE 'C' || substr((10000000000 + s)::VARCHAR, 2) END",
        "email_norm(s) AS "
        f"{_pick(_FIRST, 'h(s, 0, ' + _lit('first') + ')')} || '.' || "
        f"{_pick(_LAST, 'h(s, 0, ' + _lit('last') + ')')} || s::VARCHAR || '@' || "
        f"{_pick(_DOMAINS, 'h(s, 0, ' + _lit('domain') + ')')}",
        # A few addresses need normalising: upper case, capitalised, surrounding whitespace.
        # (email_dress takes the normalised address and u(s, 0, 'emcase') so that a query can compute
        # both once: see canonical_accounts_sql.)
        "email_dress(e, x) AS CASE "
        "WHEN x < 0.015 THEN upper(e) "
        "WHEN x < 0.03 THEN upper(e[1]) || e[2:] "
        "WHEN x < 0.04 THEN ' ' || e "
        "WHEN x < 0.05 THEN e || ' ' "
        "ELSE e END",
        "email_raw(s) AS email_dress(email_norm(s), u(s, 0, 'emcase'))",
    ]
    for macro in macros:
        con.execute(f"CREATE OR REPLACE TEMP MACRO {macro}")


def canonical_accounts_sql(state: str) -> str:
    """Typed canonical account columns of a state table (+ `seq` and `tier_rank` for ordering/joins).

    The base for every writer: the canonical one formats it as text, a platform writer renames and
    reshapes it.
    """
    return f"""
        SELECT seq, cust_id(seq) AS customer_id, email_dress(_email, _emcase) AS email, enrolled,
               points_balance, lifetime_points, tier_raw(seq, tier_rank) AS tier, tier_since,
               member_since, next_expiry_date, next_expiry_amount, tier_rank
        FROM (SELECT *, email_norm(seq) AS _email, u(seq, 0, 'emcase') AS _emcase FROM {state})"""


# ---------------------------------------------------------------------------------------------------
# Simulation


@dataclass(frozen=True)
class SimDay:
    """One simulated business date: the DuckDB tables that hold it (valid until the next step)."""

    index: int
    date: dt.date
    ordinal: int  # the day number used as hash input
    state: str  # typed canonical state + the day's movements, one row per member in the export
    activities: str | None  # view: seq, ord, ts (local TIMESTAMP), points, reason; None on day 1
    members: int  # rows in `state`


@contextmanager
def sample_connection(memory_limit: str = DEFAULT_MEMORY_LIMIT, threads: int | None = None):
    """An in-process DuckDB whose database and spill files live in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="loyalty-sample-") as tmp:
        con = duckdb.connect(str(Path(tmp) / "sim.duckdb"))
        try:
            con.execute(f"SET memory_limit = {_lit(memory_limit)}")
            con.execute(f"SET temp_directory = {_lit(str(Path(tmp) / 'spill'))}")
            con.execute("SET preserve_insertion_order = true")
            if threads:
                con.execute(f"SET threads = {int(threads)}")
            yield con
        finally:
            con.close()


# The day's movements, kept on the member's row of the state table (mostly NULL, so compressed well):
# expired points at 00:00, then one or two reasons with points and local timestamps.
MOVE_COLUMNS = ("exp_pts", "r1", "p1", "t1", "r2", "p2", "t2")
STATE_COLUMNS = (
    "seq",
    "enrolled",
    "member_since",
    "points_balance",
    "lifetime_points",
    "tier_rank",
    "tier_since",
    "next_expiry_date",
    "next_expiry_amount",
    *MOVE_COLUMNS,
)
_NO_MOVES = (
    "0::BIGINT AS exp_pts, NULL::VARCHAR AS r1, NULL::BIGINT AS p1, NULL::TIMESTAMP AS t1, "
    "NULL::VARCHAR AS r2, NULL::BIGINT AS p2, NULL::TIMESTAMP AS t2"
)


def _initial_state_sql(table: str, members: int, d0: dt.date, basis: str) -> str:
    d = _date(d0)
    return f"""
    CREATE TABLE {table} AS
    WITH a AS (
        SELECT seq, u(seq, 0, 'guest') AS ug FROM seqs
    ), b AS (
        SELECT seq, ug >= 0.03 AS enrolled, ug < 0.02 AS guest,
            CASE WHEN ug < 0.02 THEN NULL ELSE {d} - (h(seq, 0, 'since') % 1800)::INTEGER END AS member_since,
            CASE WHEN ug < 0.02 THEN 0
                 WHEN u(seq, 0, 'neg') < 0.003 THEN -(1 + h(seq, 0, 'negamt') % 300)
                 ELSE floor(20 * exp(7 * u(seq, 0, 'bal')) - 20)::BIGINT END AS points_balance
        FROM a
    ), c AS (
        SELECT *,
            CASE WHEN guest THEN 0 ELSE greatest(points_balance, 0)
                 + greatest(points_balance, 0) * (h(seq, 0, 'spent') % 150) // 100
                 + h(seq, 0, 'spent2') % 500 END AS lifetime_points
        FROM b
    ), e AS (
        SELECT *, CASE WHEN enrolled THEN tier_of({basis}) ELSE 0 END AS tier_rank FROM c
    )
    SELECT seq, enrolled, member_since, points_balance, lifetime_points, tier_rank::TINYINT AS tier_rank,
        CASE WHEN tier_rank = 0 THEN NULL WHEN tier_rank = 1 THEN member_since
             ELSE member_since + (h(seq, 0, 'tsince') % ({d} - member_since + 1))::INTEGER END AS tier_since,
        CASE WHEN enrolled AND points_balance > 0 AND u(seq, 0, 'hasexp') < 0.9
             THEN {d} + (1 + h(seq, 0, 'expd') % 120)::INTEGER END AS next_expiry_date,
        CASE WHEN enrolled AND points_balance > 0 AND u(seq, 0, 'hasexp') < 0.9
             THEN greatest(1, points_balance * (5 + h(seq, 0, 'expa') % 40) // 100) ELSE 0 END
             AS next_expiry_amount,
        {_NO_MOVES}
    FROM e"""


def _draws_sql(prev: str, day: dt.date, dn: int, balance_basis: bool, n_tiers: int) -> str:
    """View: every member of the previous day with the day's draws and resulting values."""
    d = _date(day)
    basis0 = "bal0" if balance_basis else "lifetime_points"
    new_basis = "new_bal" if balance_basis else "new_life"
    can_down = "(rank0 > 1 AND tier_thr(rank0) > 200)" if balance_basis else "false"
    earning = ", ".join(_lit(r) for r in EARNING_REASONS)
    return f"""
    CREATE OR REPLACE TEMP VIEW draws AS
    WITH a AS (
        SELECT p.*,
            u(seq, {dn}, 'gone') < {GONE_RATE} AS gone,
            enrolled AND u(seq, {dn}, 'optout') < {OPT_OUT_RATE} AS opt0,
            u(seq, {dn}, 'chg') AS u_chg, u(seq, {dn}, 'kind') AS u_kind,
            u(seq, {dn}, 'dir') AS u_dir, u(seq, {dn}, 'split') AS u_split,
            h(seq, {dn}, 'amt') AS h1, h(seq, {dn}, 'amt2') AS h2,
            h(seq, {dn}, 'time') AS ht, h(seq, {dn}, 'exp') AS hx
        FROM (SELECT {", ".join(STATE_COLUMNS[:9])} FROM {prev}) p
    ), b AS (
        SELECT *, opt0 AND NOT gone AS opt_out, enrolled AND NOT gone AND NOT opt0 AS active FROM a
    ), c AS (
        SELECT *, active AND next_expiry_date <= {d} AS expires,
            CASE WHEN active AND next_expiry_date <= {d} THEN next_expiry_amount ELSE 0 END AS exp_pts
        FROM b
    ), e AS (
        SELECT *, points_balance - exp_pts AS bal0 FROM c
    ), f AS (
        SELECT *, tier_of({basis0}) AS rank0, {basis0} AS basis0, active AND u_chg < {CHANGE_RATE} AS chg FROM e
    ), g AS (
        SELECT *,
            chg AND u_kind < {TARGETED_SHARE} AND rank0 < {n_tiers}
                AND (NOT {can_down} OR u_dir < 0.55) AS up_move,
            {can_down} AS can_down
        FROM f
    ), k AS (
        SELECT *, chg AND u_kind < {TARGETED_SHARE} AND NOT up_move AND can_down AS down_move FROM g
    ), m AS (
        SELECT *,
            CASE WHEN NOT chg THEN NULL
                 WHEN up_move THEN 'purchase'
                 WHEN down_move THEN 'redemption'
                 WHEN u_kind < 0.55 THEN 'purchase'
                 WHEN u_kind < 0.62 THEN 'review'
                 WHEN u_kind < 0.66 THEN 'referral'
                 WHEN u_kind < 0.70 THEN 'birthday'
                 WHEN u_kind < 0.95 THEN CASE WHEN bal0 >= 100 THEN 'redemption' ELSE 'purchase' END
                 ELSE 'refund' END AS r1
        FROM k
    ), n AS (
        SELECT *,
            CASE WHEN r1 IS NULL THEN NULL
                 WHEN up_move THEN tier_next_thr(rank0) - basis0 + 1 + h1 % 150
                 WHEN down_move THEN -(bal0 - tier_thr(rank0) + 1 + h1 % 100)
                 WHEN r1 = 'purchase' THEN 5 + h1 % 596
                 WHEN r1 = 'review' THEN 25 * (1 + h1 % 2)
                 WHEN r1 = 'referral' THEN 250 * (1 + h1 % 2)
                 WHEN r1 = 'birthday' THEN 100 + 50 * (h1 % 5)
                 WHEN r1 = 'redemption' THEN -100 * (1 + h1 % least(10, bal0 // 100))
                 -- refunds: usually within the balance, sometimes beyond it (negative balance)
                 WHEN 5 + h1 % 400 <= bal0 OR h2 % 5 = 0 THEN -(5 + h1 % 400)
                 ELSE -greatest(least(5 + h1 % 400, bal0), 1) END AS p1,
            CASE WHEN NOT chg OR up_move OR down_move OR u_split >= {SPLIT_SHARE} THEN NULL
                 WHEN r1 = 'purchase' THEN 'review' ELSE 'purchase' END AS r2
        FROM m
    ), q AS (
        SELECT *,
            CASE WHEN r2 = 'review' THEN 25 * (1 + h2 % 2) WHEN r2 = 'purchase' THEN 5 + h2 % 596 END AS p2
        FROM n
    ), r AS (
        SELECT *,
            bal0 + coalesce(p1, 0) + coalesce(p2, 0) AS new_bal,
            lifetime_points + CASE WHEN r1 IN ({earning}) THEN p1 ELSE 0 END + coalesce(p2, 0) AS new_life,
            CASE WHEN r1 IN ({earning}) THEN p1 ELSE 0 END + coalesce(p2, 0) AS earned
        FROM q
    ), s AS (
        SELECT *,
            CASE WHEN active THEN tier_of({new_basis}) ELSE 0 END AS new_rank,
            CASE WHEN NOT active THEN 0
                 WHEN expires THEN greatest(new_bal, 0) * (10 + hx % 30) // 100
                 WHEN next_expiry_date IS NULL
                     THEN CASE WHEN earned > 0 THEN least(earned, greatest(new_bal, 0)) ELSE 0 END
                 ELSE least(next_expiry_amount, greatest(new_bal, 0)) END AS x_amt
        FROM r
    )
    SELECT *,
        CASE WHEN x_amt = 0 THEN NULL
             WHEN expires THEN {d} + (60 + (hx // 7) % 120)::INTEGER
             WHEN next_expiry_date IS NULL THEN {d} + (30 + (hx // 7) % 120)::INTEGER
             ELSE next_expiry_date END AS x_date
    FROM s"""


def simulate(
    con: duckdb.DuckDBPyConnection,
    *,
    program: Program,
    members: int,
    dates: list[dt.date],
    seed: int = 42,
) -> Iterator[SimDay]:
    """Build the state table (and activities view) day by day; yield each day while its tables exist."""
    install_macros(con, program, seed)
    balance_basis = program.tier_basis == "points_balance"
    basis = "points_balance" if balance_basis else "lifetime_points"
    n_tiers = len(program.tiers)
    # range() is a single-threaded source: materialise the ids once so the heavy queries run in parallel.
    con.execute(f"CREATE OR REPLACE TABLE seqs AS SELECT range::BIGINT AS seq FROM range(1, {members} + 1)")
    max_seq = members
    prev: SimDay | None = None
    for index, day in enumerate(dates):
        state = f"state_{index}"
        acts: str | None = None
        if prev is None:
            con.execute(_initial_state_sql(state, members, day, basis))
            con.execute("DROP TABLE seqs")
        else:
            dn = day.toordinal()
            d = _date(day)
            t1 = f"{d}::TIMESTAMP + to_seconds(28800 + ht % 50400)"  # 08:00-21:59:59 local
            t2 = f"{t1} + to_seconds(60 + (ht // 50400) % 3600)"
            con.execute(_draws_sql(prev.state, day, dn, balance_basis, n_tiers))
            u_day = con.execute(f"SELECT u(0, {dn}, 'enrol_count')").fetchone()[0]
            n_new = int(round(prev.members * ENROL_RATE * (0.75 + 0.5 * u_day)))
            con.execute(f"""
                CREATE TABLE {state} AS
                SELECT seq, enrolled AND NOT opt_out AS enrolled, member_since, new_bal AS points_balance,
                    new_life AS lifetime_points, new_rank::TINYINT AS tier_rank,
                    CASE WHEN new_rank = 0 THEN NULL WHEN new_rank <> tier_rank THEN {d}
                         ELSE tier_since END AS tier_since,
                    x_date AS next_expiry_date, x_amt AS next_expiry_amount,
                    exp_pts, r1, p1, CASE WHEN r1 IS NOT NULL THEN {t1} END AS t1,
                    r2, p2, CASE WHEN r2 IS NOT NULL THEN {t2} END AS t2
                FROM draws WHERE NOT gone
                UNION ALL
                SELECT seq, true, {d}, bal, bal, tier_of(bal)::TINYINT, {d},
                    CASE WHEN bal > 0 THEN {d} + (30 + (hx // 7) % 120)::INTEGER END, bal,
                    0, CASE WHEN bal > 0 THEN 'purchase' END, CASE WHEN bal > 0 THEN bal END,
                    CASE WHEN bal > 0 THEN {t1} END, NULL, NULL, NULL
                FROM (
                    SELECT seq, h(seq, {dn}, 'time') AS ht, h(seq, {dn}, 'exp') AS hx,
                        CASE WHEN u(seq, {dn}, 'firstbuy') < 0.6 THEN 5 + h(seq, {dn}, 'firstamt') % 596
                             ELSE 0 END AS bal
                    FROM (SELECT range::BIGINT AS seq FROM range({max_seq + 1}, {max_seq + n_new + 1}))
                )""")
            con.execute("DROP VIEW draws")
            max_seq += n_new
            acts = f"activities_{index}"
            con.execute(f"""
                CREATE OR REPLACE TEMP VIEW {acts} AS
                SELECT seq, 0 AS ord, {d}::TIMESTAMP AS ts, -exp_pts AS points, 'expiry' AS reason
                FROM {state} WHERE exp_pts > 0
                UNION ALL SELECT seq, 1, t1, p1, r1 FROM {state} WHERE r1 IS NOT NULL
                UNION ALL SELECT seq, 2, t2, p2, r2 FROM {state} WHERE r2 IS NOT NULL""")
        count = con.execute(f"SELECT count(*) FROM {state}").fetchone()[0]
        current = SimDay(index, day, day.toordinal(), state, acts, count)
        if prev is not None:
            if prev.activities:
                con.execute(f"DROP VIEW {prev.activities}")
            con.execute(f"DROP TABLE {prev.state}")
        yield current
        prev = current


# ---------------------------------------------------------------------------------------------------
# Canonical writer


def _copy_options(fmt: Fmt) -> str:
    return {"csv": "FORMAT csv, HEADER true", "parquet": "FORMAT parquet", "jsonl": "FORMAT json"}[fmt]


def _bad_rows_sql(day: SimDay, n_bad: int, program: Program) -> str:
    """Table `bad_rows`: the day's extra rows as text, with their line numbers and what is wrong."""
    dn = day.ordinal
    known = {alias for alias, _, _ in program.tier_alias_rows()}
    unknown = [t for t in _UNKNOWN_TIERS if normalize_tier_name(t) not in known] or ["Tier-Unknown-X"]
    lowest = program.ordered_tiers()[0].name
    floor = program.negative_balance_floor
    year = day.date.year
    fresh_email = (
        f"{_pick(_FIRST, 'hk // 3')} || '.' || {_pick(_LAST, 'hk // 5')} || '.' || k::VARCHAR || "
        f"'.{dn % 100:02d}@' || {_pick(_DOMAINS, 'hk // 11')}"
    )
    kinds = _list(BAD_KINDS)
    return f"""
    CREATE OR REPLACE TEMP TABLE bad_rows AS
    WITH anchors AS (
        SELECT seq, h(seq, {dn}, 'bad') AS hb FROM {day.state} WHERE enrolled ORDER BY hb, seq LIMIT {n_bad}
    ), ranked AS (
        SELECT seq, row_number() OVER (ORDER BY hb, seq) - 1 AS k, h(seq, {dn}, 'badval') AS hk FROM anchors
    ), pos AS (
        SELECT seq, row_number() OVER (ORDER BY seq) AS rn FROM {day.state}
    ), base AS (
        SELECT r.seq, r.k, r.hk, {kinds}[1 + r.k % {len(BAD_KINDS)}] AS kind,
            p.rn + row_number() OVER (ORDER BY r.seq) + 1 AS line,
            'C9' || substr((100 + {dn} % 100)::VARCHAR, 2) || substr((10000000 + r.k)::VARCHAR, 2) AS fresh_id,
            s.*
        FROM ranked r JOIN pos p USING (seq) JOIN {day.state} s USING (seq)
    ), spec AS (
        SELECT *,
            CASE kind
                WHEN 'missing_customer_id' THEN 'customer_id'
                WHEN 'non_integer_points_balance' THEN 'points_balance'
                WHEN 'non_integer_lifetime_points' THEN 'lifetime_points'
                WHEN 'unknown_tier' THEN 'tier'
                WHEN 'malformed_date' THEN {_pick(("member_since", "tier_since", "next_expiry_date"), "hk // 13")}
                WHEN 'duplicate' THEN 'points_balance'
                WHEN 'invalid_email' THEN 'email'
                WHEN 'sentinel_date' THEN 'member_since'
                WHEN 'negative_balance' THEN 'points_balance' END AS field,
            CASE kind
                WHEN 'missing_customer_id' THEN NULL
                WHEN 'non_integer_points_balance' THEN
                    points_balance::VARCHAR || CASE WHEN hk % 2 = 0 THEN 'a' ELSE '.5' END
                WHEN 'non_integer_lifetime_points' THEN
                    lifetime_points::VARCHAR || CASE WHEN hk % 2 = 0 THEN '.75' ELSE ' pts' END
                WHEN 'unknown_tier' THEN {_pick(unknown, "hk // 17")}
                WHEN 'malformed_date' THEN
                    CASE WHEN hk % 2 = 0 THEN '{year}-13-45' ELSE '{year}-02-30' END
                WHEN 'duplicate' THEN (points_balance + 1 + hk % 500)::VARCHAR
                WHEN 'invalid_email' THEN {_pick(_BAD_EMAILS, "hk // 19")}
                WHEN 'sentinel_date' THEN '0001-01-01'
                WHEN 'negative_balance' THEN ({floor} - 1 - hk % 5000)::VARCHAR END AS value
        FROM base
    ), t AS (
        SELECT seq, line, kind, field, value,
            CASE WHEN kind = 'duplicate' THEN cust_id(seq) ELSE fresh_id END AS customer_id,
            CASE WHEN kind = 'duplicate' THEN email_raw(seq) ELSE {fresh_email} END AS email,
            enrolled::VARCHAR AS enrolled,
            points_balance::VARCHAR AS points_balance,
            (lifetime_points + CASE WHEN kind = 'duplicate' THEN 1 + hk % 500 ELSE 0 END)::VARCHAR
                AS lifetime_points,
            CASE WHEN kind = 'negative_balance' THEN {_lit(lowest)} ELSE tier_raw(seq, tier_rank) END AS tier,
            tier_since::VARCHAR AS tier_since,
            member_since::VARCHAR AS member_since,
            CASE WHEN kind = 'negative_balance' THEN NULL ELSE next_expiry_date::VARCHAR END
                AS next_expiry_date,
            CASE WHEN kind = 'negative_balance' THEN '0' ELSE next_expiry_amount::VARCHAR END
                AS next_expiry_amount
        FROM spec
    )
    SELECT seq, line, kind, field, value,
        {", ".join(f"CASE WHEN field = {_lit(c)} THEN value ELSE {c} END AS {c}" for c in ACCOUNT_COLUMNS)}
    FROM t"""


def _accounts_text_sql(day: SimDay, with_bad: bool) -> str:
    """All rows of the day's accounts file as text, keyed by (_k, _s) in file order."""
    clean = f"""
        SELECT seq AS _k, 0 AS _s, customer_id, email, enrolled::VARCHAR AS enrolled,
            points_balance::VARCHAR AS points_balance, lifetime_points::VARCHAR AS lifetime_points, tier,
            tier_since::VARCHAR AS tier_since, member_since::VARCHAR AS member_since,
            next_expiry_date::VARCHAR AS next_expiry_date, next_expiry_amount::VARCHAR AS next_expiry_amount
        FROM ({canonical_accounts_sql(day.state)})"""
    if not with_bad:
        return clean
    cols = ", ".join(ACCOUNT_COLUMNS)
    return f"{clean}\n UNION ALL SELECT seq, 1, {cols} FROM bad_rows"


def _json_value(column: str) -> str:
    if column in ("points_balance", "lifetime_points", "next_expiry_amount"):
        return (
            f"CASE WHEN regexp_full_match({column}, '-?[0-9]+') THEN {column}::JSON "
            f"ELSE to_json({column}) END AS {column}"
        )
    if column == "enrolled":
        return f"CASE WHEN {column} IN ('true', 'false') THEN {column}::JSON ELSE to_json({column}) END AS {column}"
    return f"to_json({column}) AS {column}"


def write_canonical(
    con: duckdb.DuckDBPyConnection,
    day: SimDay,
    day_dir: Path,
    *,
    program: Program,
    fmt: Fmt = "csv",
    bad_row_rate: float = 0.0,
    activities: bool = True,
) -> None:
    """Write the canonical accounts / activities files and `injected_bad_rows.json` of one day."""
    ext = _EXTENSIONS[fmt]
    n_bad = int(round(bad_row_rate * day.members))
    if n_bad:
        con.execute(_bad_rows_sql(day, n_bad, program))
    rows = _accounts_text_sql(day, with_bad=n_bad > 0)
    if fmt == "jsonl":
        cols = ", ".join(_json_value(c) for c in ACCOUNT_COLUMNS)
    else:
        cols = ", ".join(ACCOUNT_COLUMNS)
    target = day_dir / f"{program.source.accounts_file}.{ext}"
    con.execute(f"COPY (SELECT {cols} FROM ({rows}) ORDER BY _k, _s) TO {_lit(str(target))} ({_copy_options(fmt)})")

    injected = day_dir / "injected_bad_rows.json"
    if n_bad:
        con.execute(f"""
            COPY (SELECT line, customer_id, kind, field, coalesce(value, '') AS value FROM bad_rows ORDER BY line)
            TO {_lit(str(injected))} (FORMAT json, ARRAY true)""")
        con.execute("DROP TABLE bad_rows")
    else:
        injected.write_text("[]\n", encoding="utf-8")

    if activities:
        target = day_dir / f"{program.source.activities_file}.{ext}"
        if day.activities is None:  # day 1 is a baseline: no movement to explain
            source = (
                "SELECT NULL::BIGINT AS seq, NULL::INTEGER AS ord, NULL::TIMESTAMP AS ts, "
                "NULL::BIGINT AS points, NULL::VARCHAR AS reason WHERE false"
            )
        else:
            source = f"SELECT * FROM {day.activities}"
        midnight, noon = _utc_offset(program, day.date, 0), _utc_offset(program, day.date, 12)
        con.execute(f"""
            COPY (
                SELECT cust_id(seq) AS customer_id,
                    strftime(ts, '%Y-%m-%dT%H:%M:%S') || CASE WHEN ord = 0 THEN '{midnight}' ELSE '{noon}' END
                        AS occurred_at,
                    points::BIGINT AS points, reason
                FROM ({source}) ORDER BY seq, ord
            ) TO {_lit(str(target))} ({_copy_options(fmt)})""")


Writer = Callable[..., None]
WRITERS: dict[str, Writer] = {"canonical": write_canonical}


# ---------------------------------------------------------------------------------------------------
# Entry point


def _default_program() -> Program:
    path = PROJECT_ROOT / "data" / "program.yaml"
    if path.exists():
        return load_program(path)
    return Program(
        tier_basis="points_balance",
        tiers=[
            Tier(name="Bronze", rank=1, threshold=0, aliases=["BRONZE", "Base", "Starter"]),
            Tier(name="Silver", rank=2, threshold=1000, aliases=["SILVER", "Loyal silver"]),
            Tier(name="Gold", rank=3, threshold=5000, aliases=["GOLD", "Or", "Power User"]),
            Tier(name="Platinum", rank=4, threshold=15000, aliases=["PLATINUM", "VIP"]),
        ],
    )


def generate_sample(
    out_dir: Path,
    *,
    members: int,
    days: int,
    end: dt.date,
    seed: int = 42,
    fmt: Fmt = "csv",
    bad_row_rate: float = 0.0,
    program: Program | None = None,
    activities: bool = True,
    platform: Platform = "canonical",
) -> list[Path]:
    """Simulate `days` daily full exports ending at `end`; return the day directories, oldest first.

    See the module docstring for the files, the simulation and the bad-row semantics.
    `platform` selects a writer in `WRITERS` (canonical here; the platforms' shapes in platforms.py).
    """
    if members < 1 or days < 1:
        raise ValueError("members and days must be >= 1")
    if fmt not in _EXTENSIONS:
        raise ValueError(f"fmt must be one of {sorted(_EXTENSIONS)}, not {fmt!r}")
    if not 0.0 <= bad_row_rate < 1.0:
        raise ValueError("bad_row_rate must be in [0, 1)")
    writer = WRITERS.get(platform)
    if writer is None:
        raise ValueError(f"no sample writer for platform {platform!r} yet (have: {sorted(WRITERS)})")
    program = program or _default_program()
    out_dir = Path(out_dir)
    dates = [end - dt.timedelta(days=days - 1 - i) for i in range(days)]
    written: list[Path] = []
    with sample_connection() as con:
        for day in simulate(con, program=program, members=members, dates=dates, seed=seed):
            day_dir = out_dir / day.date.isoformat()
            day_dir.mkdir(parents=True, exist_ok=True)
            writer(con, day, day_dir, program=program, fmt=fmt, bad_row_rate=bad_row_rate, activities=activities)
            written.append(day_dir)
    return written
