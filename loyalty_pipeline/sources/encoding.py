"""Strict decoding of text exports before DuckDB reads them.

DuckDB's readers only know UTF-8 natively: its `latin-1` is not Windows-1252 (0x80-0x9F hold €, œ,
curly quotes… in Windows-1252) and the `encodings` extension needs a download we cannot count on.
So a Windows-1252 file is transcoded, streaming, to a temporary UTF-8 copy; a UTF-8 file is checked
in the same streaming way and read in place. Either way an undecodable byte fails the day with its
byte offset and line: it is never replaced or guessed. A UTF-8 BOM is left to the readers (DuckDB's
CSV reader skips it, and JSON Lines are read through it).
"""

from __future__ import annotations

import atexit
import codecs
import shutil
import tempfile
from collections import OrderedDict
from pathlib import Path

from .files import ExportError, ExportFile

CHUNK = 1 << 20
_KEEP = 4  # transcoded copies kept per process (a day reads at most two files)
_copies: OrderedDict[str, Path] = OrderedDict()
_checked: OrderedDict[str, None] = OrderedDict()  # UTF-8 files already validated (by content)
_tmpdir: Path | None = None


def utf8_path(file: ExportFile, encoding: str) -> Path:
    """A path to `file`'s content as UTF-8: the file itself, or a transcoded temporary copy."""
    if file.format == "parquet":
        return file.path  # binary: strings in Parquet are UTF-8 by specification
    if encoding == "utf-8":
        if file.sha256 not in _checked:
            _decode(file, encoding, out=None)
            _checked[file.sha256] = None
            while len(_checked) > _KEEP:
                _checked.popitem(last=False)
        return file.path
    key = f"{file.sha256}.{encoding}"
    if key in _copies and _copies[key].exists():
        _copies.move_to_end(key)
        return _copies[key]
    target = _workdir() / f"{file.sha256[:16]}-{encoding}{file.path.suffix}"
    try:
        with target.open("wb") as out:
            _decode(file, encoding, out=out)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    _copies[key] = target
    while len(_copies) > _KEEP:
        _copies.popitem(last=False)[1].unlink(missing_ok=True)
    return target


def _decode(file: ExportFile, encoding: str, out) -> None:
    """Decode the whole file strictly in chunks; write UTF-8 to `out` when given."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    offset = 0  # bytes of the file fed to the decoder so far
    newlines = 0  # in the bytes before `offset` (for the line number of an error)
    with file.path.open("rb") as fh:
        while True:
            chunk = fh.read(CHUNK)
            pending = decoder.getstate()[0]  # bytes of a character split across chunks
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                data = pending + chunk
                at = offset - len(pending) + exc.start
                line = newlines - pending.count(b"\n") + data[: exc.start].count(b"\n") + 1
                bad = data[exc.start: exc.end]
                raise ExportError(
                    f"{file.path}: line {line}, byte offset {at}: {bad!r} is not {encoding}; "
                    f"re-export the file as {encoding} or set source.encoding in program.yaml"
                ) from exc
            if out is not None and text:
                out.write(text.encode("utf-8"))
            if not chunk:
                return
            offset += len(chunk)
            newlines += chunk.count(b"\n")


def _workdir() -> Path:
    global _tmpdir
    if _tmpdir is None or not _tmpdir.exists():
        _tmpdir = Path(tempfile.mkdtemp(prefix="loyalty-transcoded-"))
        atexit.register(shutil.rmtree, _tmpdir, True)
    return _tmpdir
