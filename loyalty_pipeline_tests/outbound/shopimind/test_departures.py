"""Members who leave: ShopiMind holds a LoyaltyAccount for enrolled customers only (DESIGN invariant 15).

Several days through the real daily job, over real HTTP to the emulator (the answers it never gives:
test_departure_answers.py).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import duckdb
import httpx
import pytest

from loyalty_pipeline.devtools.emulator import Emulator
from loyalty_pipeline.outbound.shopimind.assets import dry_run_config
from loyalty_pipeline_tests.harness import DEFAULT_PROGRAM, Pipeline, account, day
from loyalty_pipeline_tests.outbound.shopimind.helpers import materialization, run_until_settled, shopimind_for

pytestmark = pytest.mark.real  # long scenario: several days through Dagster against the emulator

D1, D2, D3, D4, D5 = (day(n) for n in range(5))
TODAY = day(6)
DELETE_ROUTE = "POST /v1/custom-data-records/{id}/bulk-delete"
LIST_ROUTE = "GET /v1/custom-data-records/{id}"


def pipeline(root: Path, emulator: Emulator, on_leave: str = "delete", grace_days: int = 3, **overrides) -> Pipeline:
    program = root / "program.yaml"
    program.write_text(DEFAULT_PROGRAM.read_text().replace("on_leave: delete", f"on_leave: {on_leave}")
                       .replace("removal_grace_days: 3", f"removal_grace_days: {grace_days}"))
    return Pipeline(root, program_path=program, today=TODAY, shopimind=shopimind_for(emulator, **overrides))


def held(emulator: Emulator) -> dict[str, int]:
    """Shop customer id -> LoyaltyAccount records ShopiMind holds for it (every definition; records store
    the resolved contact id)."""
    state = emulator.state()
    customers = {c["id_contact"]: c.get("id_customer") for c in state["contacts"]}
    return dict(Counter(customers[r["contact_id"]] for rows in state["records"].values() for r in rows))


def deleted(emulator: Emulator) -> Counter:
    """How many times a record of each customer was deleted."""
    return Counter(r["customer_id"] for rows in emulator.state()["deleted_records"].values() for r in rows)


def calls(emulator: Emulator, route: str) -> int:
    return emulator.state()["requests"].get(route, {}).get("total", 0)


def test_opt_outs_and_members_gone_for_good_lose_their_record_and_get_it_back_when_they_return(
        tmp_path: Path, emulator: Emulator):
    pipe = pipeline(tmp_path, emulator)
    quarantined = {"points_balance": "lots"}  # an invalid row: the member is there, its row is not valid
    pipe.write_accounts(D1, [account(c) for c in "ABCDE"])
    pipe.write_accounts(D2, [account("A", points=110), account("B", enrolled="false"), account("E", **quarantined)])
    pipe.write_accounts(D3, [account("A", points=120), account("B", enrolled="false"), account("D"),
                             account("E", **quarantined)])
    pipe.write_accounts(D4, [account("A", points=130), account("B", points=500), account("D"),
                             account("E", **quarantined)])
    pipe.write_accounts(D5, [account("A", points=140), account("B", enrolled="false"), account("D"), account("E")])

    pipe.run(D1)
    assert held(emulator) == dict.fromkeys("ABCDE", 1)
    second = materialization(pipe.run(D2), "shopimind_accounts")
    # B opted out: gone at once. C and D missed one export, E's row is quarantined: all kept.
    assert held(emulator) == dict.fromkeys("ACDE", 1)
    assert (second["deletes/opted_out"], second["deletes/absent"], second["deletes/sent"]) == (1, 0, 1)
    pipe.run(D3)  # C has missed two exports; D is back
    assert held(emulator) == dict.fromkeys("ACDE", 1)
    fourth = materialization(pipe.run(D4), "shopimind_accounts")
    # C has missed removal_grace_days (3) exports in a row: removed. B is back: written again.
    assert held(emulator) == dict.fromkeys("ABDE", 1)
    assert (fourth["deletes/absent"], fourth["deletes/sent"], fourth["accounts/sent"]) == (1, 1, 2)
    records = emulator.state()["records"]
    [b_record] = [r for rows in records.values() for r in rows if r["customer_id"] == "B"]
    assert (b_record["points_balance"], b_record["tier"]) == (500, "Bronze")
    pipe.run(D5)  # B leaves a second time: that departure is deleted too
    assert held(emulator) == dict.fromkeys("ADE", 1)
    assert deleted(emulator) == {"B": 2, "C": 1}

    # The ledger: one row per member and kind, every attempt in the sync log, the deletes acknowledged.
    states = pipe.query("SELECT key, status, attempts, error FROM delivery_state "
                        "WHERE kind = 'account_delete' ORDER BY key")
    assert states == [("B", "sent", 2, None), ("C", "sent", 1, None)]
    log = pipe.query("SELECT key, snapshot_date::VARCHAR, status, note FROM sync_log "
                     "WHERE kind = 'account_delete' ORDER BY logged_at")
    assert [(k, d, s) for k, d, s, _ in log] == [("B", D2, "sent"), ("C", D4, "sent"), ("B", D5, "sent")]
    assert all(note.startswith("deleted record ids [") for *_, note in log)
    assert pipe.query("SELECT customer_id FROM account_sync_state ORDER BY 1") == [("A",), ("D",), ("E",)]

    # Re-running any of these days sends nothing: no lookup, no delete, no upsert.
    before = {route: c["total"] for route, c in emulator.state()["requests"].items()}
    for d in (D5, D2):
        meta = materialization(pipe.run(d), "shopimind_accounts")
        assert (meta["deletes/to_send"], meta["http/requests"]) == (0, 0)
    assert {route: c["total"] for route, c in emulator.state()["requests"].items()} == before


def test_on_leave_keep_keeps_the_records_and_the_dry_run_says_what_delete_would_do(tmp_path: Path,
                                                                                    emulator: Emulator):
    pipe = pipeline(tmp_path, emulator, on_leave="keep", grace_days=2)
    pipe.write_accounts(D1, [account(c) for c in "ABC"])
    for d in (D2, D3):
        pipe.write_accounts(d, [account("A"), account("B", enrolled="false")])
    for d in (D1, D2, D3):
        meta = materialization(pipe.run(d), "shopimind_accounts")
    assert held(emulator) == dict.fromkeys("ABC", 1)
    assert (meta["deletes/kept"], meta["deletes/to_send"], calls(emulator, DELETE_ROUTE)) == (2, 0, 0)

    # The same warehouse under on_leave: delete, as a dry run: counts and samples, not one request.
    deleting = pipeline(tmp_path, emulator, grace_days=2)
    before = emulator.state()["requests"]
    dry = deleting.run(D3, run_config=dry_run_config())
    [event] = [e for e in dry.get_asset_observation_events() if e.asset_key.to_user_string() == "shopimind_accounts"]
    observed = {k: v.value for k, v in event.asset_observation_data.asset_observation.metadata.items()}
    assert (observed["deletes/to_send"], observed["deletes/opted_out"], observed["deletes/absent"]) == (2, 1, 1)
    assert '"customer_id": "B"' in observed["delete_samples"] and '"reason": "absent"' in observed["delete_samples"]
    assert emulator.state()["requests"] == before
    deleting.run(D3)
    assert held(emulator) == {"A": 1}


def test_faults_during_deletion_converge_with_no_record_left_behind_and_none_deleted_twice(tmp_path: Path,
                                                                                          emulator: Emulator):
    members = [f"M{i:02}" for i in range(40)]
    leaving = set(members[::2])
    pipe = pipeline(tmp_path, emulator, batch_size=4, max_retries=1, concurrency=3)
    pipe.write_accounts(D1, [account(m) for m in members])
    pipe.write_accounts(D2, [account(m, enrolled="false" if m in leaving else "true") for m in members])
    pipe.run(D1)
    emulator.configure(rate_limit_rps=40, rate_limit_burst=2, error_rate=0.25, lose_response_rate=0.3, seed=5)
    runs = run_until_settled(pipe, D2, attempts=10)
    emulator.configure(rate_limit_rps=0, error_rate=0, lose_response_rate=0)

    assert set(held(emulator)) == set(members) - leaving and set(held(emulator).values()) == {1}
    assert deleted(emulator) == dict.fromkeys(leaving, 1)
    assert pipe.query("SELECT DISTINCT status FROM delivery_state WHERE kind = 'account_delete'") == [("sent",)]
    sent = pipe.query("SELECT key, count(*) FROM sync_log WHERE kind = 'account_delete' AND status = 'sent' "
                      "GROUP BY key")
    assert {k for k, _ in sent} == leaving and {n for _, n in sent} == {1}  # acknowledged once each
    # The faults did hit the deletions, and were survived.
    route = emulator.state()["requests"][DELETE_ROUTE]
    assert route["lost"] + sum(n for s, n in route["statuses"].items() if s != "200") > 0, (route, runs)

    before = calls(emulator, DELETE_ROUTE), calls(emulator, LIST_ROUTE)
    pipe.run(D2)  # settled: a re-run looks nothing up and deletes nothing
    assert (calls(emulator, DELETE_ROUTE), calls(emulator, LIST_ROUTE)) == before


def test_a_record_written_before_the_customer_key_existed_is_rekeyed_then_deleted(tmp_path: Path,
                                                                                   emulator: Emulator):
    pipe = pipeline(tmp_path, emulator)
    pipe.write_accounts(D1, [account("A"), account("B", points=300)])
    pipe.write_accounts(D2, [account("A"), account("B", enrolled="false")])
    pipe.run(D1)
    # As left by the previous version: records without customer_id, acknowledgements without `keyed`.
    [id_definition] = [int(i) for i in emulator.state()["records"]]
    url = f"{emulator.base_url}/v1/custom-data-records/{id_definition}"
    legacy = [{"contact_id": {"by": "id_customer", "value": c}, "points_balance": points, "tier": "Bronze",
               "tier_since": "2026-01-01", "next_expiry_date": None, "next_expiry_amount": None, "customer_id": None}
              for c, points in (("A", 100), ("B", 300))]
    httpx.post(url, json=legacy, headers={"spm-api-key": emulator.api_key}).raise_for_status()
    assert [r["customer_id"] for r in emulator.state()["records"][str(id_definition)]] == [None, None]
    con = duckdb.connect(str(pipe.warehouse))
    con.execute("UPDATE account_sync_state SET keyed = NULL")
    con.close()

    meta = materialization(pipe.run(D2), "shopimind_accounts")
    assert (meta["deletes/rekeyed"], meta["deletes/sent"]) == (1, 1)
    # A's record is untouched (re-keyed when it next changes or leaves)
    assert [(r["customer_id"], r["points_balance"]) for r in emulator.state()["records"][str(id_definition)]] == [
        (None, 100)]
    [gone] = emulator.state()["deleted_records"][str(id_definition)]
    assert (gone["customer_id"], gone["points_balance"]) == ("B", 300)  # re-keyed with what it held
    notes = pipe.query("SELECT kind, status, note FROM sync_log WHERE key = 'B' ORDER BY logged_at, kind")
    assert notes[-2:] == [("account", "sent", "re-keyed before deletion"),
                          ("account_delete", "sent", f"deleted record ids [{gone['id']}]")]


def test_a_definition_deleted_since_the_last_run_is_set_up_again_and_holds_nothing_to_delete(tmp_path: Path,
                                                                                             emulator: Emulator):
    pipe = pipeline(tmp_path, emulator)
    pipe.write_accounts(D1, [account("A"), account("B")])
    pipe.write_accounts(D2, [account("A"), account("B", enrolled="false")])
    pipe.run(D1)
    [definition] = emulator.state()["definitions"]
    httpx.delete(f"{emulator.base_url}/v1/custom-data-definitions/{definition['id_definition']}",
                 headers={"spm-api-key": emulator.api_key}).raise_for_status()

    meta = materialization(pipe.run(D2), "shopimind_accounts")  # only a deletion to make: the lookup heals setup
    assert (meta["setup/healed"], meta["deletes/no_record"], meta["deletes/failed"]) == (1, 1, 0)
    assert pipe.query("SELECT status, error FROM delivery_state WHERE kind = 'account_delete'") == [("sent", None)]
    assert pipe.query("SELECT customer_id FROM account_sync_state") == [("A",)]  # A is re-sent when it changes
