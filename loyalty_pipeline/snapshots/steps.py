"""The snapshot and deltas steps, set-based in DuckDB: raw rows → validated snapshots + quarantine → deltas.

Each step replaces its own day in one transaction, so a failed step leaves the previous state of
that day untouched, and records what it was built from (warehouse/fingerprints.py): re-running a day
whose inputs did not change reuses it. The assets (assets.py) call these functions; so do the
benchmark and tests.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from ..ingest.files import ExportError
from ..ingest.platforms import adapter
from ..program import Program
from ..warehouse import fingerprints
from ..warehouse.connection import count_day, install_macros, prepare, replace_day, sql_files, transaction

sql = sql_files(__package__)


def build_snapshot(con: duckdb.DuckDBPyConnection, day: dt.date, program: Program, force: bool = False) -> dict:
    """Validate raw rows into snapshots; every rejected row goes to quarantine with its reason."""
    raw = count_day(con, "raw_accounts", day)
    if raw == 0:
        raise ExportError(f"no raw rows for {day}: materialize loyalty_export for that day first")
    fp = fingerprints.fingerprint("snapshot", fingerprints.stored(con, "ingest", day),
                                  program.model_dump(mode="json"))
    if reused := fingerprints.reuse(con, "snapshot", day, fp, force):
        return reused
    prepare(con, program)
    with transaction(con):
        # Platforms keyed by email (Yotpo) also reject a second row with the same email as a duplicate.
        email_is_key = adapter(program.source.platform).EMAIL_IS_KEY
        con.execute(sql("snapshot"), {"day": day, "negative_floor": program.negative_balance_floor})
        con.execute(sql("snapshot_duplicates"), {"email_is_key": email_is_key})
        con.execute(sql("activities"), {"day": day})
        con.execute("DELETE FROM quarantine WHERE snapshot_date = $day", {"day": day})
        members = replace_day(con, "snapshots", day, sql("snapshot_rows"))
        con.execute(f"INSERT INTO quarantine BY NAME {sql('quarantine_rows')}")
        con.execute(f"INSERT INTO quarantine BY NAME {sql('activity_quarantine_rows')}")
        activities = replace_day(con, "activities", day, sql("activity_rows"),
                                 {"default_reason": program.default_reason})
        reasons = dict(con.execute(
            "SELECT kind || ':' || reason, count(*) FROM quarantine WHERE snapshot_date = $day "
            "GROUP BY ALL ORDER BY ALL", {"day": day}).fetchall())
        flags = dict(con.execute(
            "SELECT flag, count(*) FROM (SELECT unnest(dq_flags) AS flag FROM snapshots "
            "WHERE snapshot_date = $day) GROUP BY ALL ORDER BY ALL", {"day": day}).fetchall())
        con.execute("DROP TABLE checked")
        con.execute("DROP TABLE checked_activities")
        quarantined = sum(n for k, n in reasons.items() if k.startswith("accounts:"))
        return fingerprints.record(con, "snapshot", day, fp, {
            "raw_rows": raw,
            "members": members,
            "enrolled": con.execute("SELECT count(*) FILTER (enrolled) FROM snapshots WHERE snapshot_date = $day",
                                    {"day": day}).fetchone()[0],
            "quarantined": quarantined,
            "quarantined_by_reason": reasons,
            "flags": flags,
            "activities": activities,
            "reconciles": raw == members + quarantined,
        })


def build_deltas(con: duckdb.DuckDBPyConnection, day: dt.date, force: bool = False) -> dict:
    """Compare the day's snapshot with the latest earlier one."""
    if count_day(con, "snapshots", day) + count_day(con, "quarantine", day) == 0:
        raise ExportError(f"no snapshot for {day}: materialize loyalty_snapshot for that day first")
    previous, gap = con.execute(
        "SELECT max(snapshot_date), date_diff('day', max(snapshot_date), $day) FROM snapshots "
        "WHERE snapshot_date < $day", {"day": day}).fetchone()
    # A member rejected on the previous day is compared with their last valid row before it (deltas.sql):
    # then the days before the previous one are read too.
    rejected_on_previous = previous is not None and con.execute(
        "SELECT count(*) > 0 FROM quarantine WHERE snapshot_date = $p AND kind = 'accounts'",
        {"p": previous}).fetchone()[0]
    fp = fingerprints.fingerprint("deltas", fingerprints.stored(con, "snapshot", day), previous,
                                  fingerprints.stored(con, "snapshot", previous),
                                  rejected_on_previous and fingerprints.history(con, "snapshot", previous))
    if reused := fingerprints.reuse(con, "deltas", day, fp, force):
        return reused
    install_macros(con)  # deltas.sql matches quarantined ids as validation normalises them
    with transaction(con):
        rows = replace_day(con, "account_deltas", day, sql("deltas"))
        kinds = dict(con.execute(
            "SELECT change_kind, count(*) FROM account_deltas WHERE snapshot_date = $day GROUP BY ALL",
            {"day": day}).fetchall())
        directions = dict(con.execute(
            "SELECT tier_direction, count(*) FROM account_deltas WHERE snapshot_date = $day "
            "AND tier_direction IS NOT NULL GROUP BY ALL", {"day": day}).fetchall())
        return fingerprints.record(con, "deltas", day, fp, {
            "rows": rows, "previous_snapshot_date": previous, "gap_days": gap, "baseline": previous is None,
            "by_kind": kinds, "tier_moves": directions})
