"""Daily processing of day 2, measured as users run it: the whole Dagster run, then the bare reference.

- `prepare_base` (setup, not timed): day 1 through the four steps into base.duckdb (the previous day
  is done), plus what ShopiMind holds after day 1's baseline push (account_sync_state).
- `processing` (child): on a fresh copy of the base, one in-process Dagster run of day 2 materializing
  loyalty_export → loyalty_snapshot → account_deltas → loyalty_events with their blocking checks and
  the analysts' publish, rebuild forced (run tag loyalty/rebuild=true), timed as a whole and per
  step; then, in the same process, the bare DuckDB reference (reference.py: both days' files read,
  typed, deltas and the core events, in one connection) on a fresh database; then checks both
  produced the same deltas and events. Each side has its own wall time and peak RSS.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import duckdb

from ...events.derive import build_events
from ...ingest.steps import ingest_export
from ...program import Program, load_program
from ...run_tags import REBUILD_TAG
from ...settings import program_path
from ...snapshots.steps import build_deltas, build_snapshot
from ...warehouse.connection import connect
from . import reference
from .common import DAY1, DAY2, TODAY, Peak, copy_db, measured, remove_db, timed

PROCESSING_ASSETS = ("loyalty_export", "loyalty_snapshot", "account_deltas", "loyalty_events")


def _connect(path: Path, memory_limit: str | None) -> duckdb.DuckDBPyConnection:
    con = connect(path, memory_limit=memory_limit)
    con.execute("SET enable_progress_bar = false")
    return con


def run_steps(con: duckdb.DuckDBPyConnection, exports: Path, day: dt.date, program: Program, peak: Peak,
              into: dict) -> None:
    """The four steps of one day, each timed, as the assets call them (without Dagster)."""
    with measured(peak, into, "ingest") as m:
        m["rows"] = ingest_export(con, exports, day, program)["accounts"]["rows"]
    with measured(peak, into, "snapshot") as m:
        stats = build_snapshot(con, day, program)
        m.update(members=stats["members"], quarantined=stats["quarantined"], activities=stats["activities"])
    with measured(peak, into, "deltas") as m:
        stats = build_deltas(con, day)
        m.update(rows=stats["rows"], by_kind=stats["by_kind"], tier_moves=stats["tier_moves"])
    with measured(peak, into, "events") as m:
        stats = build_events(con, day, program, TODAY)
        m.update(events=stats["events"], by_type=stats["by_type"], by_status=stats["by_status"])


def prepare_base(args: dict) -> dict:
    """base.duckdb = day 1 processed + the acknowledged baseline push."""
    exports, base = Path(args["exports"]), Path(args["base"])
    program = load_program(program_path())
    peak, steps = Peak(), {}
    remove_db(base)
    con = _connect(base, args.get("memory_limit"))
    try:
        run_steps(con, exports, DAY1, program, peak, steps)
        # Day 1 is the very first snapshot: its baseline push upserts every enrolled member. Sending
        # N records to the emulator would only measure the emulator; what matters for day 2 is that
        # ShopiMind holds day 1's values, which is exactly this (what a successful push records).
        con.execute("""
            INSERT INTO account_sync_state
            SELECT $destination, customer_id, snapshot_date, points_balance, coalesce(tier, ''), tier_since,
                   next_expiry_date, next_expiry_amount, now(), true
            FROM snapshots WHERE snapshot_date = $day AND enrolled""",
                    {"destination": args["destination"], "day": DAY1})
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return {"day1_steps": steps}


def processing(args: dict) -> dict:
    """The Dagster run of day 2 then the reference, in this process, each on a fresh database."""
    import dagster as dg

    exports, work = Path(args["exports"]), Path(args["work"])
    memory_limit = args.get("memory_limit")
    folder = Path(work) / f"pipeline-{args['tag']}"  # publishing writes Parquet next to the warehouse
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    pipe_db = copy_db(Path(args["base"]), folder / "loyalty.duckdb")
    ref_db = work / f"ref-{args['tag']}.duckdb"
    remove_db(ref_db)
    peak = Peak()
    out: dict = {"peak_resettable": peak.resettable}
    job = asset_job(bench_resources(args, pipe_db), PROCESSING_ASSETS, "bench_processing")  # once per code location

    # A run worker has its Dagster instance before the run starts. The first one a process makes imports
    # Dagster's storage (SQLAlchemy, ≈ 0.3 s, a second one 0.03 s): process start, like importing Dagster,
    # so it is timed apart (reported, not in the run's time).
    instance, out["instance_s"] = timed(dg.DagsterInstance.ephemeral)
    with measured(peak, out, "pipeline") as total:
        result = run_job(job, DAY2, rebuild=True, instance=instance)
    if not result.success:
        raise RuntimeError(f"the Dagster run of {DAY2} failed: {failures(result)}")
    total.update(run_details(result))
    con = duckdb.connect(str(pipe_db), read_only=True)
    try:  # what the run did, from the steps' own records
        stats = dict(con.execute("SELECT step, stats FROM step_fingerprints WHERE snapshot_date = $day",
                                 {"day": DAY2}).fetchall())
    finally:
        con.close()
    total["figures"] = figures(stats)
    rows = total["figures"]["rows"]
    total["rows_per_s"] = round(rows / total["seconds"])

    program = load_program(program_path())
    with measured(peak, out, "reference") as ref:
        rcon = duckdb.connect(str(ref_db), config={"memory_limit": memory_limit} if memory_limit else {})
        try:
            rcon.execute("SET enable_progress_bar = false")
            counts = reference.run(rcon, exports, DAY2, DAY1, program, TODAY)
        finally:
            rcon.close()
    ref.update(counts, rows_per_s=round(counts["rows"] / ref["seconds"]))

    out["verify"] = reference.verify(pipe_db, ref_db, DAY2)
    out["ratio"] = round(total["seconds"] / ref["seconds"], 2)
    remove_db(ref_db)
    if args.get("keep_pipeline_db"):
        out["pipeline_db"] = str(pipe_db)
    else:
        discard(pipe_db)
    return out


def copy_warehouse(pipe_db: Path, folder: Path) -> Path:
    """A copy of a warehouse made by `processing` with its analysts' files (their times kept: a re-run
    finds them up to date, as it would in place)."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(Path(pipe_db).parent, folder)
    return folder / Path(pipe_db).name


