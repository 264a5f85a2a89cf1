"""ShopiMind delivery through the real daily job, over real HTTP to the emulator on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest

from loyalty_pipeline.devtools.emulator import Emulator
from loyalty_pipeline.devtools.sample.generator import generate_sample
from loyalty_pipeline.outbound.core.ledger import replay
from loyalty_pipeline.outbound.shopimind import setup as bootstrap  # not setup_module: a pytest hook name
from loyalty_pipeline.outbound.shopimind.assets import event_types
from loyalty_pipeline.program import load_program
from loyalty_pipeline.warehouse.connection import connect
from loyalty_pipeline_tests.harness import DEFAULT_PROGRAM, Pipeline, account, failure_messages, table_rows
from loyalty_pipeline_tests.outbound.shopimind.helpers import (
    RECORDS_ROUTE,
    TRIGGER_ROUTE,
    delivery_pipeline,
    expected_records,
    history_keys,
    materialization,
    pending_keys,
    records_by_customer,
    route_calls,
    run_until_settled,
)

pytestmark = pytest.mark.real  # long scenario: several days through Dagster against the emulator

D1, D2, D3 = "2026-03-01", "2026-03-02", "2026-03-03"
TODAY = "2026-03-04"  # every day here is recent enough for its events to be sent


def test_happy_path_over_the_sample_program(tmp_path: Path, emulator: Emulator):
    end = dt.date(2026, 3, 4)
    pipe = delivery_pipeline(tmp_path, emulator, today="2026-03-05")
    generate_sample(pipe.exports, members=400, days=4, end=end, seed=7, program=load_program(DEFAULT_PROGRAM))
    days = [(end - dt.timedelta(days=n)).isoformat() for n in (3, 2, 1, 0)]
    for day in days:
        pipe.run(day)
    # One LoyaltyAccount per enrolled member with the newest state. Members who opted out lost theirs;
    # only members missing from fewer than removal_grace_days exports may still hold one.
    held = records_by_customer(emulator)
    newest = expected_records(pipe, days[-1])
    assert {c: held[c] for c in newest} == newest
    assert all(len(rows) == 1 for rows in held.values())
    not_enrolled = {c for (c,) in pipe.query("SELECT customer_id FROM snapshots WHERE snapshot_date = $d "
                                             "AND NOT enrolled", {"d": days[-1]})}
    assert not_enrolled and not not_enrolled & set(held)
    # Exactly the pending events of loyalty_events, each once; none of the stale baseline ones.
    pending = pending_keys(pipe)
    assert len(pending) > 20 and set(pending.values()) == {1}
    assert history_keys(emulator) == pending
    states = dict(pipe.query("SELECT status, count(*) FROM delivery_state WHERE kind = 'event' GROUP BY ALL"))
    assert states == {"sent": len(pending), **({"suppressed_stale": states["suppressed_stale"]}
                                               if "suppressed_stale" in states else {})}


def test_rerunning_sends_nothing_new_and_an_old_day_never_regresses(tmp_path: Path, emulator: Emulator):
    pipe = delivery_pipeline(tmp_path, emulator, today=TODAY)
    pipe.write_accounts(D1, [account("C1", points=900), account("C2", points=100)])
    pipe.write_accounts(D2, [account("C1", points=1200, tier="Silver"), account("C2", points=100)])
    pipe.write_accounts(D3, [account("C1", points=1300, tier="Silver"), account("C2", points=300)])
    pipe.run(D1)
    pipe.run(D3)  # D2 arrives late
    after_d3 = records_by_customer(emulator)
    assert after_d3["C1"] == [(1300, "Silver", "2026-01-01", None, None)]
    calls = (route_calls(emulator, RECORDS_ROUTE), route_calls(emulator, TRIGGER_ROUTE))

    late = pipe.run(D2)  # an older day after a newer one: no account state, only its own events
    accounts = materialization(late, "shopimind_accounts")
    assert (accounts["accounts/suppressed_stale"], accounts["accounts/sent"]) == (2, 0)  # both differ from D3
    assert records_by_customer(emulator) == after_d3
    assert route_calls(emulator, RECORDS_ROUTE) == calls[0]
    d2_events = pipe.query("SELECT count(*) FROM loyalty_events WHERE snapshot_date = $d", {"d": D2})[0][0]
    assert d2_events > 0 and route_calls(emulator, TRIGGER_ROUTE) == calls[1] + d2_events

    calls = (route_calls(emulator, RECORDS_ROUTE), route_calls(emulator, TRIGGER_ROUTE))
    for day in (D3, D1, D2):  # re-materializing any partition sends nothing new
        result = pipe.run(day)
        assert materialization(result, "shopimind_events")["events/sent"] == 0
    assert (route_calls(emulator, RECORDS_ROUTE), route_calls(emulator, TRIGGER_ROUTE)) == calls
    # Each key once. (Re-running D3 after the late D2 re-based its deltas: D3's tier_upgraded, already
    # sent, is now derived on D2 with another key; the sent one stays sent and is not "unsent".)
    keys = history_keys(emulator)
    assert set(keys.values()) == {1} and set(pending_keys(pipe)) <= set(keys)
    # The sync log kept every attempt; nothing was deleted by the re-runs.
    assert pipe.query("SELECT count(*) FROM sync_log")[0][0] == pipe.query(
        "SELECT sum(attempts) FROM delivery_state")[0][0]


def test_faults_end_sent_after_reruns_with_no_duplicate_event(tmp_path: Path, emulator: Emulator):
    members = [f"M{i:03}" for i in range(60)]
    # The client paces itself just under the shop's limit; its bursts still draw a 429 storm.
    pipe = delivery_pipeline(tmp_path, emulator, today=TODAY, max_retries=2, concurrency=6,
                             requests_per_second=45)
    pipe.write_accounts(D1, [account(m, points=100) for m in members])
    pipe.write_accounts(D2, [account(m, points=160 + i) for i, m in enumerate(members)])
    emulator.configure(rate_limit_rps=50, rate_limit_burst=3, error_rate=0.2, lose_response_rate=0.15, seed=11)
    runs = run_until_settled(pipe, D1) + run_until_settled(pipe, D2)
    emulator.configure(rate_limit_rps=0, error_rate=0, lose_response_rate=0)

    assert records_by_customer(emulator) == expected_records(pipe, D2)
    keys = history_keys(emulator)
    assert len(keys) == len(members) and set(keys.values()) == {1}  # zero duplicates
    assert keys == pending_keys(pipe)
    assert pipe.query("SELECT DISTINCT status FROM delivery_state") == [("sent",)]
    # The faults did happen, and were survived rather than avoided.
    statuses = {s for route in emulator.state()["requests"].values() for s in route["statuses"]}
    assert {"429", "500", "502", "503"} & statuses and "429" in statuses
    lost = sum(route["lost"] for route in emulator.state()["requests"].values())
    notes = dict(pipe.query("SELECT note, count(*) FROM sync_log WHERE note LIKE 'reconciled%' GROUP BY ALL"))
    assert lost > 0 and notes.get("reconciled: found in event histories", 0) > 0
    assert runs >= 2


def test_invalid_records_are_rejected_with_the_api_message_and_the_rest_of_the_batch_is_stored(
        tmp_path: Path, emulator: Emulator):
    emulator.configure(strict_contacts=True)  # only known contacts resolve
    emulator.seed_contacts([{"id_customer": c} for c in ("C1", "C2", "C4")])
    pipe = delivery_pipeline(tmp_path, emulator, today=TODAY)
    pipe.write_accounts(D1, [account(c) for c in ("C1", "C2", "C3", "C4")])
    result = pipe.run(D1)
    assert materialization(result, "shopimind_accounts")["accounts/rejected"] == 1
    assert sorted(records_by_customer(emulator)) == ["C1", "C2", "C4"]
    assert pipe.query("SELECT key, status, http_status, error FROM delivery_state WHERE status <> 'sent'") == [
        ("C3", "rejected", 200, "contact_id: contact not found (id_customer=C3)")]
    log = pipe.query("SELECT key, status, error, attempt FROM sync_log WHERE key = 'C3'")
    assert log == [("C3", "rejected", "contact_id: contact not found (id_customer=C3)", 1)]

    calls = route_calls(emulator, RECORDS_ROUTE)
    again = pipe.run(D1)  # the same refused values are not retried blindly
    assert materialization(again, "shopimind_accounts")["accounts/rejected_unchanged"] == 1
    assert route_calls(emulator, RECORDS_ROUTE) == calls

    emulator.seed_contacts([{"id_customer": "C3"}])  # ops fix the cause, then replay
    con = connect(pipe.warehouse)
    try:
        assert replay(con, kind="account") == 1
    finally:
        con.close()
    pipe.run(D1)
    assert sorted(records_by_customer(emulator)) == ["C1", "C2", "C3", "C4"]
    assert pipe.query("SELECT status, attempts FROM delivery_state WHERE key = 'C3'") == [("sent", 2)]


def test_a_batch_the_api_finds_too_large_is_split(tmp_path: Path, emulator: Emulator):
    emulator.configure(max_records_per_call=7)  # the docs disagree on 20 vs 50; this shop says 7
    pipe = delivery_pipeline(tmp_path, emulator, today=TODAY, batch_size=20)
    pipe.write_accounts(D1, [account(f"C{i:02}") for i in range(30)])
    result = pipe.run(D1)
    meta = materialization(result, "shopimind_accounts")
    assert (meta["accounts/sent"], meta["accounts/rejected"]) == (30, 0)
    assert meta["batch_size"] <= 7
    assert len(records_by_customer(emulator)) == 30
    assert emulator.state()["requests"][RECORDS_ROUTE]["statuses"]["400"] >= 1


# -- the setup cache: a finished day makes no request; a gone bootstrap is set up again ----------------

def requests_now(emulator: Emulator) -> dict:
    """The emulator's per-route request counters, as GET /_emulator/state serves them."""
    return httpx.get(f"{emulator.base_url}/_emulator/state").json()["requests"]


