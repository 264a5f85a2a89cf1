"""Strict decoding of text exports before DuckDB reads them, and the path DuckDB reads them by.

DuckDB's readers only know UTF-8 natively: its `latin-1` is not Windows-1252 (0x80-0x9F hold €, œ,
curly quotes… in Windows-1252) and the `encodings` extension needs a download we cannot count on.
So a Windows-1252 file is transcoded, streaming, to a temporary UTF-8 copy; a UTF-8 file is checked
in the same streaming way and read in place. Either way an undecodable byte fails the day with its
byte offset and line: it is never replaced or guessed. A UTF-8 BOM is left to the readers (DuckDB's
CSV reader skips it, and JSON Lines are read through it).

The same pass refuses a line longer than readers.MAX_LINE_BYTES, naming it, so DuckDB never meets
one, and notes what the readers need to know of the file's lines (text_shape): whether any line may
start no record, so that numbering the records scans the lines only when one might, and how long
its longest line can be, so that DuckDB's readers are given the limit the file needs. And the path
handed to DuckDB is always plain (see readers.py): an export whose path holds a glob character or a
quote is read through a symlink with a plain name in the same private folder.
"""

from __future__ import annotations

import atexit
import codecs
import hashlib
import os
import re
import shutil
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from . import readers
from .files import ExportError, ExportFile
from .readers import is_plain

CHUNK = 1 << 20
_KEEP = 4  # transcoded copies kept per process (a day reads at most two files)
_copies: OrderedDict[str, Path] = OrderedDict()
_tmpdir: Path | None = None


@dataclass(frozen=True)
class TextShape:
    """What decoding saw that numbering lines needs (readers.Relation): without a `"` or a blank
    line, every line of a file starts a record."""

    quotes: bool  # a `"` somewhere: a quoted CSV field may continue on the next lines
    blank_lines: bool  # an empty or whitespace-only line
    # Bytes the longest line may have: a line within one chunk is shorter than a chunk, and one across
    # chunks is measured (readers.line_limit).
    longest_line: int = CHUNK


_shapes: OrderedDict[str, TextShape] = OrderedDict()  # "<sha256>.<encoding>": decoded without error


def text_shape(file: ExportFile, encoding: str) -> TextShape:
    key = f"{file.sha256}.{encoding}"
    if key not in _shapes:
        utf8_path(file, encoding)
    if key not in _shapes:  # a transcoded copy outlived its shape
        _remember(key, _decode(file, encoding, out=None))
    return _shapes[key]


def _remember(key: str, shape: TextShape) -> None:
    _shapes[key] = shape
    while len(_shapes) > _KEEP:
        _shapes.popitem(last=False)


def utf8_path(file: ExportFile, encoding: str) -> Path:
    """A plain path (readers.is_plain) to `file`'s content as UTF-8: the file itself or an alias
    of it, or a transcoded temporary copy. Parquet is binary (its strings are UTF-8 by
    specification): only aliased."""
    if file.format != "parquet" and encoding == "utf-8" and f"{file.sha256}.utf-8" not in _shapes:
        _remember(f"{file.sha256}.utf-8", _decode(file, encoding, out=None))
    if file.format == "parquet" or encoding == "utf-8":
        return plain_path(file.path)
    key = f"{file.sha256}.{encoding}"
    if key in _copies and _copies[key].exists():
        _copies.move_to_end(key)
        return _copies[key]
    target = _workdir() / f"{file.sha256[:16]}-{encoding}{file.path.suffix}"
    try:
        with target.open("wb") as out:
            _remember(key, _decode(file, encoding, out=out))
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    _copies[key] = target
    while len(_copies) > _KEEP:
        _copies.popitem(last=False)[1].unlink(missing_ok=True)
    return target


def plain_path(path: Path) -> Path:
    """`path` itself if DuckDB reads it as the one file it names (readers.is_plain), else an alias of it."""
    return path if is_plain(path) else _alias(path)


def _alias(path: Path) -> Path:
    """A symlink to `path` with a plain name, in the private folder (one per path, re-pointed)."""
    alias = _workdir() / f"{hashlib.sha256(str(path).encode()).hexdigest()[:16]}{path.suffix}"
    staged = alias.with_name(f"{alias.name}.{os.getpid()}.tmp")
    staged.unlink(missing_ok=True)
    staged.symlink_to(path.absolute())
    staged.replace(alias)
    return alias


