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
from ..warehouse.connection import (
    count_day,
    install_macros,
    latest_earlier_day,
    prepare,
    replace_day,
    sql_files,
    transaction,
)

sql = sql_files(__package__)


def build_snapshot(con: duckdb.DuckDBPyConnection, day: dt.date, program: Program, force: bool = False) -> dict:
    """Judge the day's raw rows into snapshots; every rejected row goes to quarantine with its reasons.

    The ingest parsed each value and noted what a row alone is refused for; here the program's tiers
    reject a few more (sql/rejected.sql), everything else is written to the snapshot, and the
    duplicates across rows are moved out of it (snapshot_duplicates.sql) when the day's figures show
    any: counting the distinct customers is needed for the checks anyway, and finds that most days
    have none. The figures the checks of loyalty_snapshot judge are recorded with the day (figures()),
    so the checks read them instead of scanning the day again.
    """
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
        con.execute(sql("rejected"), {"day": day})
        replace_day(con, "snapshots", day, sql("snapshot_rows"), {"negative_floor": program.negative_balance_floor})
        counted = _count_members(con, day, email_is_key)
        if counted["members"] > counted["customers"] or counted["emails"] > counted["distinct_emails"]:
            con.execute(sql("snapshot_duplicates"), {"day": day, "email_is_key": email_is_key})
            con.execute("DELETE FROM snapshots WHERE snapshot_date = $day AND source_line IN (SELECT source_line "
                        "FROM rejected WHERE problems[1].reason = 'duplicate_member')", {"day": day})
            counted = _count_members(con, day, email_is_key)
        con.execute("DELETE FROM quarantine WHERE snapshot_date = $day", {"day": day})
        con.execute(f"INSERT INTO quarantine BY NAME {sql('quarantine_rows')}", {"day": day})
        con.execute(f"INSERT INTO quarantine BY NAME {sql('activity_quarantine_rows')}", {"day": day})
        activities = replace_day(con, "activities", day, sql("activity_rows"),
                                 {"default_reason": program.default_reason})
        con.execute("DROP TABLE rejected")
        day_figures = figures(con, day, counted)
        return fingerprints.record(con, "snapshot", day, fp, {
            "raw_rows": raw,
            **day_figures,
            "activities": activities,
            "reconciles": raw == day_figures["members"] + day_figures["quarantined"],
        })


def _count_members(con: duckdb.DuckDBPyConnection, day: dt.date, email_is_key: bool = False) -> dict:
    """The day's snapshot rows, distinct customers, enrolled members, rows whose tier is not one of the
    program's (temp table tiers); where the email is the key, emails and distinct emails (else 0).
    The emails are counted only then: DuckDB computes an aggregate even under a CASE that discards it,
    and counting a million distinct emails doubles the statement."""
    emails = "count(email), count(DISTINCT email)" if email_is_key else "0, 0"
    row = con.execute(
        "SELECT count(*), count(DISTINCT customer_id), count(*) FILTER (enrolled), "
        f"count(*) FILTER (tier IS NOT NULL AND tier NOT IN (SELECT name FROM tiers)), {emails} "
        "FROM snapshots WHERE snapshot_date = $day", {"day": day}).fetchone()
    return dict(zip(("members", "customers", "enrolled", "foreign_tiers", "emails", "distinct_emails"), row,
                    strict=True))


# What figures() adds to the snapshot's stats; a day recorded without them is counted again.
FIGURES = ("members", "customers", "enrolled", "quarantined", "quarantined_by_reason", "flags", "foreign_tiers",
           "unknown_tiers")
_SPELLINGS = 20  # unknown tier spellings kept with their rows (the most frequent), for ops to alias


def figures(con: duckdb.DuckDBPyConnection, day: dt.date, counted: dict | None = None) -> dict:
    """The day's snapshot and quarantine in numbers: members and distinct customers, enrolled members,
    quarantined rows by reason, flags, snapshot rows whose tier is not one of the program's (temp table
    tiers), and the unknown tier spellings as the export wrote them, most rows first. `counted`: the
    members' counts (_count_members) when the caller has them."""
    counted = counted or _count_members(con, day)
    reasons = dict(con.execute(
        "SELECT kind || ':' || reason, count(*) FROM quarantine WHERE snapshot_date = $day "
        "GROUP BY ALL ORDER BY ALL", {"day": day}).fetchall())
    flags = dict(con.execute(
        "SELECT flag, count(*) FROM (SELECT unnest(dq_flags) AS flag FROM snapshots "
        "WHERE snapshot_date = $day AND len(dq_flags) > 0) GROUP BY ALL ORDER BY ALL", {"day": day}).fetchall())
    spellings = con.execute(sql("unknown_tier_spellings"), {"day": day}).fetchall()
    return {
        "members": counted["members"],
        "customers": counted["customers"],
        "enrolled": counted["enrolled"],
        "quarantined": sum(n for k, n in reasons.items() if k.startswith("accounts:")),
        "quarantined_by_reason": reasons,
        "flags": flags,
        "foreign_tiers": counted["foreign_tiers"],
        "unknown_tiers": {"rows": sum(n for _, n in spellings), "spellings": len(spellings),
                          "top": [[tier, n] for tier, n in spellings[:_SPELLINGS]]},
    }


def snapshot_figures(con: duckdb.DuckDBPyConnection, day: dt.date) -> dict:
    """What the checks of loyalty_snapshot judge for `day` (raw_rows and figures()): as the snapshot step
    recorded them, or counted now for a day built before they were recorded. Needs temp table tiers."""
    stats = fingerprints.recorded(con, "snapshot", day) or {}
    if not all(key in stats for key in ("raw_rows", *FIGURES)):
        stats = {"raw_rows": count_day(con, "raw_accounts", day), **stats, **figures(con, day)}
    return stats


def build_deltas(con: duckdb.DuckDBPyConnection, day: dt.date, force: bool = False) -> dict:
    """Compare the day's snapshot with the latest earlier one."""
    if count_day(con, "snapshots", day) + count_day(con, "quarantine", day) == 0:
        raise ExportError(f"no snapshot for {day}: materialize loyalty_snapshot for that day first")
    previous = latest_earlier_day(con, "snapshots", day)
    gap = (day - previous).days if previous else None
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
        rows = replace_day(con, "account_deltas", day, sql("deltas"), {"previous": previous})
        kinds = dict(con.execute(
            "SELECT change_kind, count(*) FROM account_deltas WHERE snapshot_date = $day GROUP BY ALL",
            {"day": day}).fetchall())
        directions = dict(con.execute(
            "SELECT tier_direction, count(*) FROM account_deltas WHERE snapshot_date = $day "
            "AND tier_direction IS NOT NULL GROUP BY ALL", {"day": day}).fetchall())
        return fingerprints.record(con, "deltas", day, fp, {
            "rows": rows, "previous_snapshot_date": previous, "gap_days": gap, "baseline": previous is None,
            "by_kind": kinds, "tier_moves": directions})