def moved(before: dict, after: dict) -> dict[str, int]:
    """Routes whose request counter moved, and by how much."""
    grew = {route: c["total"] - before.get(route, {}).get("total", 0) for route, c in after.items()}
    return {route: n for route, n in grew.items() if n}


def delete_definition(emulator: Emulator, id_definition: int) -> None:
    httpx.delete(f"{emulator.base_url}/v1/custom-data-definitions/{id_definition}",
                 headers={"spm-api-key": emulator.api_key}).raise_for_status()


def live_records(emulator: Emulator) -> dict[str, tuple]:
    """The active LoyaltyAccount definition's rows per shop customer id."""
    state = emulator.state()
    [live] = [d for d in state["definitions"] if d["status"] == "active"]
    customers = {c["id_contact"]: c.get("id_customer") for c in state["contacts"]}
    return {customers[r["contact_id"]]: (r["points_balance"], r["tier"])
            for r in state["records"][str(live["id_definition"])]}


def two_days(pipe) -> None:
    pipe.write_accounts(D1, [account("C1", points=900), account("C2", points=100), account("C3")])
    pipe.write_accounts(D2, [account("C1", points=1200, tier="Silver"), account("C2", points=150), account("C3")])


def test_a_finished_day_makes_no_request_and_a_new_day_only_records_and_triggers(tmp_path: Path,
                                                                                  emulator: Emulator):
    pipe = delivery_pipeline(tmp_path, emulator, today=TODAY)
    two_days(pipe)
    pipe.run(D1)  # a new destination: set up once, by whichever ShopiMind asset runs first
    after_d1 = requests_now(emulator)
    types = event_types(load_program(DEFAULT_PROGRAM))
    assert after_d1["POST /v1/custom-data-definitions"]["total"] == 1
    assert after_d1["POST /v1/events"]["total"] == len(types)  # each type declared once, not once per asset
    assert pipe.query("SELECT count(*) FROM shopimind_setup WHERE definition_hash IS NOT NULL") == [(1,)]

    second = pipe.run(D2)  # changes: only what changed goes out, no setup request at all
    after_d2 = requests_now(emulator)
    d2_events = pipe.query("SELECT count(*) FROM loyalty_events WHERE snapshot_date = $d AND status = 'pending'",
                           {"d": D2})[0][0]
    assert d2_events > 0
    assert moved(after_d1, after_d2) == {RECORDS_ROUTE: 1, TRIGGER_ROUTE: d2_events}  # C1 and C2 in one batch
    for asset in ("shopimind_setup", "shopimind_accounts", "shopimind_events"):
        assert materialization(second, asset)["setup"] == "cached"

    for day in (D1, D2):  # both finished days again, through the real job: not one request
        result = pipe.run(day)
        for asset in ("shopimind_accounts", "shopimind_events"):
            meta = materialization(result, asset)
            assert (meta["setup"], meta["http/requests"]) == ("not needed (nothing to send)", 0)
    assert requests_now(emulator) == after_d2


