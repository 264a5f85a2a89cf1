"""Reelevant "Loyalty Programme" datasource: one JSON Lines file per business date, plus `latest`.

`LoyaltyProgrammeRecord` is the one definition of a record. `sql/reelevant_feed.sql`
computes its fields as columns (same names, same order); DuckDB sorts them by customer_id, renders
each row as a JSON object and streams them out in Arrow batches of 10 000. Pydantic validates each
batch *as the exact bytes that are then written*, so every record in the file is a valid
`LoyaltyProgrammeRecord` with exactly its keys (an extra, missing or mistyped key fails the day).
Nothing holds more than one batch in Python (time and peak RSS at 1M members: docs/reelevant.md, measured
by devtools/bench/reelevant.py).

Files (in `out_dir`, normally `data/outbound/reelevant/`):
- `<YYYY-MM-DD>.jsonl`  the day's records, ordered by customer_id;
- `latest.jsonl`        the newest day's records (a hard link to, or copy of, that day's file);
- `latest.json`         which day `latest.jsonl` is, with its row count and sha256.

Every file is written to a temporary file in the same directory, fsynced, then renamed over the
old one (`os.replace`), so a reader sees the old file or the new one, never a half-written one. A
process killed mid-write leaves its temp file (`.<name>.<pid>-<random>.tmp`); the next write removes
those whose process is gone (tempfiles.py).
`latest.jsonl` is replaced only by the newest day present in the directory: backfilling an older
day rewrites that day's file and leaves `latest` alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import duckdb
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from ...program import Program
from ...tempfiles import atomic_file, fsync_dir, remove_stale, temp_path
from ...warehouse.connection import sql_files

LATEST = "latest.jsonl"
LATEST_MANIFEST = "latest.json"
BATCH_ROWS = 10_000
_DAY_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.jsonl$")


class LoyaltyProgrammeRecord(BaseModel):
    """One member in Reelevant's "Loyalty Programme" datasource (field names as Reelevant documents them)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    customer_id: str = Field(min_length=1, description="the shop's customer id (text)")
    member: bool = Field(description="enrolled in the programme")
    tier: str | None = Field(description="current tier (program.yaml name); null = no tier")
    points_balance: int = Field(description="points available now; may be negative after a refund")
    points_to_next_tier: int | None = Field(
        ge=0, description="points still needed on the program's tier basis; null at the top tier")
    next_tier: str | None = Field(description="the tier after the current one; null at the top tier")
    tier_benefits: list[str] = Field(description="benefits of the current tier (program.yaml); [] = no tier")
    points_expiration_date: dt.date | None = Field(description="date of the next expiry (today or later)")
    points_expiring: int | None = Field(ge=0, description="points expiring on points_expiration_date")
    member_since: dt.date | None = Field(description="programme enrolment date")
    lifetime_points: int = Field(ge=0, description="points earned since enrolment")

    @model_validator(mode="after")
    def _next_tier_and_distance_together(self) -> LoyaltyProgrammeRecord:
        if (self.next_tier is None) != (self.points_to_next_tier is None):
            raise ValueError("next_tier and points_to_next_tier are both set or both null")
        if self.points_expiring is not None and self.points_expiration_date is None:
            raise ValueError("points_expiring without points_expiration_date")
        return self


_BATCH = TypeAdapter(list[LoyaltyProgrammeRecord])


class FeedError(RuntimeError):
    """The day's feed cannot be written; nothing was replaced."""


def feed_sql() -> str:
    """The day's records as columns (sql/reelevant_feed.sql), with the parameters of `feed_params`."""
    return sql_files(__package__)("reelevant_feed")


def feed_params(day: dt.date, program: Program) -> dict:
    """The parameters of `reelevant_feed.sql`."""
    return {"day": day, "basis": program.tier_basis}


