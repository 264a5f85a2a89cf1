"""Re-running a finished day costs lookups, not a rebuild.

Each daily step records, in the transaction that replaces its day, a fingerprint of everything its
rows depend on (the export files' sha256, the program, the code of the steps, the fingerprints of
the steps it reads) together with the stats it reported. When a step runs again and the fingerprint
is the same, the rows it would write are the rows already there: it returns the stored stats
(`reused: True`) and writes nothing. Any change upstream (a re-written export, an edited
program.yaml, new code, an earlier day rebuilt) changes the fingerprint, so that day and the days
that read it are rebuilt. `force=True` rebuilds regardless.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import time
from importlib import resources
from typing import Any

import duckdb

from .connection import count_day

# The table whose rows of a day each step writes (checked on reuse).
STEP_TABLES = {"ingest": "raw_accounts", "snapshot": "snapshots", "deltas": "account_deltas",
               "events": "loyalty_events"}

# The code whose output the fingerprints vouch for: the stages whose steps are fingerprinted (each with its
# SQL), the warehouse (schema, macros) and the program's model. A change to any of it rebuilds a day on its
# next run (and a change to a stage's assets.py too: wiring, but cheaper to rebuild than to get wrong).
_CODE_PACKAGES = ("loyalty_pipeline.ingest", "loyalty_pipeline.snapshots", "loyalty_pipeline.events",
                  "loyalty_pipeline.warehouse")
_CODE_MODULES = ("loyalty_pipeline/program.py",)


@functools.cache
def code_version() -> str:
    digest = hashlib.sha256()
    paths = [path for package in _CODE_PACKAGES for path in sorted(_walk(resources.files(package)), key=str)]
    paths += [resources.files("loyalty_pipeline").joinpath(name.removeprefix("loyalty_pipeline/"))
              for name in _CODE_MODULES]
    for path in paths:
        digest.update(str(path).rsplit("loyalty_pipeline", 1)[-1].encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _walk(folder):
    for entry in folder.iterdir():
        if entry.is_dir():
            yield from _walk(entry)
        elif entry.name.endswith((".py", ".sql")):
            yield entry


def fingerprint(step: str, *parts: Any) -> str:
    """A digest of the step, the code and `parts` (anything JSON can hold; dates as ISO text)."""
    text = json.dumps([step, code_version(), *parts], default=str, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def stored(con: duckdb.DuckDBPyConnection, step: str, day: dt.date | None) -> str | None:
    """The fingerprint `step` recorded for `day` (None: never built, or no such day)."""
    row = con.execute("SELECT fingerprint FROM step_fingerprints WHERE step = $step AND snapshot_date = $day",
                      {"step": step, "day": day}).fetchone()
    return row[0] if row else None


def history(con: duckdb.DuckDBPyConnection, step: str, through: dt.date) -> list[tuple[dt.date, str]]:
    """(day, fingerprint) of every day `step` built up to `through`, in date order."""
    return con.execute("SELECT snapshot_date, fingerprint FROM step_fingerprints WHERE step = $step "
                       "AND snapshot_date <= $day ORDER BY snapshot_date", {"step": step, "day": through}).fetchall()


def reuse(con: duckdb.DuckDBPyConnection, step: str, day: dt.date, wanted: str, force: bool = False
          ) -> dict | None:
    """The stats `step` stored for `day` if it was built from the same inputs and its rows are all still
    there (nobody deleted some by hand), else None: the step must build."""
    if force:
        return None
    row = con.execute("SELECT stats, rows, epoch(built_at) FROM step_fingerprints WHERE step = $step "
                      "AND snapshot_date = $day AND fingerprint = $fp",
                      {"step": step, "day": day, "fp": wanted}).fetchone()
    if row is None or count_day(con, STEP_TABLES[step], day) != row[1]:
        return None
    return {**json.loads(row[0], object_hook=_decode), "reused": True, "built_at": row[2]}


def recorded(con: duckdb.DuckDBPyConnection, step: str, day: dt.date) -> dict | None:
    """The stats `step` recorded with its last build of `day` (None: never built), whatever its inputs:
    what a check of the day reads instead of counting the rows again (they were counted in the
    transaction that wrote them, and a reuse finds them all there)."""
    row = con.execute("SELECT stats FROM step_fingerprints WHERE step = $step AND snapshot_date = $day",
                      {"step": step, "day": day}).fetchone()
    return json.loads(row[0], object_hook=_decode) if row else None


def record(con: duckdb.DuckDBPyConnection, step: str, day: dt.date, value: str, stats: dict) -> dict:
    """Store the fingerprint and stats of a build (inside the caller's transaction); returns the stats
    with `built_at` (epoch seconds), which the analysts' files are compared with."""
    built_at = time.time()
    con.execute("DELETE FROM step_fingerprints WHERE step = $step AND snapshot_date = $day",
                {"step": step, "day": day})
    con.execute("INSERT INTO step_fingerprints VALUES ($step, $day, $fp, $rows, $stats, to_timestamp($at))",
                {"step": step, "day": day, "fp": value, "rows": count_day(con, STEP_TABLES[step], day),
                 "stats": json.dumps(stats, default=_encode), "at": built_at})
    return {**stats, "reused": False, "built_at": built_at}


def _encode(value: Any) -> Any:
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    raise TypeError(f"cannot store {type(value).__name__} in step stats")


def _decode(obj: dict) -> Any:
    return dt.date.fromisoformat(obj["$date"]) if obj.keys() == {"$date"} else obj
