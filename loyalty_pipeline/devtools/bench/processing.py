"""Daily processing of day 2: the pipeline's steps, then the bare reference, in one child process.

- `prepare_base` (setup, not timed): day 1 through the same steps into base.duckdb, plus what
  ShopiMind holds after day 1's baseline push (account_sync_state), and the reference's day-1 table.
- `processing` (child): copies both bases, runs ingest_export → build_snapshot → build_deltas →
  build_events on the copy (exactly what the four assets call), closes it, then runs the reference
  on its own copy; each step has its own wall time and peak RSS; then checks both produced the
  same deltas and events.
- `dagster` (child): the same day through Dagster's daily job (the four assets and their blocking
  checks, publishing included), to report Dagster's overhead on top of the step functions.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from ...events.derive import build_events
from ...ingest.steps import ingest_export
from ...program import Program, load_program
from ...settings import program_path
from ...snapshots.steps import build_deltas, build_snapshot
from ...warehouse.connection import connect
from . import reference
from .common import DAY1, DAY2, TODAY, Peak, copy_db, measured, remove_db

PROCESSING_ASSETS = ("loyalty_export", "loyalty_snapshot", "account_deltas", "loyalty_events")


def _connect(path: Path, memory_limit: str | None) -> duckdb.DuckDBPyConnection:
    con = connect(path, memory_limit=memory_limit)
    con.execute("SET enable_progress_bar = false")
    return con


def run_steps(con: duckdb.DuckDBPyConnection, exports: Path, day: dt.date, program: Program, peak: Peak,
              into: dict) -> None:
    """The four steps of one day, each timed, as the assets run them."""
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
    """base.duckdb = day 1 processed + the acknowledged baseline push; ref-base.duckdb = day 1's table."""
    exports, base, ref_base = Path(args["exports"]), Path(args["base"]), Path(args["ref_base"])
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
    remove_db(ref_base)
    rcon = duckdb.connect(str(ref_base))
    try:
        reference.build_base(rcon, exports, DAY1, program)
    finally:
        rcon.close()
    return {"day1_steps": steps}


def processing(args: dict) -> dict:
    """Pipeline then reference on day 2, in this process, each from a fresh copy of its base."""
    exports, work = Path(args["exports"]), Path(args["work"])
    memory_limit = args.get("memory_limit")
    program = load_program(program_path())
    pipe_db = copy_db(Path(args["base"]), work / f"pipe-{args['tag']}.duckdb")
    ref_db = copy_db(Path(args["ref_base"]), work / f"ref-{args['tag']}.duckdb")
    peak = Peak()
    out: dict = {"peak_resettable": peak.resettable}

    pipeline_steps: dict = {}
    with measured(peak, out, "pipeline") as total:
        con = _connect(pipe_db, memory_limit)
        try:
            run_steps(con, exports, DAY2, program, peak, pipeline_steps)
        finally:
            con.close()  # a checkpoint: part of the cost of durable results
    rows = pipeline_steps["ingest"]["rows"]
    # The step peaks were reset one by one: the pipeline's peak is the largest of them (and of the
    # connect/close around them, which `total` saw after the last reset).
    total.update(peak_rss_mb=max([total["peak_rss_mb"]] + [s["peak_rss_mb"] for s in pipeline_steps.values()]),
                 rows=rows, rows_per_s=round(rows / total["seconds"]), steps=pipeline_steps)

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
        remove_db(pipe_db)
    return out


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


def run_job(job, day: dt.date):
    import dagster as dg

    return job.execute_in_process(partition_key=day.isoformat(), instance=dg.DagsterInstance.ephemeral(),
                                  raise_on_error=False)


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


def dagster_run(args: dict) -> dict:
    """Day 2 through Dagster (the four processing assets + their blocking checks), timed."""
    import shutil

    folder = Path(args["work"]) / f"dagster-{args['tag']}"  # publishing writes Parquet next to the file
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    db = copy_db(Path(args["base"]), folder / "loyalty.duckdb")
    peak, out = Peak(), {}
    with measured(peak, out, "load"):  # once per code location (per run worker with `dagster dev`)
        job = asset_job(bench_resources(args, db), PROCESSING_ASSETS, "bench_processing")
    with measured(peak, out, "dagster") as m:
        result = run_job(job, DAY2)
    checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    m.update(success=result.success, load_s=out.pop("load")["seconds"],
             step_s={e.step_key: round(e.event_specific_data.duration_ms / 1000, 2)
                     for e in result.all_events if e.event_type_value == "STEP_SUCCESS"},
             checks={f"{c.asset_key.to_user_string()}:{c.check_name}": c.passed for c in checks})
    shutil.rmtree(folder, ignore_errors=True)
    return out
