"""The daily steps, set-based in DuckDB: ingest → snapshot → deltas.

Each step replaces its own day in one transaction, so a failed step leaves the previous state of
that day untouched, and records what it was built from (fingerprints.py): re-running a day whose
inputs did not change reuses it. Dagster assets call these functions; so do the benchmark and tests.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb

from ..program import Program
from ..sources import ExportError, ExportFile, adapter, find_export
from ..sources.readers import Relation
from . import fingerprints
from .connection import count_day, replace_day, sql, transaction


def prepare(con: duckdb.DuckDBPyConnection, program: Program) -> None:
    """Per-connection setup: UTC session, parsing macros, and the program's tier names."""
    con.execute("SET TimeZone = 'UTC'")
    con.execute(sql("macros"))
    con.execute("CREATE OR REPLACE TEMP TABLE tier_aliases (alias VARCHAR, tier VARCHAR, rank INTEGER)")
    con.executemany("INSERT INTO tier_aliases VALUES (?, ?, ?)", program.tier_alias_rows())
    # The program's tiers as configured: name, rank, threshold (on program.tier_basis), benefits.
    con.execute("CREATE OR REPLACE TEMP TABLE tiers "
                "(name VARCHAR, rank INTEGER, threshold BIGINT, benefits VARCHAR[])")
    con.executemany("INSERT INTO tiers VALUES (?, ?, ?, ?)",
                    [(t.name, t.rank, t.threshold, list(t.benefits)) for t in program.ordered_tiers()])


def _duckdb_reason(exc: duckdb.Error) -> str:
    """The useful head of a DuckDB reader error (it appends pages of 'possible fixes')."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    head = []
    for ln in lines:
        if ln.startswith(("Possible", "*", "file =")):
            break
        ln = re.sub(r"^(Invalid Input Error|Conversion Error|IO Error):\s*", "", ln)
        head.append(re.sub(r"CSV Error on Line: (\d+)", r"line \1", ln))
    return "; ".join(head)[:500]


def ingest_export(con: duckdb.DuckDBPyConnection, exports_dir: Path, day: dt.date, program: Program,
                  force: bool = False) -> dict:
    """Read the day's files into raw_accounts / raw_activities with their lineage."""
    source = adapter(program.source.platform)
    files = {
        "accounts": find_export(exports_dir, day, program.source.accounts_file, required=True),
        "activities": find_export(exports_dir, day, program.source.activities_file, required=False),
    }
    fp = fingerprints.fingerprint("ingest", program.source.model_dump(mode="json"),
                                  {kind: file and [str(file.path), file.sha256] for kind, file in files.items()})
    if reused := fingerprints.reuse(con, "ingest", day, fp, force):
        return reused
    readers = {"accounts": (source.accounts_sql, "raw_accounts"),
               "activities": (source.activities_sql, "raw_activities")}
    stats: dict = {}
    try:
        # Read each file first (into temp tables: see _read), then replace the day in one transaction.
        reads = {kind: _read(con, kind, file, readers[kind][0](file, program.source.encoding,
                                                               column_map=program.source.column_map))
                 for kind, file in files.items() if file is not None}
        with transaction(con):
            con.execute("DELETE FROM export_files WHERE snapshot_date = $day", {"day": day})
            for _, table in readers.values():
                con.execute(f"DELETE FROM {table} WHERE snapshot_date = $day", {"day": day})
            for kind, (records, params) in reads.items():
                file, table = files[kind], readers[kind][1]
                try:
                    rows = replace_day(
                        con, table, day,
                        f"SELECT $day AS snapshot_date, $file AS source_file, * FROM ({records})",
                        {"file": str(file.path), **params},
                    )
                except duckdb.Error as exc:
                    raise ExportError(f"{file.path}: {_duckdb_reason(exc)}") from exc
                if kind == "accounts" and rows == 0:
                    raise ExportError(f"{file.path}: a header but no rows; a full export is never empty")
                con.execute(
                    "INSERT INTO export_files VALUES ($day, $kind, $path, $format, $sha, $bytes, $rows)",
                    {"day": day, "kind": kind, "path": str(file.path), "format": file.format,
                     "sha": file.sha256, "bytes": file.bytes, "rows": rows},
                )
                stats[kind] = {"path": str(file.path), "sha256": file.sha256, "rows": rows, "format": file.format}
            return fingerprints.record(con, "ingest", day, fp, stats)
    finally:
        for kind in readers:
            con.execute(f"DROP TABLE IF EXISTS read_{kind}; DROP TABLE IF EXISTS read_{kind}_skipped")


def _read(con: duckdb.DuckDBPyConnection, kind: str, file: ExportFile, relation: str | Relation
          ) -> tuple[str, dict]:
    """Read `file` ahead of the day's transaction; SQL yielding `source_line` + its columns, and
    its parameters.

    A Relation is read once into an insertion-ordered temp table `read_<kind>`, whose rowid is the
    record's index (outside a transaction: inside one, new rows get provisional rowids); its line
    is that index shifted by the lines that start no record before it (readers.Relation), found
    without a row_number() window, which would serialise the scan. SQL text carries its own
    source_line and is read when inserted.
    """
    if isinstance(relation, str):
        return relation, {}
    records, skipped = f"read_{kind}", f"read_{kind}_skipped"
    try:
        con.execute("SET preserve_insertion_order = true")  # rowid = the record's place in the file
        con.execute(f"CREATE OR REPLACE TEMP TABLE {records} AS {relation.records}")
        if relation.skipped is not None:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {skipped} AS {relation.skipped}")
            if con.execute(f"SELECT count(*) FROM {skipped}").fetchone()[0]:
                return (sql("numbered_records").format(records=records, skipped=skipped),
                        {"first_line": relation.first_line})
    except duckdb.Error as exc:
        raise ExportError(f"{file.path}: {_duckdb_reason(exc)}") from exc
    # Every line starts a record.
    return f"SELECT rowid + $first_line AS source_line, * FROM {records}", {"first_line": relation.first_line}


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
        email_is_key = getattr(adapter(program.source.platform), "EMAIL_IS_KEY", False)
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
    con.execute(sql("macros"))  # deltas.sql matches quarantined ids as validation normalises them
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
