"""The export-arrival sensor, the run-failure sensor and the dead-run reaper.

Export arrival: each tick lists `<exports_dir>/<YYYY-MM-DD>/`, compares each day's files with the
cursor by size and mtime (sha256 only when those change), and asks for runs in date order:
- a new day (on time, late or out of order) is launched;
- a day whose files changed (new sha256) is relaunched;
- in both cases every later day already launched is relaunched after it, because its deltas
  must compare with the right previous snapshot. Event keys are deterministic and the outbox is
  never cleared, so a relaunch sends nothing twice (invariants 2 and 5).
Run keys are (day, sha256[, cause]), so a lost or replayed cursor never doubles a run.
"""

import datetime as dt
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import httpx

from ..ingest.files import FORMATS, day_dir, sha256
from ..program import ProgramResource
from .dead_runs import reap
from .failures import error_messages
from .schedules import SERIAL_TAG, TRIGGER_TAG

SHA_TAG = "loyalty/export_sha256"
REASON_TAG = "loyalty/reason"


@dataclass(frozen=True)
class DayFiles:
    day: dt.date
    files: list[Path]

    def stat(self) -> list[list]:
        return [[p.name, (st := p.stat()).st_size, st.st_mtime_ns] for p in self.files]

    def newest_mtime(self) -> float:
        return max(p.stat().st_mtime for p in self.files)

    def fingerprint(self) -> str:
        """sha256 of the accounts file alone, or of every file's name and sha256 when there are several."""
        if len(self.files) == 1:
            return sha256(self.files[0])
        return hashlib.sha256("".join(f"{p.name}:{sha256(p)}\n" for p in self.files).encode()).hexdigest()


def folder_day(folder: Path) -> dt.date | None:
    """The business date of an exports folder: only the exact name the ingest reads (`day_dir`,
    YYYY-MM-DD). Python also parses `20261106` as a date, a folder the ingest never looks in."""
    try:
        day = dt.date.fromisoformat(folder.name)
    except ValueError:
        return None
    return day if day_dir(folder.parent, day) == folder else None


def export_days(exports_dir: Path, accounts_stem: str, activities_stem: str) -> list[DayFiles]:
    """Days with at least one accounts file, in date order (other directories are ignored)."""
    days = []
    for folder in sorted(exports_dir.iterdir()) if exports_dir.is_dir() else []:
        day = folder_day(folder)
        if day is None:
            continue
        accounts = [folder / f"{accounts_stem}{ext}" for ext in FORMATS if (folder / f"{accounts_stem}{ext}").is_file()]
        if accounts:
            activities = [folder / f"{activities_stem}{ext}" for ext in FORMATS
                          if (folder / f"{activities_stem}{ext}").is_file()]
            days.append(DayFiles(day, sorted(accounts + activities)))
    return days


@dataclass(frozen=True)
class PlannedRun:
    day: dt.date
    sha256: str
    reason: str   # new | changed | after <day> (its deltas depend on an earlier day that was new or changed)
    run_key: str


def plan_runs(cursor: dict, days: list[DayFiles], *, first: dt.date, last: dt.date, settled_before: float
              ) -> tuple[list[PlannedRun], dict, list[str]]:
    """(runs to request, in date order; the new cursor; notes for the tick log).

    cursor: {day: {"sha256": …, "stat": [[file, size, mtime_ns], …]}} of the days launched.
    """
    new_cursor = {d: dict(v) for d, v in cursor.items()}
    notes: list[str] = []
    days = [entry for entry in days if first <= entry.day <= last]  # the others are no partition (yet)
    present = {entry.day.isoformat() for entry in days}
    dirty: dict[str, tuple[str, str]] = {}  # day → (sha256, "new" | "changed")
    for entry in days:
        key = entry.day.isoformat()
        known = cursor.get(key)
        stat = entry.stat()
        if known and known["stat"] == stat:
            continue
        if entry.newest_mtime() > settled_before:
            # Still being written (or just landed): wait, and hold later days so they run after it.
            notes.append(f"{key}: modified less than export_settle_seconds ago, waiting")
            break
        sha = entry.fingerprint()
        new_cursor[key] = {"sha256": sha, "stat": stat}
        if known and known["sha256"] == sha:
            continue  # touched, same bytes
        dirty[key] = (sha, "changed" if known else "new")
    if not dirty:
        return [], new_cursor, notes
    cause = min(dirty)
    cause_sha = dirty[cause][0]
    runs = []
    for key in sorted(new_cursor):
        day = dt.date.fromisoformat(key)
        sha = new_cursor[key]["sha256"]
        if key in dirty:
            runs.append(PlannedRun(day, sha, dirty[key][1], f"{key}:{sha[:16]}"))
        elif key > cause and key in present:
            runs.append(PlannedRun(day, sha, f"after {cause}", f"{key}:{sha[:16]}:after:{cause}:{cause_sha[:16]}"))
    return runs, new_cursor, notes


