"""Helpers for the source-adapter tests: a program.yaml per platform, JSON Lines files, outcomes."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import yaml

from loyalty_pipeline.ingest.files import ExportError
from loyalty_pipeline.ingest.steps import ingest_export
from loyalty_pipeline.program import load_program
from loyalty_pipeline.snapshots.steps import build_snapshot
from loyalty_pipeline.warehouse.connection import connect
from loyalty_pipeline_tests.harness import DEFAULT_PROGRAM, Pipeline

FIXTURES = Path(__file__).parent / "fixtures"


def program_for(tmp_path: Path, platform: str, operations: dict | None = None, **source) -> Path:
    """data/program.yaml read from `platform`'s export (+ other `source` keys, and `operations` ones)."""
    program = yaml.safe_load(DEFAULT_PROGRAM.read_text())
    program["source"] = {**program.get("source", {}), "platform": platform, **source}
    program["operations"] = {**program.get("operations", {}), **(operations or {})}
    path = tmp_path / f"program-{platform}.yaml"
    path.write_text(yaml.safe_dump(program, sort_keys=False, allow_unicode=True))
    return path


def platform_pipeline(root: Path, platform: str, operations: dict | None = None, today: str | None = None,
                      **source) -> Pipeline:
    root.mkdir(parents=True, exist_ok=True)
    return Pipeline(root, program_path=program_for(root, platform, operations, **source), today=today)


def write_jsonl(pipeline: Pipeline, day: str, records: list, name: str = "accounts.jsonl") -> Path:
    """One JSON text per record; a str record is written as is (a broken line)."""
    path = pipeline.exports / day / name
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def counts(pipeline: Pipeline, day: str) -> tuple[int, int, int]:
    """(raw rows, snapshot rows, quarantined rows) of the day."""
    return pipeline.query(
        "SELECT (SELECT count(*) FROM raw_accounts WHERE snapshot_date = $d), "
        "(SELECT count(*) FROM snapshots WHERE snapshot_date = $d), "
        "(SELECT count(*) FROM quarantine WHERE snapshot_date = $d AND kind = 'accounts')",
        {"d": day})[0]


@dataclass
class Day:
    """What the ingest and snapshot steps made of a day: done, or the message the day failed with."""

    success: bool
    message: str = ""  # the ExportError: what loyalty_export / loyalty_snapshot fail the run with
    stats: dict = field(default_factory=dict)  # build_snapshot's


def ingest_day(pipeline: Pipeline, day: str) -> Day:
    """The steps of loyalty_export and loyalty_snapshot called directly on the pipeline's DuckDB file, as the
    assets call them, without a Dagster run: for tests about what a file becomes (run_ingest has the checks)."""
    program, date = load_program(pipeline.program_path), dt.date.fromisoformat(day)
    con = connect(pipeline.warehouse)
    try:
        ingest_export(con, pipeline.exports, date, program)
        return Day(success=True, stats=build_snapshot(con, date, program))
    except ExportError as exc:
        return Day(success=False, message=str(exc))
    finally:
        con.close()


def run_ingest(pipeline: Pipeline, day: str) -> dg.ExecuteInProcessResult:
    """The real daily job, limited to loyalty_export + loyalty_snapshot (and their checks)."""
    job = pipeline.defs.resolve_job_def("daily_job")
    return job.execute_in_process(partition_key=day, instance=pipeline.instance, raise_on_error=False,
                                  asset_selection=[dg.AssetKey("loyalty_export"), dg.AssetKey("loyalty_snapshot")])


def run_with_tags(pipeline: Pipeline, day: str, tags: dict) -> dg.ExecuteInProcessResult:
    """The daily job without the ShopiMind assets (no API key in tests), with run tags."""
    job = pipeline.defs.resolve_job_def("daily_job")
    graph = pipeline.defs.resolve_asset_graph()
    selection = list((dg.AssetSelection.all() - dg.AssetSelection.groups("shopimind")).resolve(graph)
                     & job.asset_layer.executable_asset_keys)
    return job.execute_in_process(partition_key=day, instance=pipeline.instance, tags=tags,
                                  raise_on_error=False, asset_selection=selection)


def derived_tables(con) -> dict[str, list[tuple]]:
    """What the days made of an export, sorted, without file lineage (so that two ways of delivering the
    same objects compare equal): snapshots, quarantine, deltas, events."""
    def rows(sql: str) -> list[tuple]:
        return con.execute(sql + " ORDER BY ALL").fetchall()
    return {
        "snapshots": rows("SELECT * EXCLUDE (source_file, source_line) FROM snapshots"),
        "quarantine": rows("SELECT snapshot_date, customer_id, field, value, reason FROM quarantine"),
        "account_deltas": rows("SELECT * FROM account_deltas"),
        "events": rows("SELECT snapshot_date, code_name, customer_id, metadata::VARCHAR, status FROM loyalty_events"),
    }