def write_feed(con: duckdb.DuckDBPyConnection, day: dt.date, program: Program, out_dir: str | Path,
               *, batch_rows: int = BATCH_ROWS) -> dict:
    """Write `<day>.jsonl` from the day's snapshot (and `latest.*` if it is the newest day).

    Needs the `tiers` temp table (`warehouse.connection.prepare`). Returns counts for run metadata.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    leftovers = remove_stale(out)
    members, enrolled, unknown = con.execute(
        "SELECT count(*), count(*) FILTER (enrolled), "
        "list(DISTINCT tier) FILTER (tier IS NOT NULL AND tier NOT IN (SELECT name FROM tiers)) "
        "FROM snapshots WHERE snapshot_date = $day", {"day": day}).fetchall()[0]
    if members == 0:
        raise FeedError(f"no snapshot for {day}: materialize loyalty_snapshot for that day first")
    if unknown:
        raise FeedError(f"{day}: snapshot tiers {sorted(unknown)} are not in program.yaml; "
                        "the feed cannot say their benefits or next tier")
    # Sorting the typed columns, then rendering JSON, keeps DuckDB's sort buffer ~40% smaller.
    relation = con.sql(f"SELECT to_json(f)::VARCHAR AS record FROM (SELECT * FROM ({feed_sql()}) "
                       "ORDER BY customer_id) AS f", params=feed_params(day, program))
    path = out / f"{day.isoformat()}.jsonl"
    digest = hashlib.sha256()
    with atomic_file(path) as fh:
        rows = _write_validated(relation.to_arrow_reader(batch_rows), fh, digest, day)
    if rows != members:
        raise FeedError(f"{day}: wrote {rows} records for {members} snapshot rows")  # pragma: no cover
    by_tier = dict(con.execute(
        "SELECT coalesce(tier, '(none)'), count(*) FROM snapshots WHERE snapshot_date = $day "
        "GROUP BY ALL ORDER BY ALL", {"day": day}).fetchall())
    stats = {"path": str(path), "rows": rows, "members": enrolled, "non_members": rows - enrolled,
             "by_tier": by_tier, "bytes": path.stat().st_size, "sha256": digest.hexdigest(),
             "leftovers_removed": [p.name for p in leftovers]}
    newest = max(days_written(out))
    stats["latest_date"] = newest
    stats["latest_updated"] = day >= newest
    if stats["latest_updated"]:
        _promote(path, out, {"snapshot_date": day.isoformat(), "rows": rows, "sha256": stats["sha256"],
                             "file": path.name})
    return stats


def _write_validated(batches: Iterable, fh: IO[bytes], digest, day: dt.date) -> int:
    """Validate each batch of JSON lines as a whole with pydantic, then append it to `fh`."""
    rows = 0
    for batch in batches:
        lines: list[str] = batch.column(0).to_pylist()
        if not lines:
            continue
        try:
            _BATCH.validate_json("[" + ",".join(lines) + "]")
        except ValidationError as exc:
            err = exc.errors()[0]
            index = err["loc"][0] if err["loc"] and isinstance(err["loc"][0], int) else 0
            field = ".".join(str(p) for p in err["loc"][1:]) or "<record>"
            raise FeedError(f"{day}: record {rows + index + 1} ({lines[index][:120]}): "
                            f"{field}: {err['msg']}") from None
        chunk = ("\n".join(lines) + "\n").encode()
        digest.update(chunk)
        fh.write(chunk)
        rows += len(lines)
    return rows


def days_written(out_dir: Path) -> Iterator[dt.date]:
    for entry in os.scandir(out_dir):
        match = _DAY_FILE.match(entry.name)
        if match:
            yield dt.date.fromisoformat(match.group(1))


def _promote(day_file: Path, out: Path, manifest: dict) -> None:
    """Make `day_file` the new latest.jsonl (atomically), then record which day it is."""
    tmp = temp_path(out / LATEST)
    tmp.unlink()  # os.link wants a free name
    try:
        try:
            os.link(day_file, tmp)  # the day file is never modified in place, only replaced
        except OSError:
            shutil.copyfile(day_file, tmp)
            _fsync(tmp)
        os.replace(tmp, out / LATEST)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(out)
    with atomic_file(out / LATEST_MANIFEST) as fh:
        fh.write((json.dumps(manifest, indent=2) + "\n").encode())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
