"""The sample generator: deterministic, consistent day over day, with the promised bad rows."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import duckdb
import pytest

from loyalty_pipeline.devtools.sample.generator import ACCOUNT_COLUMNS, BAD_KINDS, REASONS, generate_sample
from loyalty_pipeline.program import load_program, normalize_tier_name
from loyalty_pipeline.settings import PROJECT_ROOT

PROGRAM = load_program(PROJECT_ROOT / "data" / "program.yaml")
MEMBERS = 2000
DAYS = 3
END = dt.date(2026, 3, 29)  # Europe/Paris switches to summer time that day
DATES = [(END - dt.timedelta(days=DAYS - 1 - i)).isoformat() for i in range(DAYS)]
RATE = 0.01
KW = dict(members=MEMBERS, days=DAYS, end=END, seed=7, bad_row_rate=RATE, program=PROGRAM)
EXT = {"csv": "csv", "parquet": "parquet", "jsonl": "jsonl"}


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One generated sample per format (same arguments)."""
    base = tmp_path_factory.mktemp("samples")
    result = {}
    for fmt in EXT:
        dirs = generate_sample(base / fmt, fmt=fmt, **KW)
        assert [d.name for d in dirs] == DATES
        result[fmt] = base / fmt
    return result


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def as_text(value: object) -> str:
    """A jsonl / parquet value as the CSV would show it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def records(path: Path) -> list[dict[str, str]]:
    """The accounts (or activities) file as text rows in file order, whatever the format."""
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return [{k: as_text(v) for k, v in row.items()} for row in rows]
    con = duckdb.connect()
    rel = con.sql(f"SELECT * FROM read_parquet('{path}', file_row_number = true) ORDER BY file_row_number")
    cols = [c for c in rel.columns if c != "file_row_number"]
    return [{c: as_text(v) for c, v in zip(cols, row, strict=False)} for row in rel.fetchall()]


def injected(root: Path, day: str) -> list[dict]:
    return json.loads((root / day / "injected_bad_rows.json").read_text(encoding="utf-8"))


def test_layout_and_columns(out: dict[str, Path]) -> None:
    for fmt, root in out.items():
        for day in DATES:
            names = sorted(p.name for p in (root / day).iterdir())
            assert names == sorted([f"accounts.{EXT[fmt]}", f"activities.{EXT[fmt]}", "injected_bad_rows.json"])
    header = (out["csv"] / DATES[0] / "accounts.csv").read_text().splitlines()[0]
    assert header == ",".join(ACCOUNT_COLUMNS)
    first = json.loads((out["jsonl"] / DATES[-1] / "activities.jsonl").read_text().splitlines()[0])
    assert list(first) == ["customer_id", "occurred_at", "points", "reason"]
    account = json.loads((out["jsonl"] / DATES[0] / "accounts.jsonl").read_text().splitlines()[0])
    assert list(account) == list(ACCOUNT_COLUMNS)  # every field present, nulls included


@pytest.mark.parametrize("fmt", list(EXT))
def test_deterministic(out: dict[str, Path], tmp_path: Path, fmt: str) -> None:
    generate_sample(tmp_path / "again", fmt=fmt, **KW)
    assert digests(tmp_path / "again") == digests(out[fmt])
    generate_sample(tmp_path / "other_seed", fmt=fmt, **{**KW, "seed": 8})
    other = digests(tmp_path / "other_seed")
    assert other[f"{DATES[0]}/accounts.{EXT[fmt]}"] != digests(out[fmt])[f"{DATES[0]}/accounts.{EXT[fmt]}"]


def test_row_counts(out: dict[str, Path]) -> None:
    for day in DATES:
        rows = records(out["csv"] / day / "accounts.csv")
        bad = injected(out["csv"], day)
        bad_lines = {b["line"] for b in bad}
        clean = [r for i, r in enumerate(rows, start=2) if i not in bad_lines]
        assert len(rows) == len(clean) + len(bad)
        assert len(bad) == round(RATE * len(clean))
        assert len({r["customer_id"] for r in clean}) == len(clean)  # one row per clean member
        if day == DATES[0]:
            assert len(clean) == MEMBERS


@pytest.mark.parametrize("fmt", list(EXT))
def test_bad_rows_are_where_the_list_says(out: dict[str, Path], fmt: str) -> None:
    date_re = re.compile(r"\d{4}-\d{2}-\d{2}")
    known_tiers = {alias for alias, _, _ in PROGRAM.tier_alias_rows()}
    for day in DATES:
        rows = records(out[fmt] / day / f"accounts.{EXT[fmt]}")
        bad = injected(out[fmt], day)
        assert bad == injected(out["csv"], day)  # the same line numbers in every format
        assert {b["kind"] for b in bad} == set(BAD_KINDS)
        bad_lines = {b["line"] for b in bad}
        clean_ids = {r["customer_id"] for i, r in enumerate(rows, start=2) if i not in bad_lines}
        for b in bad:
            row = rows[b["line"] - 2]
            assert row[b["field"]] == b["value"], b
            assert row["customer_id"] == (b["customer_id"] or ""), b
            value, kind = b["value"], b["kind"]
            if kind == "missing_customer_id":
                assert value == "" and b["customer_id"] is None
            elif kind == "duplicate":
                earlier = [r for r in rows[: b["line"] - 2] if r["customer_id"] == b["customer_id"]]
                assert len(earlier) == 1 and earlier[0]["points_balance"] != value
            else:
                assert b["customer_id"] not in clean_ids  # a fresh id: no clean member is touched
            if kind.startswith("non_integer"):
                assert not re.fullmatch(r"-?\d+", value)
            if kind == "unknown_tier":
                assert normalize_tier_name(value) not in known_tiers
            if kind == "malformed_date":
                assert date_re.fullmatch(value)
                with pytest.raises(ValueError):
                    dt.date.fromisoformat(value)
            if kind == "invalid_email":
                assert not re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]+", value)
            if kind == "sentinel_date":
                assert value == "0001-01-01" and b["field"] == "member_since"
            if kind == "negative_balance":
                assert int(value) < PROGRAM.negative_balance_floor


def test_formats_carry_the_same_content(out: dict[str, Path]) -> None:
    for day in DATES:
        for stem in ("accounts", "activities"):
            csv_rows = records(out["csv"] / day / f"{stem}.csv")
            assert records(out["parquet"] / day / f"{stem}.parquet") == csv_rows
            assert records(out["jsonl"] / day / f"{stem}.jsonl") == csv_rows


def test_ids_stay_strings_with_leading_zeros(out: dict[str, Path]) -> None:
    rows = records(out["csv"] / DATES[0] / "accounts.csv")
    numeric = [r["customer_id"] for r in rows if re.fullmatch(r"\d{13}", r["customer_id"])]
    assert len(numeric) > MEMBERS * 0.05
    assert any(i.startswith("000") for i in numeric)
    assert all(re.fullmatch(r"C\d{10}|\d{13}|", r["customer_id"]) for r in rows)
    schema = duckdb.execute(f"DESCRIBE SELECT * FROM '{out['parquet'] / DATES[0] / 'accounts.parquet'}'").fetchall()
    assert dict((name, typ) for name, typ, *_ in schema)["customer_id"] == "VARCHAR"
    lines = (out["jsonl"] / DATES[0] / "accounts.jsonl").read_text().splitlines()
    assert any(json.loads(line)["customer_id"] == numeric[0] for line in lines)


def test_emails_mostly_normalised(out: dict[str, Path]) -> None:
    rows = records(out["csv"] / DATES[0] / "accounts.csv")
    messy = [r["email"] for r in rows if r["email"] != r["email"].strip().lower()]
    assert 0.01 * MEMBERS < len(messy) < 0.1 * MEMBERS


def _load_days(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    """Clean account rows of every day (bad lines removed) and activities, typed, into DuckDB."""
    for i, day in enumerate(DATES):
        bad_lines = [b["line"] for b in injected(root, day)] or [-1]
        con.execute(f"""
            CREATE TABLE acc{i} AS
            SELECT customer_id, trim(lower(email)) AS email, enrolled::BOOLEAN AS enrolled,
                points_balance::BIGINT AS bal, lifetime_points::BIGINT AS life, tier,
                tier_since::DATE AS tier_since, member_since::DATE AS member_since,
                next_expiry_date::DATE AS exp_date, next_expiry_amount::BIGINT AS exp_amt
            FROM (SELECT *, row_number() OVER () + 1 AS line
                  FROM read_csv('{root / day / "accounts.csv"}', all_varchar = true, header = true))
            WHERE line NOT IN ({", ".join(map(str, bad_lines))})""")
        con.execute(f"""
            CREATE TABLE act{i} AS
            SELECT customer_id, occurred_at, points::BIGINT AS points, reason
            FROM read_csv('{root / day / "activities.csv"}', all_varchar = true, header = true)""")
    con.execute("CREATE TABLE tiers (alias VARCHAR, name VARCHAR, rank INTEGER)")
    con.executemany("INSERT INTO tiers VALUES (?, ?, ?)", PROGRAM.tier_alias_rows())
    con.execute("CREATE TABLE thresholds (name VARCHAR, threshold BIGINT)")
    con.executemany("INSERT INTO thresholds VALUES (?, ?)", [(t.name, t.threshold) for t in PROGRAM.tiers])


@pytest.fixture(scope="module")
def db(out: dict[str, Path]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    _load_days(con, out["csv"])
    return con


def test_activities_reconcile_with_deltas(db: duckdb.DuckDBPyConnection) -> None:
    assert db.execute("SELECT count(*) FROM act0").fetchone()[0] == 0  # day 1 is the baseline
    for i in range(1, DAYS):
        day = DATES[i]
        mismatches = db.execute(f"""
            WITH a AS (
                SELECT customer_id, sum(points) AS pts,
                    sum(CASE WHEN reason IN ('purchase', 'review', 'referral', 'birthday') THEN points ELSE 0 END)
                        AS earned
                FROM act{i} GROUP BY ALL
            )
            SELECT count(*) FROM acc{i} c LEFT JOIN acc{i - 1} p USING (customer_id) LEFT JOIN a USING (customer_id)
            WHERE c.bal - coalesce(p.bal, 0) <> coalesce(a.pts, 0)
               OR c.life - coalesce(p.life, 0) <> coalesce(a.earned, 0)""").fetchone()[0]
        assert mismatches == 0
        # every activity belongs to a member of the day's file, happens that day, has a known reason
        orphans = db.execute(f"SELECT count(*) FROM act{i} WHERE customer_id NOT IN (SELECT customer_id FROM acc{i})")
        assert orphans.fetchone()[0] == 0
        assert db.execute(f"SELECT count(*) FROM act{i} WHERE occurred_at[:10] <> '{day}'").fetchone()[0] == 0
        reasons = {r for (r,) in db.execute(f"SELECT DISTINCT reason FROM act{i}").fetchall()}
        assert reasons <= set(REASONS) and {"purchase", "redemption", "expiry"} <= reasons
        # expiry: on the date, exactly the announced amount goes
        wrong_expiry = db.execute(f"""
            SELECT count(*) FROM acc{i - 1} p JOIN acc{i} c USING (customer_id)
            LEFT JOIN (SELECT customer_id, -sum(points) AS expired FROM act{i} WHERE reason = 'expiry' GROUP BY ALL) e
                USING (customer_id)
            WHERE c.enrolled AND coalesce(e.expired, 0) <> CASE WHEN p.exp_date = DATE '{day}' THEN p.exp_amt ELSE 0 END
        """).fetchone()[0]
        assert wrong_expiry == 0
        two_reasons = db.execute(f"""
            SELECT count(*) FROM (SELECT customer_id FROM act{i} WHERE reason <> 'expiry' GROUP BY ALL
                                  HAVING count(DISTINCT reason) > 1)""").fetchone()[0]
        assert two_reasons > 0
        assert (
            db.execute(
                f"SELECT count(*) FROM acc{i} c JOIN acc{i - 1} p USING (customer_id) WHERE c.life < p.life"
            ).fetchone()[0]
            == 0
        )


def test_local_timestamps_follow_the_time_zone(db: duckdb.DuckDBPyConnection) -> None:
    # 2026-03-29 in Europe/Paris: midnight expiries are still +01:00, the day's activities +02:00
    offsets = dict(
        db.execute("""
        SELECT reason = 'expiry', list(DISTINCT occurred_at[20:]) FROM act2 GROUP BY ALL""").fetchall()
    )
    assert offsets == {True: ["+01:00"], False: ["+02:00"]}
    assert (
        db.execute("SELECT count(*) FROM act2 WHERE reason = 'expiry' AND occurred_at[12:19] <> '00:00:00'").fetchone()[
            0
        ]
        == 0
    )


def test_churn_rates_are_plausible(db: duckdb.DuckDBPyConnection) -> None:
    for i in range(1, DAYS):
        changed, tier_moves, gone, opted_out, n_prev = db.execute(f"""
            SELECT avg((c.bal <> p.bal)::INT), avg((c.tier IS NOT NULL AND p.tier IS NOT NULL
                       AND tc.name <> tp.name)::INT),
                   count(*) FILTER (WHERE c.customer_id IS NULL),
                   count(*) FILTER (WHERE p.enrolled AND NOT c.enrolled), count(*)
            FROM acc{i - 1} p LEFT JOIN acc{i} c USING (customer_id)
            LEFT JOIN tiers tp ON tp.alias = lower(trim(p.tier)) LEFT JOIN tiers tc ON tc.alias = lower(trim(c.tier))
        """).fetchone()
        assert 0.03 <= changed <= 0.08
        assert 0.001 <= tier_moves <= 0.015
        assert gone <= 0.005 * n_prev and opted_out <= 0.01 * n_prev
        new = db.execute(f"SELECT count(*) FROM acc{i} WHERE customer_id NOT IN (SELECT customer_id FROM acc{i - 1})")
        assert 0 < new.fetchone()[0] <= 0.01 * n_prev


def test_state_is_consistent_with_the_program(db: duckdb.DuckDBPyConnection) -> None:
    for i in range(DAYS):
        day = DATES[i]
        # members: the tier (through its aliases) is the one the thresholds give on points_balance
        wrong_tier = db.execute(f"""
            SELECT count(*) FROM acc{i} a LEFT JOIN tiers t ON t.alias = lower(trim(a.tier))
            WHERE a.enrolled AND t.name IS DISTINCT FROM coalesce(
                (SELECT name FROM thresholds WHERE threshold <= a.bal ORDER BY threshold DESC LIMIT 1),
                (SELECT name FROM thresholds ORDER BY threshold LIMIT 1))""").fetchone()[0]
        assert wrong_tier == 0
        assert (
            db.execute(
                f"SELECT count(*) FROM acc{i} WHERE NOT enrolled AND (tier IS NOT NULL OR exp_date IS NOT NULL)"
            ).fetchone()[0]
            == 0
        )
        aliased = db.execute(
            f"SELECT count(*) FROM acc{i} a JOIN tiers t ON t.alias = lower(trim(a.tier)) WHERE a.tier <> t.name"
        ).fetchone()[0]
        assert aliased > 0
        # expiry: never more than the balance, date set iff something expires, reminders cross every day
        assert (
            db.execute(f"""SELECT count(*) FROM acc{i} WHERE exp_amt > greatest(bal, 0) OR exp_amt < 0
                          OR (exp_date IS NULL) <> (exp_amt = 0) OR exp_date <= DATE '{day}'""").fetchone()[0]
            == 0
        )
        windows = dict(
            db.execute(f"""SELECT exp_date - DATE '{day}' AS d, count(*) FROM acc{i}
                                 WHERE d IN {tuple(PROGRAM.expiry_reminder_days)} GROUP BY ALL""").fetchall()
        )
        assert set(windows) == set(PROGRAM.expiry_reminder_days)
        assert db.execute(f"SELECT count(*) FROM acc{i} WHERE life < 0 OR tier_since < member_since").fetchone()[0] == 0
        if i:
            # tier_since moves exactly when the tier does
            wrong_since = db.execute(f"""
                SELECT count(*) FROM acc{i} c JOIN acc{i - 1} p USING (customer_id)
                LEFT JOIN tiers tp ON tp.alias = lower(trim(p.tier))
                LEFT JOIN tiers tc ON tc.alias = lower(trim(c.tier))
                WHERE c.enrolled AND p.enrolled
                  AND ((tp.name <> tc.name) <> (c.tier_since = DATE '{day}' AND p.tier_since <> DATE '{day}'))
            """).fetchone()[0]
            assert wrong_since == 0
    negative = db.execute("SELECT count(*) FROM acc2 WHERE bal < 0").fetchone()[0]
    assert 0 < negative < 0.02 * MEMBERS


def test_no_bad_rows_and_no_activities_when_asked(tmp_path: Path) -> None:
    dirs = generate_sample(tmp_path, members=300, days=2, end=END, program=PROGRAM, activities=False)
    for d in dirs:
        assert sorted(p.name for p in d.iterdir()) == ["accounts.csv", "injected_bad_rows.json"]
        assert json.loads((d / "injected_bad_rows.json").read_text()) == []
    assert len(records(dirs[0] / "accounts.csv")) == 300
