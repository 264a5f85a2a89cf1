"""JSON Lines exports of the platforms' API objects, read as SQL.

The file is read as lines (DuckDB's CSV reader with a delimiter that valid JSON never contains raw), and
a UTF-8 BOM is skipped. The records are a readers.Relation: the ingest numbers them like a CSV file's
(an insertion-ordered copy, shifted by the blank lines), so `source_line` is the true line number,
blank lines included, and no window serialises the scan. Each record is parsed once (`json_extract`
with a list of paths); every line must be a complete JSON object or the day fails naming the line (a
truncated last line is the usual case: the Relation's `refused`). Values reach the ingest's parsing as
text: a string as written, a number as the number, JSON null as NULL, an object or array as its JSON.

Adapters describe a record as `paths` (name → JSON path) and build canonical columns from the SQL
helpers below. Presence is judged per record, never on the first one alone: `required` maps canonical
columns to the source keys that carry them (a dotted key path, or alternatives of which one is enough).
A record that lacks one gets the canonical column in `absent`, and validation quarantines that row
(`missing_field`); the customer id's keys are the exception, their absence is the row's `missing_id`.
Only a key that no record of the file has fails the day: then the file is not this export (or the
extraction left out a join), which no single row can be blamed for. A key present with a JSON null is
present (the value is null); a key path through a null parent is absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import duckdb

from .columns import first_record
from .encoding import text_shape, utf8_path
from .files import ExportError, ExportFile
from .readers import Relation, lines_reader, quote, quote_ident

_INTEGER = "'[+-]?[0-9]{1,18}'"

Required = str | tuple[str, ...]  # a dotted key path, or alternatives of which one must be present


def records_sql(file: ExportFile, encoding: str, *, paths: Mapping[str, str], required: Mapping[str, Required],
                select: Mapping[str, str], hints: Mapping[str, str] | None = None) -> Relation:
    """The records: `select` (canonical column → SQL expression over the `paths` names) + `absent` (the
    canonical columns whose `required` keys the record lacks, comma-separated; NULL when none).

    `hints` (canonical column → text) completes the message of a key that no record has."""
    if file.format != "jsonl":
        raise ExportError(f"{file.path}: this platform's export is JSON Lines (.jsonl), not {file.format}")
    path = utf8_path(file, encoding)
    check_first_record(file, path)
    shape = text_shape(file, encoding)
    alternatives = {column: _keys(keys) for column, keys in required.items()}
    check_presence(file, path, alternatives, hints or {}, shape.longest_line)
    probes = {f"present:{key}": _json_path(key) for keys in alternatives.values() for key in keys}
    extract = {**paths, **probes}
    names = list(extract)
    extracted = ", ".join(f"v[{i}] AS {quote_ident(name)}" for i, name in enumerate(names, 1))
    columns = ", ".join(f"{expr} AS {quote_ident(col)}" for col, expr in select.items())
    lacking = ", ".join(f"CASE WHEN {_lacks(keys)} THEN {quote(column)} END"
                        for column, keys in alternatives.items() if column != "customer_id")
    absent = f"nullif(concat_ws(',', {lacking}), '')" if lacking else "NULL::VARCHAR"
    records = f"""
        WITH records AS (
            SELECT CASE WHEN whole THEN json_extract(line, [{", ".join(quote(extract[n]) for n in names)}]) END AS v,
                   CASE WHEN NOT whole THEN {quote(_MALFORMED)} END AS refused
            FROM (SELECT line, starts_with(ltrim(line), '{{') AND json_valid(line) AS whole
                  FROM {lines_reader(path, shape.longest_line)} WHERE trim(line) <> '')
        ), fields AS (
            SELECT refused, {extracted} FROM records
        )
        SELECT {columns}, {absent} AS absent, refused FROM fields"""
    # The lines the records skip: empty ones, and those of spaces only.
    skipped = (f"SELECT ordinality AS line, 1 AS lines FROM {lines_reader(path, shape.longest_line)} "
               "WITH ORDINALITY WHERE line IS NULL OR trim(line) = '' ORDER BY line") if shape.blank_lines else None
    return Relation(records, 1, skipped, refuses=True)


_MALFORMED = "not a complete JSON object (truncated or malformed); fix or re-export the file"


def check_first_record(file: ExportFile, path: Path) -> None:
    """Fail the day when the file has no record, or does not start with a JSON object: not an export."""
    if file.bytes == 0:
        raise ExportError(f"{file.path}: the file is empty (no records)")
    if first_record(file, path) is None:  # fails naming the line when it is not a JSON object
        raise ExportError(f"{file.path}: no JSON record, only blank lines; a full export is never empty")


def check_presence(file: ExportFile, path: Path, required: Mapping[str, tuple[str, ...]],
                   hints: Mapping[str, str], longest: int) -> None:
    """Fail the day for a required key that no record of the file has.

    One probe per key group, each stopping at the first record that has it: on a well-formed export
    this reads the first rows only; the whole file is read only to report what is missing."""
    groups = list(required.items())
    probes = " UNION ALL ".join(
        f"(SELECT {i} AS g FROM {lines_reader(path, longest)} WHERE json_valid(line) AND "
        f"({' OR '.join(f'json_extract(line, {quote(_json_path(k))}) IS NOT NULL' for k in keys)}) LIMIT 1)"
        for i, (_, keys) in enumerate(groups))
    found = {g for (g,) in duckdb.sql(probes).fetchall()}
    missing = [(column, keys) for i, (column, keys) in enumerate(groups) if i not in found]
    if missing:
        named = "; ".join(f"{' or '.join(keys)} ({column}){': ' + hints[column] if column in hints else ''}"
                          for column, keys in missing)
        raise ExportError(f"{file.path}: no record has {named}: not this platform's export, or an incomplete "
                          "extraction; fix or re-export the file")


def _lacks(keys: tuple[str, ...]) -> str:
    """SQL: the record has none of `keys` (over the `present:<key>` probes of records_sql)."""
    return " AND ".join(f"{quote_ident('present:' + key)} IS NULL" for key in keys)


def _keys(keys: Required) -> tuple[str, ...]:
    return keys if isinstance(keys, tuple) else (keys,)


def _json_path(dotted: str) -> str:
    return f"$.{dotted}"


# -- SQL helpers over extracted JSON values (NULL when the key is absent) -------------------------------

def text(name: str) -> str:
    """The value as text: a string unquoted, a number or boolean as written, JSON null as NULL."""
    v = quote_ident(name)
    return f"(CASE json_type({v}) WHEN 'NULL' THEN NULL WHEN 'VARCHAR' THEN {v} ->> '$' ELSE {v}::VARCHAR END)"


def id_text(name: str) -> str:
    """An id as text. An id that arrived as a floating-point number lost digits: it is written in
    scientific notation (1.2345e+12) so that validation quarantines it instead of trusting it."""
    v = quote_ident(name)
    return (f"(CASE WHEN json_type({v}) = 'DOUBLE' "
            f"THEN regexp_replace(printf('%.15e', {v}::DOUBLE), '\\.?0+e', 'e') ELSE {text(name)} END)")


def flag_text(name: str, null_is: str = "false") -> str:
    """A platform flag: JSON null means false (the 1/null convention); an absent key stays NULL."""
    v = quote_ident(name)
    return f"(CASE WHEN json_type({v}) = 'NULL' THEN {quote(null_is)} ELSE {text(name)} END)"


def first_text(*expressions: str) -> str:
    """The first non-NULL of several text expressions (a field the API and webhooks spell differently)."""
    return f"coalesce({', '.join(expressions)})"


def is_integer(expression: str) -> str:
    return f"regexp_full_match(trim({expression}), {_INTEGER})"


def integer_sum(parts: Mapping[str, str]) -> str:
    """The sum of integer fields as text; else `field=value` of the first invalid part, so quarantine
    shows which source field was wrong (e.g. `points_pending=12a`, `points_spent=null`)."""
    total = " + ".join(f"CAST(trim({expr}) AS BIGINT)" for expr in parts.values())
    invalid = " ".join(
        f"WHEN NOT coalesce({is_integer(expr)}, false) "
        f"THEN {quote(field + '=')} || coalesce({expr}, 'null')"
        for field, expr in parts.items()
    )
    return f"(CASE {invalid} ELSE CAST({total} AS VARCHAR) END)"


def parse_bool(expression: str) -> str:
    """SQL boolean of a text flag, NULL when it is not one (same words as macros.sql parse_bool)."""
    e = f"lower(trim({expression}))"
    return (f"(CASE WHEN {e} IN ('true', 't', '1', 'yes', 'y') THEN true "
            f"WHEN {e} IN ('false', 'f', '0', 'no', 'n') THEN false END)")