def _decode(file: ExportFile, encoding: str, out) -> TextShape:
    """Decode the whole file strictly in chunks; write UTF-8 to `out` when given. A line longer
    than readers.MAX_LINE_BYTES fails here, with its number."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    offset = 0  # bytes of the file fed to the decoder so far
    newlines = 0  # in the bytes before `offset` (for the line number of an error)
    newline = _line_end(file.path)
    run = 0  # bytes of the line open at `offset`
    longest = CHUNK  # of the lines that ended so far (see TextShape.longest_line)
    shape = _ShapeScan(newline)
    with file.path.open("rb") as fh:
        while True:
            chunk = fh.read(CHUNK)
            ends = chunk.find(newline) if chunk else 0  # the open line ends here (or the file does)
            if ends >= 0:
                longest = max(longest, run + ends)
            run = _check_lines(file, chunk, newline, run, newlines)
            shape.feed(chunk)
            pending = decoder.getstate()[0]  # bytes of a character split across chunks
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                data = pending + chunk
                at = offset - len(pending) + exc.start
                line = newlines - pending.count(newline) + data[: exc.start].count(newline) + 1
                bad = data[exc.start: exc.end]
                raise ExportError(
                    f"{file.path}: line {line}, byte offset {at}: {bad!r} is not {encoding}; "
                    f"re-export the file as {encoding} or set source.encoding in program.yaml"
                ) from exc
            if out is not None and text:
                out.write(text.encode("utf-8"))
            if not chunk:
                return TextShape(quotes=shape.quotes, blank_lines=shape.blank_lines, longest_line=longest)
            offset += len(chunk)
            newlines += chunk.count(newline)


def _line_end(path: Path) -> bytes:
    """The byte that ends a line: CR in a file from an old Mac (its first line ends in a lone CR),
    else LF (LF or CRLF files). DuckDB's readers detect the same."""
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
    at = min((i for i in (head.find(b"\n"), head.find(b"\r")) if i >= 0), default=-1)
    lone_cr = at >= 0 and head[at:at + 1] == b"\r" and head[at + 1:at + 2] != b"\n"
    return b"\r" if lone_cr else b"\n"


def _check_lines(file: ExportFile, chunk: bytes, newline: bytes, run: int, newlines: int) -> int:
    """Fail on a line longer than readers.MAX_LINE_BYTES; return the length of the line still open after
    `chunk` (`run`: before it). Per chunk, not per line: only a line crossing chunks can be long
    (unless a chunk is bigger than the limit, which only tests do)."""
    limit = readers.MAX_LINE_BYTES

    def too_long(lines_before: int) -> ExportError:
        size = f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit} bytes"
        return ExportError(f"{file.path}: line {newlines + lines_before + 1} is longer than {size}, "
                           "more than any record of an export takes; fix or re-export the file")

    first = chunk.find(newline)
    if first < 0:
        if run + len(chunk) > limit:
            raise too_long(0)
        return run + len(chunk)
    if run + first > limit:
        raise too_long(0)
    if len(chunk) > limit:
        long = re.search(b"[^" + re.escape(newline) + b"]{%d}" % (limit + 1), chunk)
        if long:
            raise too_long(chunk.count(newline, 0, long.start()))
    rest = len(chunk) - chunk.rfind(newline) - 1
    if rest > limit:
        raise too_long(chunk.count(newline))
    return rest


class _ShapeScan:
    """TextShape, chunk by chunk at C speed (a line may span chunks)."""

    def __init__(self, newline: bytes):
        self.newline = newline
        self.space = b" \t\r\n".replace(newline, b"")  # whitespace within a line
        self.blank = re.compile(re.escape(newline) + b"[" + re.escape(self.space) + b"]*" + re.escape(newline))
        self.quotes = self.blank_lines = False
        self.open_blank = True  # the line open before the chunk holds only whitespace so far

    def feed(self, chunk: bytes) -> None:
        self.quotes = self.quotes or b'"' in chunk
        if self.blank_lines:
            return
        first = chunk.find(self.newline)
        if first < 0:
            self.open_blank = self.open_blank and not chunk.strip(self.space)
            return
        self.blank_lines = ((self.open_blank and not chunk[:first].strip(self.space))
                            or self.blank.search(chunk) is not None)
        self.open_blank = not chunk[chunk.rfind(self.newline) + 1:].strip(self.space)


def _workdir() -> Path:
    global _tmpdir
    if _tmpdir is None or not _tmpdir.exists():
        _tmpdir = Path(tempfile.mkdtemp(prefix="loyalty-read-"))
        atexit.register(shutil.rmtree, _tmpdir, True)
        if not is_plain(_tmpdir):
            raise ExportError(f"{_tmpdir}: the temporary folder's path must be plain (letters, digits, "
                              "'._-/' and spaces); set TMPDIR to one")
    return _tmpdir