@pytest.mark.parametrize("gone", ["definition deleted", "emulator reset"])
def test_a_bootstrap_gone_between_runs_is_set_up_again_and_the_day_delivered(tmp_path: Path, emulator: Emulator,
                                                                              gone: str):
    pipe = delivery_pipeline(tmp_path, emulator, today=TODAY)
    two_days(pipe)
    pipe.run(D1)
    [definition] = emulator.state()["definitions"]
    if gone == "definition deleted":
        delete_definition(emulator, definition["id_definition"])
    else:
        emulator.reset()  # as restarted: nothing declared, nothing held, ids from 1 again

    result = pipe.run(D2)
    accounts, events = materialization(result, "shopimind_accounts"), materialization(result, "shopimind_events")
    assert (accounts["setup/healed"], accounts["accounts/sent"], accounts["accounts/failed"]) == (1, 2, 0)
    assert accounts["setup"].startswith("cached → set up: definition created")
    assert events["setup/healed"] == (1 if gone == "emulator reset" else 0)
    state = emulator.state()
    [live] = [d for d in state["definitions"] if d["status"] == "active"]
    assert pipe.query("SELECT definition_id FROM shopimind_setup") == [(live["id_definition"],)]
    assert live_records(emulator) == {"C1": (1200, "Silver"), "C2": (150, "Bronze")}
    d2_keys = {k for (k,) in pipe.query("SELECT event_key FROM loyalty_events WHERE snapshot_date = $d "
                                        "AND status = 'pending'", {"d": D2})}
    assert d2_keys and d2_keys <= set(history_keys(emulator)) and set(history_keys(emulator).values()) == {1}
    assert pipe.query("SELECT DISTINCT status FROM delivery_state WHERE snapshot_date = $d", {"d": D2}) == [("sent",)]
    # The records were refused once (400, not rejected), then sent.
    assert state["requests"][RECORDS_ROUTE]["statuses"]["400"] == 1

    before = requests_now(emulator)
    pipe.run(D2)  # healed: the finished day is quiet again
    assert requests_now(emulator) == before


