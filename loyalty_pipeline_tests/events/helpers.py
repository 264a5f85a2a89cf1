"""Expected events, written out by hand: key, type, customer and metadata."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from loyalty_pipeline_tests.harness import DEFAULT_PROGRAM, Pipeline

ACTIVITY_HEADER = ["customer_id", "occurred_at", "points", "reason"]


def key(code_name: str, customer_id: str, day: str, discriminator: str = "") -> str:
    """The documented event key, computed independently of the SQL."""
    return hashlib.sha256(f"{code_name}|{customer_id}|{day}|{discriminator}".encode()).hexdigest()


def ev(day: str, code_name: str, customer_id: str, discriminator: str = "", **metadata) -> tuple:
    return (key(code_name, customer_id, day, discriminator), code_name, customer_id,
            json.dumps(metadata, sort_keys=True))


def events(pipeline: Pipeline, day: str) -> set[tuple]:
    rows = pipeline.query(
        "SELECT event_key, code_name, customer_id, metadata FROM loyalty_events WHERE snapshot_date = $day",
        {"day": day})
    found = {(k, code, cust, json.dumps(json.loads(md), sort_keys=True)) for k, code, cust, md in rows}
    assert len(found) == len(rows), "an event is stored twice"
    return found


def statuses(pipeline: Pipeline, day: str) -> dict[str, int]:
    return dict(pipeline.query(
        "SELECT status, count(*) FROM loyalty_events WHERE snapshot_date = $day GROUP BY ALL", {"day": day}))


def program_file(tmp_path: Path, **changes) -> Path:
    """The default program with some keys changed, written next to the test's data."""
    program = yaml.safe_load(DEFAULT_PROGRAM.read_text())
    program.update(changes)
    path = tmp_path / "program.yaml"
    path.write_text(yaml.safe_dump(program))
    return path