def discard(pipe_db: Path) -> None:
    """Remove a warehouse made by `processing` (or copied by copy_warehouse) and its analysts' files."""
    shutil.rmtree(Path(pipe_db).parent, ignore_errors=True)


def figures(stats: dict) -> dict:
    """The day's numbers, as the steps recorded them (step_fingerprints.stats)."""
    ingest, snapshot, deltas, events = (json.loads(stats[s]) for s in ("ingest", "snapshot", "deltas", "events"))
    return {"rows": ingest["accounts"]["rows"], "members": snapshot["members"],
            "quarantined": snapshot["quarantined"], "activities": snapshot["activities"],
            "deltas": deltas["rows"], "by_kind": deltas["by_kind"], "tier_moves": deltas["tier_moves"],
            "events": events["events"], "by_type": events["by_type"], "by_status": events["by_status"]}


def run_details(result) -> dict:
    """Per step of the run (assets and checks): seconds; the checks' verdicts; Dagster's own time."""
    steps = {e.step_key: round(e.event_specific_data.duration_ms / 1000, 3)
             for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    return {"success": result.success, "step_s": steps,
            "checks": {f"{c.asset_key.to_user_string()}:{c.check_name}": c.passed for c in checks}}


def failures(result) -> list[str]:
    return [f"{e.step_key}: {e.step_failure_data.error.message.strip()[:500]}"
            for e in result.all_events if e.is_step_failure and e.step_failure_data.error]


def asset_job(resources: dict, keys: tuple[str, ...], name: str):
    """A job materializing `keys` with their blocking checks, as the daily job would.

    A job of its own: `daily_job` with an asset selection would also pick the freshness checks, which
    the daily job leaves to their sensor."""
    import dagster as dg

    from ...definitions import OPERATIONS, build_defs

    selection = dg.AssetSelection.assets(*[dg.AssetKey(k) for k in keys]) \
        - dg.AssetSelection.checks(*OPERATIONS.freshness_checks)
    defs = dg.Definitions.merge(build_defs(resources),
                                dg.Definitions(jobs=[dg.define_asset_job(name, selection=selection)]))
    return defs.resolve_job_def(name)


def run_job(job, day: dt.date, *, rebuild: bool = False, instance=None):
    import dagster as dg

    return job.execute_in_process(partition_key=day.isoformat(), instance=instance or dg.DagsterInstance.ephemeral(),
                                  raise_on_error=False, tags={REBUILD_TAG: "true"} if rebuild else None)


def bench_resources(args: dict, warehouse: Path, shopimind=None) -> dict:
    from ...outbound.resources import OutboundResource
    from ...outbound.shopimind.resources import ShopiMindResource
    from ...program import ProgramResource
    from ...warehouse.resources import WarehouseResource

    return {
        "program": ProgramResource(program_path=str(program_path()), exports_dir=args["exports"],
                                   today=TODAY.isoformat()),
        "warehouse": WarehouseResource(path=str(warehouse)),
        "outbound": OutboundResource(dir=str(Path(args["work"]) / "outbound")),
        "shopimind": shopimind or ShopiMindResource(),
    }
