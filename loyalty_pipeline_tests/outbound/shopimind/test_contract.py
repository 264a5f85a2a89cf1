"""Every request the pipeline sends fits ShopiMind's declared contract (the SDK's request types), checked by
the strict emulator over several days of real Dagster runs; a member ShopiMind cannot be addressed for is
not sent an event at all."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from loyalty_pipeline.devtools.emulator import Emulator
from loyalty_pipeline.outbound.shopimind.assets import dry_run_config
from loyalty_pipeline.outbound.shopimind.models import LOYALTY_ACCOUNT
from loyalty_pipeline_tests.harness import account, day
from loyalty_pipeline_tests.outbound.shopimind.helpers import (
    TRIGGER_ROUTE,
    delivery_pipeline,
    history_keys,
    materialization,
    run_until_settled,
)

pytestmark = pytest.mark.real  # long scenario: several days through Dagster against the emulator

D1, D2, D3, D4 = (day(n) for n in range(4))
CUSTOMER_KEY_FIELD = "customer_id"  # the field each record carries for its member
TODAY = day(4)  # every day here is recent enough for its events to be sent


def test_a_multi_day_run_sends_nothing_the_strict_api_refuses(tmp_path: Path, emulator: Emulator):
    # The shop's LoyaltyAccount was declared by hand from the seed, then deactivated: setup lists it, extends
    # it with the customer key and reactivates it.
    seed = LOYALTY_ACCOUNT.model_dump()
    seed["fields"] = [f for f in seed["fields"] if f["name"] != CUSTOMER_KEY_FIELD]
    api = httpx.Client(base_url=f"{emulator.base_url}/v1", headers={"spm-api-key": emulator.api_key})
    with api:
        id_definition = api.post("/custom-data-definitions", json=seed).json()["data"]["id_definition"]
        api.patch(f"/custom-data-definitions/{id_definition}/deactivate").raise_for_status()

    members = [f"M{i:02}" for i in range(30)]
    no_email = {"email": ""}
    pipe = delivery_pipeline(tmp_path, emulator, today=TODAY, batch_size=7)
    pipe.write_accounts(D1, [account(m, **(no_email if m == "M29" else {})) for m in members])

    def day_rows(n: int) -> list[dict]:
        rows = []
        for i, m in enumerate(members):
            if 12 <= i <= 14:  # gone for good from D2
                continue
            if i == 11 or (i == 10 and n < 4):  # opted out from D2; M10 comes back on D4
                rows.append(account(m, enrolled="false"))
                continue
            points = 100 + (1200 * n if i < 10 else 50 * n if i == 29 else 0)
            rows.append(account(m, points=points, tier="Silver" if points >= 1000 else "Bronze",
                                **(no_email if i == 29 else {})))
        return rows

    for n, d in ((2, D2), (3, D3), (4, D4)):
        pipe.write_accounts(d, day_rows(n))
    pipe.run(D1)
    emulator.configure(lose_response_rate=0.3, seed=3)  # lost answers: saves and deletes resent, triggers reconciled
    for d in (D2, D3, D4):
        run_until_settled(pipe, d)
    emulator.configure(lose_response_rate=0)

    requests = emulator.state()["requests"]
    refused = {route: c["statuses"] for route, c in requests.items() if set(c["statuses"]) - {"200"}}
    assert refused == {}
    for route in ("GET /v1/custom-data-definitions", "PATCH /v1/custom-data-definitions/{id}/extend",
                  "PATCH /v1/custom-data-definitions/{id}/activate", "POST /v1/events",
                  "POST /v1/custom-data-records/{id}", "GET /v1/custom-data-records/{id}",
                  "POST /v1/custom-data-records/{id}/bulk-delete", TRIGGER_ROUTE, "GET /v1/events/histories"):
        assert requests[route]["total"] > 0, route
    assert sum(c["lost"] for c in requests.values()) > 0
    # What ShopiMind holds: exactly the enrolled members, each once, M10 written again after coming back.
    [definition] = emulator.state()["definitions"]
    assert definition["id_definition"] == id_definition and definition["status"] == "active"
    held = sorted(r[CUSTOMER_KEY_FIELD] for r in emulator.state()["records"][str(id_definition)])
    assert held == sorted(set(members) - {"M11", "M12", "M13", "M14"})
    # M29's events were never sent: no email, no phone.
    unaddressable = pipe.query("SELECT key FROM delivery_state WHERE status = 'unaddressable'")
    assert unaddressable and not {k for (k,) in unaddressable} & set(history_keys(emulator))


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
