"""`loyalty-pipeline`: run business dates from the shell, see what the warehouse holds, release rejected rows.

(The demo, the sample exports and the ShopiMind emulator are development tools: `loyalty-devtools`.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from . import settings


def _date(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


# Dagster's console logger prints a failed step at ERROR with its whole stack trace, above our summary.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def run_days(start: dt.date, end: dt.date, *, job_name: str = "daily_job", run_config: dict | None = None,
             tags: dict[str, str] | None = None) -> bool:
    """Run the daily job for each business date in order, in this process, on the project's instance
    (so the runs show in the UI). Stops at the first failed day: later days' deltas depend on it.

    Before each day, and every second while it runs, runs whose process is gone are failed and their
    pool slots freed (operations/dead_runs.py); while the day waits for the `duckdb` slot it says who holds it.
    SIGTERM or Ctrl-C stops the run at once, waiting or working: it is marked canceled and its slot freed.
    """
    from .definitions import defs
    from .operations.instance import get_instance

    job = defs.resolve_job_def(job_name)
    instance = get_instance()
    # The shell shows one line per day (and the causes of a failure: _print_failure); the full event log,
    # stack traces included, is in the UI (same instance).
    with _signals_to_flag() as stop:
        for day in days_between(start, end):
            if stop:  # a signal between two days
                print(f"stopped by {signal.Signals(stop[0]).name} before {day}", flush=True)
                sys.exit(128 + stop[0])
            result = _run_day(job, instance, day, {**QUIET, **(run_config or {})}, tags or {}, stop)
            print(f"{day}  {'ok' if result.success else 'FAILED'}  run {result.run_id[:8]}", flush=True)
            if not result.success:
                _print_failure(result)
                return False
    return True


WATCH_INTERVAL_S = 1.0


def _run_day(job, instance, day: dt.date, run_config: dict, tags: dict[str, str], stop: list[int]):
    """One day's run in a worker thread; this (main) thread reaps dead runs, says what the run waits
    for, and stops it on a signal (Dagster would only note the signal while the run waits)."""
    from .operations.dead_runs import reap, waiting_for
    from .processes import process_tags

    for line in reap(instance, by="loyalty-pipeline run"):
        print(line, flush=True)
    run_id, outcome = str(uuid.uuid4()), {}  # known before the run starts: the watcher needs it

    def execute() -> None:
        try:
            outcome["result"] = job.execute_in_process(
                partition_key=day.isoformat(), instance=instance, run_config=run_config, raise_on_error=False,
                tags={**tags, **process_tags(run_id)}, run_id=run_id)
        except BaseException as exc:  # handed to the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=execute, name=f"run {day}", daemon=True)
    worker.start()
    said, watch_failed, next_watch = None, False, time.monotonic() + WATCH_INTERVAL_S
    while worker.is_alive():
        worker.join(timeout=0.2)
        if stop:
            _stop(instance, run_id, day, stop[0])
        if worker.is_alive() and time.monotonic() >= next_watch:
            next_watch = time.monotonic() + WATCH_INTERVAL_S
            try:
                for line in reap(instance, by="loyalty-pipeline run"):
                    print(line, flush=True)
                holders = waiting_for(instance, run_id)
            except Exception as exc:  # e.g. the instance's sqlite busy: the run itself goes on
                if not watch_failed:
                    print(f"{day}  (cannot check the duckdb pool for now: {type(exc).__name__}: {exc})", flush=True)
                watch_failed = True
                continue
            if holders and holders != said:
                print(f"{day}  waiting for the duckdb pool slot, held by {', '.join(holders)}", flush=True)
            said = holders
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _stop(instance, run_id: str, day: dt.date, signum: int) -> None:
    """Mark the run canceled, free what it holds or waits for, say so, and end this process now (the
    worker thread cannot be interrupted; as with a kill, what the run had not committed is not kept)."""
    from .operations.dead_runs import held_by

    name = signal.Signals(signum).name
    run = instance.get_run_by_id(run_id)
    if run is not None and not run.is_finished:
        pools = held_by(instance, run_id)
        instance.report_run_canceled(run, f"Stopped by {name} from the shell (pid {os.getpid()}): canceled"
                                          + (f"; its {' and '.join(pools)} slot freed." if pools else "."))
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        print(f"{day}  stopped by {name}  run {run_id[:8]}: marked canceled"
              + (f", its {' and '.join(pools)} slot freed" if pools else ""), flush=True)
    else:
        print(f"{day}  stopped by {name}", flush=True)
    sys.stderr.flush()
    os._exit(128 + signum)


@contextmanager
def _signals_to_flag() -> Iterator[list[int]]:
    """SIGTERM and SIGINT append to the yielded list instead of raising anywhere in this thread."""
    stop: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, lambda signum, _frame: stop.append(signum))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _print_failure(result) -> None:
    """Why the day failed: each failed step's error and its causes (or the run's), and failed checks."""
    from .operations.failures import error_messages

    failures = [(e.step_key, e.step_failure_data.error) for e in result.all_events
                if e.is_step_failure and e.step_failure_data.error]
    if not failures:
        failures = [("run", e.event_specific_data.error) for e in result.all_events
                    if e.is_run_failure and getattr(e.event_specific_data, "error", None)]
    for step, error in failures:
        for i, message in enumerate(error_messages(error)):
            lead = f"    {step}: " if i == 0 else "      caused by "
            print(lead + message.replace("\n", "\n" + " " * len(lead)))
    for check in result.get_asset_check_evaluations():  # a blocking check says why in its description
        if not check.passed:
            print(f"    check {check.check_name}: {check.description or 'failed'}")


def _tag(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key, val


def runnable_days_error(start: dt.date, end: dt.date) -> str | None:
    """Why START..END cannot run (one line), or None. The days are the daily partitions: from
    partitions_start to the last complete day in the program's time zone."""
    from .partitions import daily_partitions

    first = dt.date.fromisoformat(daily_partitions.get_first_partition_key())
    last_key = daily_partitions.get_last_partition_key()
    last = dt.date.fromisoformat(last_key) if last_key else None
    if start > end:
        return f"--start {start} is after --end {end}"
    for day in (start, end):
        if last is None or not first <= day <= last:
            days = f"{first} … {last}" if last else f"none yet (the first is {first})"
            return (f"cannot run {day}: the days that can run are {days} "
                    f"(partitions_start … yesterday in {daily_partitions.timezone})")
    return None