def test_a_definition_deleted_again_during_the_retry_fails_the_run_clearly(tmp_path: Path, emulator: Emulator,
                                                                           monkeypatch: pytest.MonkeyPatch):
    pipe = delivery_pipeline(tmp_path, emulator, today=TODAY)
    two_days(pipe)
    pipe.run(D1)
    delete_definition(emulator, emulator.state()["definitions"][0]["id_definition"])
    real = bootstrap.ensure_definition

    def set_up_then_deleted(client, *args, **kwargs):
        id_definition, action = real(client, *args, **kwargs)
        delete_definition(emulator, id_definition)  # gone again before the retry lands
        return id_definition, action

    monkeypatch.setattr(bootstrap, "ensure_definition", set_up_then_deleted)
    result = pipe.run(D2, expect_success=False)
    failures = {e.step_key: e.step_failure_data.error.message for e in result.all_events if e.is_step_failure}
    assert set(failures) == {"shopimind_accounts"}, failure_messages(result)
    assert ("Custom data definition not found: the LoyaltyAccount definition is still refused after setup was "
            "re-run in this run") in failures["shopimind_accounts"]
    state = emulator.state()
    assert state["requests"]["POST /v1/custom-data-definitions"]["total"] == 2  # D1's, and one re-run: no loop
    assert state["requests"][RECORDS_ROUTE]["statuses"] == {"200": 1, "400": 2}  # D1; D2 and its one retry
    # Failed, never rejected (retried by the next run): each tried twice on D2 (after once on D1).
    assert pipe.query("SELECT key, status, attempts FROM delivery_state WHERE kind = 'account' "
                      "AND snapshot_date = $d ORDER BY key", {"d": D2}) == [("C1", "failed", 3), ("C2", "failed", 3)]

    monkeypatch.setattr(bootstrap, "ensure_definition", real)
    again = pipe.run(D2)  # the next run sets it up again and delivers
    assert materialization(again, "shopimind_accounts")["accounts/sent"] == 2
    assert live_records(emulator) == {"C1": (1200, "Silver"), "C2": (150, "Bronze")}


def test_a_record_that_cannot_be_built_is_rejected_with_its_key_and_field_and_the_rest_are_sent(
        tmp_path: Path, emulator: Emulator):
    """A value no LoyaltyAccount can carry (year 99999: DuckDB holds it, Python's date cannot), written
    straight into the snapshot as if ingest had let it through: one member, not the run, pays for it."""
    Pipeline(tmp_path, today=TODAY).write_accounts(D1, [account(c) for c in ("C1", "C2", "C3")])
    Pipeline(tmp_path, today=TODAY).run(D1)  # ingest only: no ShopiMind resource
    con = connect(tmp_path / "warehouse" / "loyalty.duckdb")
    con.execute("UPDATE snapshots SET tier_since = DATE '99999-01-01' WHERE customer_id = 'C2'")
    con.close()
    pipe = delivery_pipeline(tmp_path, emulator, today=TODAY)
    result = pipe.run(D1)
    meta = materialization(result, "shopimind_accounts")
    assert (meta["accounts/sent"], meta["accounts/rejected"]) == (2, 1)
    assert sorted(records_by_customer(emulator)) == ["C1", "C3"]
    [(key, status, error)] = pipe.query("SELECT key, status, error FROM delivery_state WHERE status <> 'sent'")
    assert (key, status) == ("C2", "rejected")
    assert error.startswith("not sent, the record cannot be built: tier_since") and "99999-01-01" in error
    assert any(p["customer_id"] == "C2" and "tier_since" in p["error"] for p in table_rows(meta["problems"]))
    calls = route_calls(emulator, RECORDS_ROUTE)
    pipe.run(D1)  # the same bad value is not retried blindly
    assert route_calls(emulator, RECORDS_ROUTE) == calls
