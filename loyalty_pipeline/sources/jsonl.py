"""JSON Lines exports of the platforms' API objects, read as SQL.

The file is read as lines (DuckDB's CSV reader with a delimiter that valid JSON never contains raw), so
`source_line` is the true line number, blank lines included, and a UTF-8 BOM is skipped. Each record
is parsed once (`json_extract` with a list of paths); every line must be a complete JSON object or the
query fails naming the line (a truncated last line is the usual case). Values reach validation as text:
a string as written, a number as the number, JSON null as NULL, an object or array as its JSON.

Adapters describe a record as `paths` (name → JSON path) and build canonical columns from the SQL
helpers below. The platform's own field names are kept in those names, so a required key missing from
the first record fails the day naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from .canonical import first_record, quote, quote_ident
from .encoding import utf8_path
from .files import ExportError, ExportFile
from .readers import lines_reader

_INTEGER = "'[+-]?[0-9]{1,18}'"

Required = str | tuple[str, ...]  # a dotted key path, or alternatives of which one must be present


def records_sql(file: ExportFile, encoding: str, *, paths: Mapping[str, str],
                required: Sequence[Required], select: Mapping[str, str]) -> str:
    """SQL: `source_line` + `select` (canonical column → SQL expression over the `paths` names)."""
    if file.format != "jsonl":
        raise ExportError(f"{file.path}: this platform's export is JSON Lines (.jsonl), not {file.format}")
    path = utf8_path(file, encoding)
    check_first_record(file, path, required)
    names = list(paths)
    extracted = ", ".join(f"v[{i}] AS {quote_ident(name)}" for i, name in enumerate(names, 1))
    columns = ", ".join(f"{expr} AS {quote_ident(col)}" for col, expr in select.items())
    malformed = ("'line ' || source_line || ': not a complete JSON object (truncated or malformed); "
                 "fix or re-export the file'")
    return f"""
        WITH lines AS (
            SELECT row_number() OVER () AS source_line, line FROM {lines_reader(path)}
        ), records AS (
            SELECT source_line,
                   CASE WHEN starts_with(ltrim(line), '{{') AND json_valid(line)
                        THEN json_extract(line, [{", ".join(quote(paths[n]) for n in names)}])
                        ELSE error({malformed}) END AS v
            FROM lines
            WHERE trim(line) <> ''
        ), fields AS (
            SELECT source_line, {extracted} FROM records
        )
        SELECT source_line, {columns} FROM fields"""


def check_first_record(file: ExportFile, path: Path, required: Sequence[Required]) -> None:
    """Fail the day when the first record lacks a required key: the export has the wrong shape."""
    if file.bytes == 0:
        raise ExportError(f"{file.path}: the file is empty (no records)")
    if (first := first_record(file, path)) is None:
        raise ExportError(f"{file.path}: no JSON record, only blank lines; a full export is never empty")
    number, record = first
    missing = [" or ".join(r) if isinstance(r, tuple) else r for r in required
               if not any(_has(record, key) for key in (r if isinstance(r, tuple) else (r,)))]
    if missing:
        raise ExportError(
            f"{file.path}: line {number}: missing required field(s) {', '.join(missing)}; "
            f"found {', '.join(record) or 'none'}"
        )


def _has(record: dict, dotted: str) -> bool:
    """The key path exists; a null parent counts (a nullable object such as a tier membership)."""
    node = record
    for key in dotted.split("."):
        if node is None:
            return True
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


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
