"""The ingest step: the day's export files into raw_accounts / raw_activities, with their lineage.

Each value is parsed in the pass that reads the file (sql/typed_*.sql): the raw tables hold typed
values, and the text as written only of the values refused (they are few), in `problems`.
It replaces its day in one transaction, so a failed ingest leaves the previous state of that day
untouched, and records what it was built from (warehouse/fingerprints.py): re-running a day whose
files did not change reuses it. The asset (assets.py) calls it; so do the benchmark and tests.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb

from ..program import Program
from ..warehouse import fingerprints
from ..warehouse.connection import prepare, replace_day, sql_files, transaction
from .files import ExportError, ExportFile, find_export
from .platforms import adapter
from .readers import Relation

sql = sql_files(__package__)


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
    prepare(con, program)  # the parsers, in UTC (a timestamp's date is the same in every session)
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
    """Read `file` ahead of the day's transaction; SQL yielding `source_line` + its typed columns and
    problems (sql/typed_<kind>.sql), and its parameters.

    A Relation is read and parsed once into an insertion-ordered temp table `read_<kind>`, whose rowid
    is the record's index (outside a transaction: inside one, new rows get provisional rowids); its
    line is that index shifted by the lines that start no record before it (readers.Relation), found
    without a row_number() window, which would serialise the scan. SQL text carries its own
    source_line and is read and parsed when inserted.
    """
    typed = sql(f"typed_{kind}")
    if isinstance(relation, str):
        return typed.format(records=relation), {}
    records, skipped = f"read_{kind}", f"read_{kind}_skipped"
    params = {"first_line": relation.first_line}
    numbered = f"SELECT rowid + $first_line AS source_line, * FROM {records}"  # every line starts a record
    try:
        con.execute("SET preserve_insertion_order = true")  # rowid = the record's place in the file
        con.execute(f"CREATE OR REPLACE TEMP TABLE {records} AS {typed.format(records=relation.records)}")
        if relation.skipped is not None:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {skipped} AS {relation.skipped}")
            if con.execute(f"SELECT count(*) FROM {skipped}").fetchone()[0]:
                numbered = sql("numbered_records").format(records=records, skipped=skipped)
        if relation.refuses:
            refused = con.execute(f"SELECT source_line, refused FROM ({numbered}) WHERE refused IS NOT NULL "
                                  "ORDER BY source_line LIMIT 1", params).fetchone()
            numbered = f"SELECT * EXCLUDE (refused) FROM ({numbered})"
    except duckdb.Error as exc:
        raise ExportError(f"{file.path}: {_duckdb_reason(exc)}") from exc
    if relation.refuses and refused:
        raise ExportError(f"{file.path}: line {refused[0]}: {refused[1]}")
    return numbered, params
