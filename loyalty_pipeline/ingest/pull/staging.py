"""Where a pull keeps what it fetched until the export is whole, and how the export is published.

A pull of business date D works in `<exports>/<D>/.<stem>.pull/` (hidden: the export sensor and
`find_export` look only at `<stem>.<csv|parquet|jsonl>`): one JSON Lines file per listing it reads
(`<phase>.jsonl`, a line per object, scrubbed) and `checkpoint.json`, which says for each listing how
many bytes of its file are committed, the cursor of the next page, pages and rows so far. A page is
appended and fsynced before the checkpoint naming it is replaced (temp + rename), so a process killed
anywhere leaves a checkpoint that describes a prefix of the files; the next pull of the same day (and
the same settings) truncates what came after it and resumes from the cursor. A checkpoint whose files
are gone or shorter than it says is no such prefix: that pull starts over. `lock` (flock) keeps two
pulls of one day apart; a killed pull's lock dies with it.

Only a whole pull is published: its checkpoint is removed first (`seal`: a pull killed from there on
starts over, never resumes from files the publish may have moved away), then the export is written
beside its final name and renamed over it (`publish`), after its manifest (`<stem>.manifest.json`: what
was read, from where, when; never a credential). Then the staging folder goes. A staging folder of
another day can never be finished (an API serves today's members only): the next pull removes it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...tempfiles import atomic_file, fsync_dir
from ..files import sha256
from .client import PullError

CHECKPOINT = "checkpoint.json"


def staging_name(stem: str) -> str:
    return f".{stem}.pull"


@dataclass
class PhaseState:
    """One listing's progress: `cursor` is where the next page starts (None with `done`: all read),
    `last_cursor` where the last page read started."""

    done: bool = False
    cursor: Any = None
    last_cursor: Any = None
    pages: int = 0
    rows: int = 0
    bytes: int = 0


@dataclass
class Staging:
    folder: Path  # the staging folder
    identity: dict  # what the pull reads (platform, URL, version, page size…): another identity starts over
    phases: dict[str, PhaseState] = field(default_factory=dict)
    resumed: bool = False
    _lock: int | None = None

    @classmethod
    def open(cls, day_folder: Path, stem: str, identity: dict) -> Staging:
        """The day's staging, locked; resumed when its checkpoint was written for the same identity."""
        staging = cls(day_folder / staging_name(stem), identity)
        staging.folder.mkdir(parents=True, exist_ok=True)
        staging._lock = _try_lock(staging.folder)
        if staging._lock is None:
            raise PullError(f"another pull of {day_folder.name} is running (it holds {staging.folder / 'lock'})")
        saved = _read_json(staging.folder / CHECKPOINT)
        if saved and saved.get("identity") == identity and staging._holds(saved["phases"]):
            staging.phases = {name: PhaseState(**state) for name, state in saved["phases"].items()}
            staging.resumed = any(state.pages for state in staging.phases.values())
            for name, state in staging.phases.items():  # drop what a killed pull appended after its checkpoint
                with staging.path(name).open("ab") as fh:
                    fh.truncate(state.bytes)
        else:
            for entry in staging.folder.iterdir():
                if entry.name != "lock":
                    entry.unlink()
        return staging

    def _holds(self, phases: dict[str, dict]) -> bool:
        """Each listing's file holds at least the bytes its checkpoint committed: a prefix to resume from.
        Truncating a shorter (or missing) file to that length would fill it with NUL bytes."""
        return all(_size(self.path(name)) >= state.get("bytes", 0) for name, state in phases.items())

    def close(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def path(self, phase: str) -> Path:
        return self.folder / f"{phase}.jsonl"

    def state(self, phase: str) -> PhaseState:
        return self.phases.setdefault(phase, PhaseState())

    def append(self, phase: str, objects: list, cursor: Any) -> PhaseState:
        """Commit one page: its objects as lines, then the checkpoint (done when `cursor` is None)."""
        state = self.state(phase)
        data = "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects).encode()
        with self.path(phase).open("ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        state.bytes += len(data)
        state.pages += 1
        state.rows += len(objects)
        state.last_cursor, state.cursor, state.done = state.cursor, cursor, cursor is None
        self._save()
        return state

    def _save(self) -> None:
        document = {"identity": self.identity, "phases": {n: vars(s) for n, s in self.phases.items()}}
        _write_json(self.folder / CHECKPOINT, document)

    def seal(self) -> None:
        """The pull is whole and about to be published: its checkpoint goes, so that a pull killed during
        or after the publish is never resumed (the published export may be a staged file, moved away)."""
        (self.folder / CHECKPOINT).unlink(missing_ok=True)
        fsync_dir(self.folder)

    def discard(self) -> None:
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def publish(built: Path, target: Path, manifest: dict) -> dict:
    """Rename the whole export `built` (a file on the same file system) over `target`, after writing its
    manifest; returns the manifest with the file's sha256."""
    with built.open("rb") as fh:
        os.fsync(fh.fileno())
    os.chmod(built, 0o644)  # readable like a dropped export (a temp file is created private)
    manifest = {**manifest, "file": target.name, "sha256": sha256(built)}
    _write_json(manifest_path(target), manifest)
    os.replace(built, target)
    fsync_dir(target.parent)
    return manifest


def manifest_path(export: Path) -> Path:
    """`accounts.jsonl` → `accounts.manifest.json` (not an export name: find_export never reads it)."""
    return export.with_name(f"{export.name.split('.')[0]}.manifest.json")


def remove_other_days(exports_dir: Path, keep: Path, stem: str) -> list[Path]:
    """Remove the unfinished pulls of the days other than `keep` (never one that a live pull holds)."""
    removed = []
    for folder in sorted(exports_dir.iterdir()) if exports_dir.is_dir() else []:
        staging = folder / staging_name(stem)
        if folder == keep or not staging.is_dir():
            continue
        lock = _try_lock(staging)
        if lock is None:
            continue
        try:
            shutil.rmtree(staging)
            removed.append(staging)
        finally:
            os.close(lock)
    return removed


def _try_lock(folder: Path) -> int | None:
    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def _write_json(path: Path, document: dict) -> None:
    with atomic_file(path) as fh:
        fh.write(json.dumps(document, indent=2, ensure_ascii=False).encode())
