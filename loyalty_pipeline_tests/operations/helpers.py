"""Helpers for the operations tests: a program.yaml with other operations settings, run results."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml

from loyalty_pipeline_tests.harness import DEFAULT_PROGRAM


def program_with(tmp_path: Path, **operations) -> Path:
    """data/program.yaml with some `operations` keys changed."""
    program = yaml.safe_load(DEFAULT_PROGRAM.read_text())
    program["operations"] = {**program.get("operations", {}), **operations}
    path = tmp_path / "program.yaml"
    path.write_text(yaml.safe_dump(program, sort_keys=False))
    return path


def checks_of(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