def build_export_sensor(daily_job_name: str) -> dg.SensorDefinition:
    @dg.sensor(
        name="export_arrival_sensor",
        job_name=daily_job_name,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Launches a business date as soon as its export lands; catches up late days in date "
                    "order; relaunches a day whose file changed, then the days after it.",
    )
    def export_arrival_sensor(context: dg.SensorEvaluationContext, program: ProgramResource):
        prog = program.load()
        cursor = json.loads(context.cursor) if context.cursor else {}
        days = export_days(program.exports, prog.source.accounts_file, prog.source.activities_file)
        runs, new_cursor, notes = plan_runs(
            cursor, days, first=prog.partitions_start, last=program.today_date() - dt.timedelta(days=1),
            settled_before=time.time() - prog.operations.export_settle_seconds)
        for note in notes:
            context.log.info(note)
        for run in runs:
            context.log.info(f"{run.day}: {run.reason} (run key {run.run_key})")
        requests = [
            dg.RunRequest(
                run_key=run.run_key,
                partition_key=run.day.isoformat(),
                tags={TRIGGER_TAG: "export_sensor", REASON_TAG: run.reason, SHA_TAG: run.sha256[:16],
                      SERIAL_TAG: "daily",
                      # The run queue starts higher priorities first: earlier business dates first.
                      "dagster/priority": str(-(run.day - prog.partitions_start).days)},
            )
            for run in runs
        ]
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(new_cursor, sort_keys=True))

    return export_arrival_sensor


# -- run failures ------------------------------------------------------------------------------------------

WEBHOOK_ENV = "LOYALTY_FAILURE_WEBHOOK_URL"


def failure_report(context: dg.RunFailureSensorContext) -> dict:
    run = context.dagster_run
    steps = [{"step": e.step_key, "error": "\n".join(error_messages(e.step_failure_data.error))[:2000]}
             for e in context.get_step_failure_events()]
    return {
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": run.tags.get("dagster/partition"),
        "backfill": run.tags.get("dagster/backfill"),
        "trigger": run.tags.get(TRIGGER_TAG) or run.tags.get("dagster/schedule_name")
        or run.tags.get("dagster/sensor_name"),
        "message": context.failure_event.message,
        "failed_steps": steps,
    }


@dg.run_failure_sensor(
    name="run_failure_notifier",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Logs every failed run (partition, failed steps, errors) in this sensor's tick log and POSTs "
                f"it to operations.failure_webhook_url or ${WEBHOOK_ENV} when set.",
)
def run_failure_notifier(context: dg.RunFailureSensorContext, program: ProgramResource):
    report = failure_report(context)
    steps = "; ".join(f"{s['step']}: {s['error'].splitlines()[0] if s['error'] else '?'}"
                      for s in report["failed_steps"]) or report["message"]
    text = f"loyalty pipeline: run {report['run_id'][:8]} of {report['job']} failed " \
           f"for {report['partition'] or 'no partition'}: {steps}"
    context.log.error(text)
    url = os.environ.get(WEBHOOK_ENV) or program.load().operations.failure_webhook_url
    if url:
        try:
            response = httpx.post(url, json={"text": text, **report}, timeout=10.0)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            # The URL may embed a secret token (Slack, Teams): never log it.
            context.log.warning(f"failure webhook did not accept the report: {type(exc).__name__}")


# -- dead runs ---------------------------------------------------------------------------------------------


@dg.sensor(
    name="dead_run_reaper",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks failed the runs whose process is gone from this machine (kill -9, out of memory, a reboot) "
                "and frees their duckdb pool slots, so that they never block a later run (dead_runs.py).",
)
def dead_run_reaper(context: dg.SensorEvaluationContext):
    lines = reap(context.instance, by="the dead_run_reaper sensor")
    for line in lines:
        context.log.warning(line)
    return dg.SkipReason("\n".join(lines) or "no run whose process is gone")
