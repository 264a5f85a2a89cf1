"""Dry runs, missing credentials and secrecy of the API key (DESIGN invariants 11 and 12)."""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
import pytest

from loyalty_pipeline.devtools.emulator import Emulator
from loyalty_pipeline.outbound.shopimind.assets import dry_run_config
from loyalty_pipeline.outbound.shopimind.resources import KEY_ENV, URL_ENV, ShopiMindConfigError, ShopiMindResource
from loyalty_pipeline_tests.harness import Pipeline, account, failure_messages
from loyalty_pipeline_tests.outbound.shopimind.helpers import delivery_pipeline, history_keys, materialization

pytestmark = pytest.mark.real  # long scenario: several days through Dagster against the emulator

D1, D2, TODAY = "2026-03-01", "2026-03-02", "2026-03-03"
DELIVERY_TABLES = ("shopimind_setup", "delivery_state", "sync_log", "account_sync_state")


def two_days(pipe: Pipeline) -> None:
    pipe.write_accounts(D1, [account("C1", points=900), account("C2"), account("C3")])
    pipe.write_accounts(D2, [account("C1", points=1400, tier="Silver"), account("C2", points=180), account("C3")])


def delivery_tables(pipe: Pipeline) -> dict[str, list[tuple]]:
    return {t: pipe.query(f"SELECT * FROM {t} ORDER BY ALL") for t in DELIVERY_TABLES}


def observation(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = [e for e in result.get_asset_observation_events() if e.asset_key.to_user_string() == asset]
    return {k: v.value for k, v in event.asset_observation_data.asset_observation.metadata.items()}


def test_a_dry_run_reports_what_would_be_sent_sends_nothing_and_changes_no_state(tmp_path: Path,
                                                                                  emulator: Emulator):
    pipe = delivery_pipeline(tmp_path, emulator, today=TODAY)
    two_days(pipe)
    pipe.run(D1)
    before, requests = delivery_tables(pipe), emulator.state()["requests"]

    dry = pipe.run(D2, run_config=dry_run_config())
    assert emulator.state()["requests"] == requests  # not one request, not even a GET
    assert delivery_tables(pipe) == before
    accounts, events = observation(dry, "shopimind_accounts"), observation(dry, "shopimind_events")
    assert (accounts["dry_run"], accounts["accounts/to_send"], accounts["accounts/unchanged"]) == (True, 2, 1)
    assert '"value": "C1"' in accounts["samples"] and '"tier": "Silver"' in accounts["samples"]
    to_send = events["events/to_send"]
    assert to_send == pipe.query("SELECT count(*) FROM loyalty_events WHERE snapshot_date = $d "
                                 "AND status = 'pending'", {"d": D2})[0][0] > 0
    assert '"event_key"' in events["samples"]
    # Observed, not materialized: the UI does not show D2 as delivered.
    assert not [e for e in dry.get_asset_materialization_events() if "shopimind" in e.asset_key.to_user_string()]

    real = pipe.run(D2)
    assert materialization(real, "shopimind_events")["events/sent"] == to_send
    assert materialization(real, "shopimind_accounts")["accounts/sent"] == 2


def test_a_dry_run_needs_no_key(tmp_path: Path):
    pipe = Pipeline(tmp_path, today=TODAY, shopimind=ShopiMindResource())
    two_days(pipe)
    result = pipe.run(D1, run_config=dry_run_config())
    assert observation(result, "shopimind_accounts")["accounts/to_send"] == 3
    assert pipe.query("SELECT count(*) FROM delivery_state") == [(0,)]


def test_without_a_key_the_outbound_assets_fail_saying_how_to_fix_it(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    pipe = Pipeline(tmp_path, today=TODAY, shopimind=ShopiMindResource.from_env())
    two_days(pipe)
    result = pipe.run(D1, expect_success=False)
    assert not result.success
    failures = {e.step_key: e.step_failure_data.error.message for e in result.all_events if e.is_step_failure}
    assert set(failures) == {"shopimind_setup", "shopimind_accounts", "shopimind_events"}
    for message in failures.values():
        assert "SHOPIMIND_API_KEY is not set, so nothing can be delivered" in message
        assert "loyalty-devtools emulator" in message and "SHOPIMIND_BASE_URL=http://127.0.0.1:8765" in message
    # Ingest is not held hostage by the missing key; nothing ShopiMind-side claims to be done.
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"loyalty_snapshot", "loyalty_events"} <= done and not {a for a in done if "shopimind" in a}


@pytest.mark.parametrize("key", ["not a key!", "a-good-looking-key-0123456789\n"])  # a key file's newline
def test_a_malformed_key_is_refused_without_being_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str):
    monkeypatch.setenv(KEY_ENV, key)
    pipe = Pipeline(tmp_path, today=TODAY, shopimind=ShopiMindResource.from_env())
    two_days(pipe)
    message = failure_messages(pipe.run(D1, expect_success=False))
    assert "does not look like a ShopiMind API key" in message and key.strip() not in message


def test_the_key_never_appears_in_logs_metadata_errors_or_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    secret, wrong = "Secret-Key-9f8e7d6c5b4a-0000", "Wrong-Key-0a1b2c3d4e5f-9999"
    records: list[str] = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = lambda record: records.append(logging.Formatter().format(record))  # message + traceback
    logging.getLogger().addHandler(handler)
    previous_level = logging.getLogger().level
    logging.getLogger().setLevel(logging.DEBUG)
    try:
        with Emulator(api_key=secret, error_rate=0.3, lose_response_rate=0.2, seed=5) as emu:
            monkeypatch.setenv(KEY_ENV, secret)
            pipe = delivery_pipeline(tmp_path, emu, today=TODAY, max_retries=1)
            two_days(pipe)
            results = [pipe.run(day, expect_success=False) for day in (D1, D2, D2, D2)]
            monkeypatch.setenv(KEY_ENV, wrong)  # a rejected key: the 401 path, its error and logs
            # (D2 is finished, which makes no request: `force` has setup check ShopiMind with the key)
            force = {"ops": {"shopimind_setup": {"config": {"force": True}}}}
            results.append(pipe.run(D2, run_config=force, expect_success=False))
            base_url = emu.base_url
            assert history_keys(emu)  # deliveries did happen with the right key
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(previous_level)
    assert "401" in failure_messages(results[-1])

    seen: list[str] = [*records, *(failure_messages(r) for r in results)]
    for run in pipe.instance.get_runs():
        seen += [repr(run), repr(pipe.instance.get_job_snapshot(run.job_snapshot_id))]
        seen += [repr(entry) for entry in pipe.instance.all_logs(run.run_id)]
    for table in [t for (t,) in pipe.query("SELECT table_name FROM information_schema.tables")]:
        seen.append(repr(pipe.query(f"SELECT * FROM {table}")))
    seen += [repr(ShopiMindResource.from_env()), str(ShopiMindResource(api_key=secret))]
    blob = "\n".join(seen)
    assert base_url in blob and "shopimind_events" in blob and "spm-api-key" not in blob.lower()
    assert secret not in blob and wrong not in blob
    assert secret.encode() not in pipe.warehouse.read_bytes()


def test_an_api_root_carrying_credentials_is_refused_without_being_shown(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(KEY_ENV, "a-good-looking-key-0123456789")
    monkeypatch.setenv(URL_ENV, "https://shop:hunter2-secret@core.shopimind.com")
    with pytest.raises(ShopiMindConfigError) as info:
        ShopiMindResource.from_env().check()
    assert "carries credentials" in str(info.value) and "hunter2" not in str(info.value)
