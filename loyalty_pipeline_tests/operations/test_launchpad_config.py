"""Run config from the launchpad that sets a `shopimind` field keeps the key and the URL from the
environment, and the key still ends up nowhere in the instance (issue 13.10)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from loyalty_pipeline.devtools.emulator import Emulator
from loyalty_pipeline.outbound.shopimind.resources import KEY_ENV, URL_ENV, ShopiMindResource
from loyalty_pipeline_tests.harness import Pipeline, account
from loyalty_pipeline_tests.outbound.shopimind.helpers import FAST, history_keys, materialization

D1, TODAY = "2026-03-01", "2026-03-02"
SECRET = "Launchpad-Key-1a2b3c4d5e6f-7777"


def test_setting_a_shopimind_field_in_run_config_keeps_the_key_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    with Emulator(api_key=SECRET) as emulator, dg.DagsterInstance.local_temp(str(home)) as instance:
        monkeypatch.setenv(KEY_ENV, SECRET)
        monkeypatch.setenv(URL_ENV, emulator.base_url)
        pipe = Pipeline(tmp_path, today=TODAY, shopimind=ShopiMindResource.from_env())  # as deployed
        pipe.instance = instance
        pipe.write_accounts(D1, [account("C1"), account("C2", points=1500, tier="Silver")])

        launchpad = {"resources": {"shopimind": {"config": {"timeout_s": 5.0, **FAST}}}}
        result = pipe.run(D1, run_config=launchpad)

        assert materialization(result, "shopimind_accounts")["accounts/sent"] == 2
        assert materialization(result, "shopimind_setup")["destination"] == emulator.base_url
        assert not history_keys(emulator)  # a first snapshot is a baseline: no events, accounts only
        run = instance.get_run_by_id(result.run_id)
        assert run.run_config["resources"]["shopimind"]["config"]["timeout_s"] == 5.0
        logs = "\n".join(repr(entry) for entry in instance.all_logs(result.run_id))
    assert "shopimind_accounts" in logs and SECRET not in logs and SECRET not in repr(run)
    stored = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in stored)  # the run and event-log storage files
    assert not [p for p in stored if SECRET.encode() in p.read_bytes()]
