"""The canonical columns every platform's export is read into, and a file's headers mapped onto them.

Each reader yields the canonical columns as text, so a bad value reaches the ingest's parsing (and
quarantine) spelled exactly as the file had it: a readers.Relation for CSV and JSON Lines (the
ingest numbers their lines), SQL carrying its own source_line for Parquet.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import duckdb

from .encoding import text_shape, utf8_path
from .files import ExportError, ExportFile
from .readers import (
    Relation,
    blank_lines,
    csv_reader,
    csv_skipped_lines,
    json_reader,
    parquet_reader,
    quote_ident,
)

ACCOUNT_COLUMNS = [
    "customer_id", "email", "enrolled", "points_balance", "lifetime_points", "tier",
    "tier_since", "member_since", "next_expiry_date", "next_expiry_amount",
]
ACTIVITY_COLUMNS = ["customer_id", "occurred_at", "points", "reason"]


def header(file: ExportFile, encoding: str, path: Path | None = None) -> list[str] | None:
    """Column names as the file declares them (CSV header, first JSON record's keys, Parquet
    schema); None when it declares nothing: 0 bytes, or only blank lines.

    `path` is the file's UTF-8 view (see encoding.utf8_path), already checked; else made here.
    """
    if file.bytes == 0:
        return None
    path = path or utf8_path(file, encoding)
    if file.format == "parquet":
        return [row[0] for row in duckdb.sql(f"DESCRIBE SELECT * FROM {parquet_reader(path)}").fetchall()]
    if file.format == "jsonl":
        first = first_record(file, path)
        return None if first is None else list(first[1])
    # newline="": the csv module ends lines at LF, CRLF or a lone CR (an old Mac's export), as DuckDB does.
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = csv.reader(fh)
        try:
            names = next(rows, None)
            if names == [] and any(rows):
                raise ExportError(f"{file.path}: line 1 is blank; the header must be the first line")
        except csv.Error as exc:
            raise ExportError(f"{file.path}: line {rows.line_num}: {exc}; fix or re-export the file") from exc
    return [name.strip() for name in names] if names else None


def first_record(file: ExportFile, path: Path) -> tuple[int, dict] | None:
    """The first JSON Lines record: (its line, the object); None when there are only blank lines."""
    with path.open(encoding="utf-8-sig") as fh:
        number, line = next(((n, raw) for n, raw in enumerate(fh, 1) if raw.strip()), (0, ""))
    if not number:
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ExportError(f"{file.path}: line {number}: not a complete JSON object ({exc.msg})") from exc
    except RecursionError as exc:
        raise ExportError(f"{file.path}: line {number}: JSON nested too deeply to be a record; "
                          "fix or re-export the file") from exc
    if not isinstance(record, dict):
        raise ExportError(f"{file.path}: line {number}: a JSON {type(record).__name__}, not an object")
    return number, record


def resolve_columns(file: ExportFile, present: Sequence[str], columns: Sequence[str],
                    column_map: Mapping[str, str], known: Callable[[str], str | None] | None = None
                    ) -> dict[str, int]:
    """canonical column → position of the file's header holding it.

    An explicit `column_map` entry (header → column) wins over a header that merely carries the
    column's name; the headers it does not name are matched by `known` (default: the canonical
    name itself). Two headers for one column that the map does not settle (a duplicated header
    too) fail the day naming both.
    """
    known = known or (lambda name: name)
    mapped = {column_map[name] for name in present if name in column_map}
    candidates: dict[str, list[int]] = {}
    for position, name in enumerate(present):
        column = column_map.get(name) or known(name)
        if column in columns and (name in column_map or column not in mapped):
            candidates.setdefault(column, []).append(position)
    for column, positions in candidates.items():
        if len(positions) > 1:
            names = [present[p] for p in positions]
            where = ", ".join(str(p + 1) for p in positions)
            if len(set(names)) == 1:
                raise ExportError(f"{file.path}: header {names[0]!r} appears {len(names)} times (columns "
                                  f"{where}); keep one, or rename the others")
            settle = ("source.column_map maps each of them to it: keep one" if all(n in column_map for n in names)
                      else f"name the right one in source.column_map (header: {column})")
            raise ExportError(f"{file.path}: headers {', '.join(map(repr, names))} could all be {column} "
                              f"(columns {where}): {settle}")
    return {column: positions[0] for column, positions in candidates.items()}


def _missing_columns(file: ExportFile, missing: list[str], present: Sequence[str]) -> str:
    return f"{file.path}: missing required column(s) {', '.join(missing)}; found {', '.join(present) or 'none'}"


def relation_sql(file: ExportFile, columns: list[str], required: list[str], encoding: str,
                 column_map: Mapping[str, str] | None = None, *, known: Callable[[str], str | None] | None = None,
                 missing: Callable[[ExportFile, list[str], Sequence[str]], str] = _missing_columns,
                 optional: bool = False) -> Relation | str:
    """The file as every canonical column in VARCHAR (NULL when absent), one row per record: a
    Relation, or for Parquet SQL that carries its own source_line. Plus `absent`, NULL: a header
    names a column for the whole file (JSON Lines platforms judge presence per record, jsonl.py).

    Headers are matched to columns by resolve_columns (`column_map`, `known`); `missing` words the
    failure when a required one has no header. An `optional` file that declares nothing (0 bytes,
    only blank lines) is an empty relation.
    """
    utf8 = utf8_path(file, encoding)
    present = header(file, encoding, utf8)
    if present is None:
        if optional:
            nothing = ", ".join(f"NULL::VARCHAR AS {c}" for c in [*columns, "absent"])
            return Relation(f"SELECT {nothing} WHERE false", 1)
        if file.format == "jsonl" and file.bytes:
            raise ExportError(f"{file.path}: no JSON record, only blank lines; a full export is never empty")
        raise ExportError(f"{file.path}: the file is empty (no header, no rows)")
    where = resolve_columns(file, present, columns, column_map or {}, known)
    if absent := [c for c in required if c not in where]:
        raise ExportError(missing(file, absent, present))
    # CSV columns go by csv_reader's positional names; JSON keys and Parquet columns by their own.
    source = {c: f"c{p}" if file.format == "csv" else present[p] for c, p in where.items()}
    select = ", ".join(
        f"CAST({quote_ident(source[c])} AS VARCHAR) AS {c}" if c in source else f"NULL::VARCHAR AS {c}"
        for c in columns
    ) + ", NULL::VARCHAR AS absent"
    if file.format == "parquet":
        # No lines: a record's number is its 1-based row, which the reader gives (no copy needed).
        return f"SELECT file_row_number + 1 AS source_line, {select} FROM {parquet_reader(utf8, row_numbers=True)}"
    shape = text_shape(file, encoding)
    longest = shape.longest_line
    if file.format == "csv":  # the header is line 1
        skipped = csv_skipped_lines(utf8, longest) if shape.quotes or shape.blank_lines else None
        return Relation(f"SELECT {select} FROM {csv_reader(utf8, len(present), longest)}", 2, skipped)
    skipped = blank_lines(utf8, longest) if shape.blank_lines else None
    return Relation(f"SELECT {select} FROM {json_reader(utf8, list(source.values()), longest)}", 1, skipped)
