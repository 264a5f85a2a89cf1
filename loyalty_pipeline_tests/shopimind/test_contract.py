"""Every request the pipeline sends fits ShopiMind's declared contract (the SDK's request types): a member
ShopiMind cannot be addressed for is not sent an event at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loyalty_pipeline.defs.shopimind.assets import dry_run_config
from loyalty_pipeline.defs.shopimind.resources import KEY_ENV
from loyalty_pipeline.shopimind.emulator import Emulator
from loyalty_pipeline_tests.harness import account, day
from loyalty_pipeline_tests.shopimind.helpers import (
    delivery_pipeline,
    history_keys,
    materialization,
)

D1, D2, D3, D4 = (day(n) for n in range(4))
TODAY = day(4)  # every day here is recent enough for its events to be sent


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with Emulator() as emu:
        monkeypatch.setenv(KEY_ENV, emu.api_key)
        yield emu


def test_an_event_for_a_member_without_email_is_unaddressable_recorded_and_never_sent(tmp_path: Path,
                                                                                      emulator: Emulator):
    pipe = delivery_pipeline(tmp_path, emulator, today=TODAY)
    pipe.write_accounts(D1, [account("A"), account("F", email="")])
    pipe.write_accounts(D2, [account("A", points=150), account("F", points=150, email="")])
    pipe.run(D1)
    dry = pipe.run(D2, run_config=dry_run_config())
    [event] = [e for e in dry.get_asset_observation_events() if e.asset_key.to_user_string() == "shopimind_events"]
    observed = {k: v.value for k, v in event.asset_observation_data.asset_observation.metadata.items()}
    assert (observed["events/to_send"], observed["events/unaddressable"]) == (1, 1)

    meta = materialization(pipe.run(D2), "shopimind_events")
    assert (meta["events/sent"], meta["events/unaddressable"], meta["by_type/unaddressable/loyalty.points_earned"]
            ) == (1, 1, 1)
    [(key, status, error, attempts)] = pipe.query(
        "SELECT key, status, error, attempts FROM delivery_state WHERE kind = 'event' AND customer_id = 'F'")
    assert (status, error, attempts) == ("unaddressable", "no email or phone to address the contact by", 0)
    assert key not in history_keys(emulator) and len(history_keys(emulator)) == 1  # A's only
    assert materialization(pipe.run(D2), "shopimind_events")["events/unaddressable"] == 1  # still counted...
    assert pipe.query("SELECT count(*) FROM sync_log WHERE key = $k", {"k": key}) == [(1,)]  # ...recorded once
    assert len(history_keys(emulator)) == 1
