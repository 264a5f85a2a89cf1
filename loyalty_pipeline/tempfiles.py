"""Temp files named for the process writing them, and removal of those whose writer is gone.

Every file we publish is written under a temp name in its final folder, then renamed over the old
one (`atomic_file`). A process killed in between leaves the temp file behind. Its name,
`.<final name>.<pid>-<random>.tmp`, says which process wrote it; a later writer removes it once that
process is gone (or is a newer process that reused the pid: the file is older than it), never a file
a live writer is filling.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .processes import is_alive, started_at

_TEMP = re.compile(r"^\..+\.(?P<pid>\d+)-[0-9a-z_]+\.tmp(?P<wal>\.wal)?$")


def temp_path(final: Path) -> Path:
    """A new, empty temp file next to `final`, named for this process."""
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.{os.getpid()}-", suffix=".tmp")
    os.close(fd)
    return Path(name)


def remove_stale(folder: Path) -> list[Path]:
    """Remove the temp files (and their DuckDB WALs) left in `folder` by processes that are gone."""
    removed = []
    for entry in os.scandir(folder) if folder.is_dir() else []:
        match = _TEMP.match(entry.name)
        if not match or not entry.is_file(follow_symlinks=False):
            continue
        pid = int(match["pid"])
        if is_alive(pid):
            started = started_at(pid)
            if started is None or entry.stat(follow_symlinks=False).st_mtime >= started - 1:
                continue  # its writer may still be at work
        Path(entry.path).unlink(missing_ok=True)
        removed.append(Path(entry.path))
    return removed


@contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """A binary file that appears at `path` complete, or not at all (temp file + fsync + rename)."""
    tmp = temp_path(path)
    try:
        with tmp.open("wb", buffering=1 << 20) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
