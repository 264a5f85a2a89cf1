"""The canonical export: our own column names, in CSV, Parquet or JSON Lines.

Each reader returns SQL that yields the canonical columns as text plus `source_line`, so a bad
value reaches validation (and quarantine) spelled exactly as the file had it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from pathlib import Path

import duckdb

from .encoding import utf8_path
from .files import ExportError, ExportFile

ACCOUNT_COLUMNS = [
    "customer_id", "email", "enrolled", "points_balance", "lifetime_points", "tier",
    "tier_since", "member_since", "next_expiry_date", "next_expiry_amount",
]
REQUIRED_ACCOUNT_COLUMNS = ["customer_id", "enrolled", "points_balance", "lifetime_points", "tier"]
ACTIVITY_COLUMNS = ["customer_id", "occurred_at", "points", "reason"]
REQUIRED_ACTIVITY_COLUMNS = ["customer_id", "points"]


def quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def header(file: ExportFile, encoding: str, path: Path | None = None) -> list[str]:
    """Column names as the file declares them (CSV header, first JSON object, Parquet schema).

    `path` is the file's UTF-8 view (see encoding.utf8_path), already checked; else decoded here.
    """
    if file.bytes == 0:
        raise ExportError(f"{file.path}: the file is empty (no header, no rows)")
    if file.format == "parquet":
        rel = duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet({quote(str(file.path))})")
        return [row[0] for row in rel.fetchall()]
    with (path or utf8_path(file, encoding)).open("rb") as fh:
        text = fh.readline().decode("utf-8-sig")
    if file.format == "csv":
        return [name.strip() for name in next(csv.reader(io.StringIO(text)), [])]
    try:
        return list(json.loads(text))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ExportError(f"{file.path}: line 1: not a JSON object ({exc})") from exc


def check_columns(file: ExportFile, present: list[str], required: list[str]) -> None:
    missing = [c for c in required if c not in present]
    if missing:
        raise ExportError(
            f"{file.path}: missing required column(s) {', '.join(missing)}; found {', '.join(present) or 'none'}"
        )


def relation_sql(file: ExportFile, columns: list[str], required: list[str], encoding: str,
                 column_map: Mapping[str, str] | None = None) -> str:
    """SQL over the file: every canonical column as VARCHAR (NULL when absent) + source_line.

    `column_map` renames the file's headers (keys) to canonical names (values) first.
    """
    utf8 = utf8_path(file, encoding)
    present = header(file, encoding, utf8)
    source = {column_map.get(name, name) if column_map else name: name for name in reversed(present)}
    check_columns(file, list(source), required)
    path = quote(str(utf8))
    if file.format == "csv":
        # Explicit dialect: auto-detection turns a truncated file into a one-column "success".
        types = ", ".join(f"{quote(c)}: 'VARCHAR'" for c in present)
        reader = (
            f"read_csv({path}, columns={{{types}}}, header=true, auto_detect=false, delim=',', "
            f"quote='\"', escape='\"', strict_mode=true, encoding='utf-8')"
        )
        line = "row_number() OVER () + 1"  # header is line 1; insertion order is file order
    elif file.format == "jsonl":
        types = ", ".join(f"{quote(source[c])}: 'VARCHAR'" for c in columns if c in source)
        reader = f"read_json({path}, format='newline_delimited', columns={{{types}}})"
        line = "row_number() OVER ()"
    else:
        # Parquet has no lines: the 1-based row number, from the reader (a window over the whole
        # file would serialise the scan and double the ingest time).
        reader = f"read_parquet({path}, file_row_number=true)"
        line = "file_row_number + 1"
    select = ", ".join(
        f"CAST({quote_ident(source[c])} AS VARCHAR) AS {c}" if c in source else f"NULL::VARCHAR AS {c}"
        for c in columns
    )
    return f"SELECT {line} AS source_line, {select} FROM {reader}"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def accounts_sql(file: ExportFile, encoding: str, column_map: Mapping[str, str] | None = None) -> str:
    return relation_sql(file, ACCOUNT_COLUMNS, REQUIRED_ACCOUNT_COLUMNS, encoding, column_map)


def activities_sql(file: ExportFile, encoding: str, column_map: Mapping[str, str] | None = None) -> str:
    if file.bytes == 0 and file.format == "jsonl":  # no header to write: a day without movements is empty
        nulls = ", ".join(f"NULL::VARCHAR AS {c}" for c in ACTIVITY_COLUMNS)
        return f"SELECT NULL::BIGINT AS source_line, {nulls} WHERE false"
    return relation_sql(file, ACTIVITY_COLUMNS, REQUIRED_ACTIVITY_COLUMNS, encoding, column_map)
