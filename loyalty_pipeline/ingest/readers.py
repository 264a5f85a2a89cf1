"""DuckDB's table functions over one export file, spelled in one place.

Paths are data. DuckDB expands `*`, `?` and `[…]` in any path it reads (a folder `ex*` next to
`exfoo` reads both) and has no option to turn that off, so every path given to it here is a plain
one: encoding.utf8_path returns the file itself when its path is plain, else a private alias of it
(a symlink with a plain name). `literal` refuses anything else, and quotes what it accepts.

A line may be up to MAX_LINE_BYTES long: encoding.py refuses a longer one (naming file and line)
before DuckDB reads the file, and measures how long the file's longest line can be; the readers are
told that (line_limit), so they never meet a line they cannot hold and keep their buffers small:
DuckDB's CSV reader sizes its buffers from the limit, and a file of a few buffers is read by one
thread (1M members, 95 MB: 0.21 s with a 64 MB limit, 0.09 s with the 2 MB default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MAX_LINE_BYTES = 64 << 20  # a record's line; DuckDB's own defaults (2 MB CSV, 16 MB JSON) are lower
_DUCKDB_DEFAULT = 2 << 20  # the CSV reader's max_line_size when none is given
_SLACK = 1024  # DuckDB counts a line's end (and a BOM) in its limit; encoding.py does not
_PLAIN = re.compile(r"[\w ./@%+=,-]+", re.ASCII)  # no glob character, no '~', no URL scheme
_UNIT_SEPARATOR = "\x01"  # a raw control character cannot occur in valid JSON (RFC 8259 §7)


def quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def is_plain(path: Path) -> bool:
    """DuckDB reads this path as the one file it names (nothing in it expands)."""
    return bool(_PLAIN.fullmatch(str(path)))


def literal(path: Path) -> str:
    """`path` as a SQL string for a reader; a path DuckDB would expand is a bug, not an input."""
    if not is_plain(path):
        raise ValueError(f"{path}: not a plain path; read it through encoding.utf8_path")
    return quote(str(path))


def line_limit(longest: int) -> int:
    """The limit a reader is given for a file whose lines have at most `longest` bytes
    (encoding.TextShape.longest_line): that, at least DuckDB's default, plus room for the line end."""
    return max(longest, _DUCKDB_DEFAULT) + _SLACK


def csv_reader(path: Path, columns: int, longest: int) -> str:
    """The file's records after its header, as VARCHAR columns c0, c1…, in file order.

    Positional names: the header's own names never reach DuckDB (two headers that differ only in
    case, or an empty one, would not bind); columns.resolve_columns picks the columns.
    Explicit dialect: auto-detection turns a truncated file into a one-column "success".
    """
    types = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(columns))
    return (f"read_csv({literal(path)}, columns={{{types}}}, header=true, auto_detect=false, "
            f"delim=',', quote='\"', escape='\"', strict_mode=true, encoding='utf-8', "
            f"max_line_size={line_limit(longest)})")


def lines_reader(path: Path, longest: int = MAX_LINE_BYTES) -> str:
    """The file's physical lines (`line`, NULL when empty) in file order; a BOM is skipped. A file
    encoding.py did not measure (the pull's staged pages) gets the ceiling."""
    return (f"read_csv({literal(path)}, columns={{'line': 'VARCHAR'}}, header=false, auto_detect=false, "
            f"delim={quote(_UNIT_SEPARATOR)}, quote='', escape='', strict_mode=false, "
            f"max_line_size={line_limit(longest)})")


def json_reader(path: Path, keys: list[str], longest: int) -> str:
    """JSON Lines records as VARCHAR `keys` (NULL when absent), in file order; blank lines skipped."""
    types = ", ".join(f"{quote(k)}: 'VARCHAR'" for k in keys)
    return (f"read_json({literal(path)}, format='newline_delimited', columns={{{types}}}, "
            f"maximum_object_size={line_limit(longest)})")


def parquet_reader(path: Path, *, row_numbers: bool = False) -> str:
    """`row_numbers`: a `file_row_number` column (0-based), which the reader fills in parallel."""
    return f"read_parquet({literal(path)}{', file_row_number=true' if row_numbers else ''})"


def csv_skipped_lines(path: Path, longest: int) -> str:
    """csv_reader's lines that start no record, as runs (`line`, `lines`): a blank line, and the
    lines a quoted field continues on. A line with an odd number of `"` opens or closes a quoted
    field (escapes `""` come in pairs): the lines after an opening one, through the closing one,
    continue a record. Only the blank and odd lines are kept from the scan, which the ingest runs
    only for a file holding a `"` or a blank line (encoding.text_shape)."""
    odd = "(length(line) - length(replace(line, '\"', ''))) % 2 = 1"
    return f"""
        WITH marks AS (
            SELECT ordinality AS n, line IS NULL AS blank
            FROM {lines_reader(path, longest)} WITH ORDINALITY
            WHERE line IS NULL OR (contains(line, '"') AND {odd})
        ), counted AS (
            SELECT n, blank,
                   count(*) FILTER (WHERE NOT blank) OVER w AS odd_lines,  -- through this line
                   max(n) FILTER (WHERE NOT blank) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                       AS opened_at
            FROM marks WINDOW w AS (ORDER BY n)
        )
        SELECT CASE WHEN blank THEN n ELSE opened_at + 1 END AS line,
               CASE WHEN blank THEN 1 ELSE n - opened_at END AS lines
        FROM counted
        WHERE odd_lines % 2 = 0  -- a blank line outside a quoted field, or the line closing one
        ORDER BY line"""


def blank_lines(path: Path, longest: int) -> str:
    """json_reader's lines that start no record (blank or whitespace only), as runs of one."""
    return (f"SELECT ordinality AS line, 1 AS lines FROM {lines_reader(path, longest)} WITH ORDINALITY "
            f"WHERE line IS NULL OR trim(line, ' \t\r') = '' ORDER BY line")


@dataclass(frozen=True)
class Relation:
    """An export file as SQL, numbered by the ingest (ingest/steps.py) without a window.

    `records`: the canonical columns, one row per record, in file order (so an insertion-ordered
    copy's rowid is the record's index). Record i starts on physical line `first_line + i`, plus
    the lines before it that start no record: `skipped` yields those as runs (`line`, `lines`:
    the run's first line and length), in file order. None: every line starts a record.
    `refuses`: the records also have a column `refused`, why the file cannot be read at that record
    (NULL: it can); the ingest fails the day on the first one, naming its line.
    """

    records: str
    first_line: int
    skipped: str | None = None
    refuses: bool = False
