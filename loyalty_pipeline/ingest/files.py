"""Finding a day's export files and describing them (lineage), before any row is read."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


class ExportError(ValueError):
    """A day's export cannot be used as a whole. The message names the file and what to fix."""


@dataclass(frozen=True)
class ExportFile:
    path: Path
    format: str
    sha256: str
    bytes: int


def day_dir(exports_dir: Path, day: dt.date) -> Path:
    return exports_dir / day.isoformat()


def find_export(exports_dir: Path, day: dt.date, stem: str, *, required: bool) -> ExportFile | None:
    """The one file `<exports_dir>/<day>/<stem>.<csv|parquet|jsonl>`; None if optional and absent."""
    folder = day_dir(exports_dir, day)
    found = [folder / f"{stem}{ext}" for ext in FORMATS if (folder / f"{stem}{ext}").is_file()]
    if len(found) > 1:
        raise ExportError(f"{folder}: several {stem} files ({', '.join(p.name for p in found)}); keep one")
    if not found:
        if required:
            expected = ", ".join(str(folder / f"{stem}{ext}") for ext in (".csv", ".parquet", ".jsonl"))
            raise ExportError(f"no export for {day}: expected one of {expected}")
        return None
    path = found[0]
    return ExportFile(path=path, format=FORMATS[path.suffix], sha256=sha256(path), bytes=path.stat().st_size)


def sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