def cmd_run(args: argparse.Namespace) -> int:
    error = runnable_days_error(args.start, args.end)
    if error:
        print(f"loyalty-pipeline run: {error}", file=sys.stderr)
        return 2
    return 0 if run_days(args.start, args.end, tags=dict(args.tag) or None) else 1


def pull_today(date: dt.date | None = None) -> bool:
    """Today's export from the platform's API: the `loyalty_api_pull` asset (pull_job), run in this process on
    the project's instance, so the run shows in the UI; one line said, with the reasons of a failure."""
    from .definitions import build_defs
    from .operations.instance import get_instance
    from .operations.pull import PULL_JOB
    from .processes import process_tags
    from .program import load_program

    program = load_program(settings.program_path())  # as it is now, like the run's `program` resource
    if not program.source.pull.enabled:
        print(f"loyalty-pipeline pull: source.pull.enabled is false in {settings.program_path()}: this "
              "program's exports are dropped as files (docs/pull.md says how to pull them instead)", file=sys.stderr)
        return False
    config: dict = dict(QUIET)
    if date:
        config["ops"] = {"loyalty_api_pull": {"config": {"date": date.isoformat()}}}
    run_id = str(uuid.uuid4())
    result = build_defs(program=program).resolve_job_def(PULL_JOB).execute_in_process(
        instance=get_instance(), run_config=config, raise_on_error=False, tags=process_tags(run_id), run_id=run_id)
    if not result.success:
        print(f"pull  FAILED  run {result.run_id[:8]}", flush=True)
        _print_failure(result)
        return False
    metadata = {k: v.value for k, v in result.asset_materializations_for_node("loyalty_api_pull")[0].metadata.items()}
    print(f"{metadata['business_date']}  pulled {metadata['rows']} rows in {metadata['pages']} pages "
          f"({metadata['requests']} requests) into {metadata['path']}  run {result.run_id[:8]}", flush=True)
    return True


def cmd_pull(args: argparse.Namespace) -> int:
    return 0 if pull_today(args.date) else 1


def cmd_summary(args: argparse.Namespace) -> int:
    from .operations.summary import print_summary

    print_summary(settings.warehouse_path())
    return 0


def cmd_shopimind_replay(args: argparse.Namespace) -> int:
    from .outbound.core.ledger import replay
    from .warehouse.connection import connect

    con = connect(settings.warehouse_path())
    try:
        released = replay(con, destination=args.destination, kind=args.kind, day=args.day,
                          code_name=args.code_name)
    finally:
        con.close()
    print(f"{released} rejected key(s) released for delivery: events go with the next run of their day (or of "
          "a day up to max_event_age_days after it), accounts with the next run of the newest day")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="loyalty-pipeline", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="process business dates START..END in order through the daily job")
    run.add_argument("--start", type=_date, required=True)
    run.add_argument("--end", type=_date, required=True)
    run.add_argument("--tag", type=_tag, action="append", default=[], metavar="KEY=VALUE",
                     help="run tag, e.g. loyalty/confirm_volume_change=true after a checked big change")
    run.set_defaults(func=cmd_run)

    pull = sub.add_parser("pull", help="pull today's export from the loyalty platform's API (source.pull)")
    pull.add_argument("--date", type=_date, help="the business date to pull: only today can be (an API has no history)")
    pull.set_defaults(func=cmd_pull)

    summary = sub.add_parser("summary", help="print what the warehouse holds, day by day")
    summary.set_defaults(func=cmd_summary)

    replay = sub.add_parser("shopimind-replay", help="release rejected ShopiMind rows for another delivery attempt "
                                                     "(fix their cause first)")
    replay.add_argument("--kind", choices=["account", "account_delete", "event"])
    replay.add_argument("--day", type=_date, help="only rows of this business date")
    replay.add_argument("--code-name", help="only events of this type, e.g. loyalty.points_earned")
    replay.add_argument("--destination", help="only rows of this API base URL")
    replay.set_defaults(func=cmd_shopimind_replay)
    return p


def main(argv: list[str] | None = None) -> int:
    from .program import ProgramError

    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ProgramError as exc:  # a missing or invalid program.yaml: its own message names file and key
        print(f"loyalty-pipeline {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
