"""The project's Dagster instance file: rewritten when it is ours and out of date, never when hand-made."""

from __future__ import annotations

from pathlib import Path

import pytest

from loyalty_pipeline.operations.instance import DAGSTER_YAML, dagster_home


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    return tmp_path


def test_ours_is_rewritten_even_when_written_where_the_module_used_to_be(home: Path):
    # What loyalty_pipeline/instance.py wrote before the module moved to operations/.
    (home / "dagster.yaml").write_text("# Written by loyalty_pipeline/instance.py. One slot per pool.\nold: true\n")
    dagster_home()
    assert (home / "dagster.yaml").read_text() == DAGSTER_YAML


def test_a_hand_made_one_is_kept(home: Path):
    (home / "dagster.yaml").write_text("# mine\ntelemetry:\n  enabled: true\n")
    dagster_home()
    assert (home / "dagster.yaml").read_text() == "# mine\ntelemetry:\n  enabled: true\n"


def test_a_missing_one_is_written(home: Path):
    dagster_home()
    assert (home / "dagster.yaml").read_text() == DAGSTER_YAML
