"""The idempotent bootstrap against the emulator: the seed's LoyaltyAccount definition, the event types."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import httpx
import pytest

from loyalty_pipeline.devtools.emulator import Emulator
from loyalty_pipeline.events.catalogue import CATALOGUE
from loyalty_pipeline.outbound.shopimind.assets import event_types
from loyalty_pipeline.outbound.shopimind.client import ShopiMindClient, ShopiMindError
from loyalty_pipeline.outbound.shopimind.setup import (
    SetupResult,
    ensure_definition,
    ensure_event_types,
    ensure_setup,
    store_setup,
)
from loyalty_pipeline.program import load_program
from loyalty_pipeline.warehouse.connection import connect
from loyalty_pipeline_tests.harness import DEFAULT_PROGRAM
from loyalty_pipeline_tests.outbound.shopimind.proxy import FaultProxy, answer, html
from loyalty_pipeline_tests.outbound.shopimind.seed import SEED_DEFINITION

# Ours on top of the seed: each record carries the member's customer id, so that a departed member's record
# can be found (listed by this field) and deleted.
CUSTOMER_KEY = {"name": "customer_id", "label": "Customer id (loyalty program)", "type": "text", "required": False}


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture
def client(emulator: Emulator) -> Iterator[ShopiMindClient]:
    with ShopiMindClient(emulator.base_url, emulator.api_key, backoff_base_s=0.01) as c:
        yield c


def raw(emulator: Emulator, method: str, path: str, body=None) -> httpx.Response:
    return httpx.request(method, emulator.base_url + path, json=body, headers={"spm-api-key": emulator.api_key})


def test_creates_the_seed_definition_and_every_enabled_event_type_once(emulator, client):
    types = event_types(load_program(DEFAULT_PROGRAM))
    first = ensure_setup(client, types)
    again = ensure_setup(client, types)
    state = emulator.state()
    [definition] = state["definitions"]
    assert {k: definition[k] for k in SEED_DEFINITION} == {**SEED_DEFINITION,
                                                           "fields": [*SEED_DEFINITION["fields"], CUSTOMER_KEY]}
    assert (first.definition_id, first.definition_action) == (definition["id_definition"], "created")
    assert (again.definition_id, again.definition_action) == (first.definition_id, "found")
    assert set(first.events.values()) == {"created"} and set(again.events.values()) == {"exists"}
    declared = {e["code_name"]: e["properties"] for e in state["events"]}
    assert set(declared) == set(CATALOGUE)
    points = {f["name"]: (f["type"], f["required"]) for f in declared["loyalty.points_earned"]["metaData"]}
    assert points == {"points_amount": ("number", True), "reason": ("text", True),
                      "new_balance": ("number", True), "event_key": ("text", False)}


def test_finds_a_homonym_case_insensitively_skips_deleted_ones_and_adds_missing_fields(emulator, client):
    old = raw(emulator, "POST", "/v1/custom-data-definitions", {**SEED_DEFINITION, "name": "Old"}).json()
    raw(emulator, "DELETE", f"/v1/custom-data-definitions/{old['data']['id_definition']}")
    partial = {**SEED_DEFINITION, "name": "loyaltyaccount ",
               "fields": [f for f in SEED_DEFINITION["fields"] if f["name"] != "next_expiry_amount"]}
    created = raw(emulator, "POST", "/v1/custom-data-definitions", partial).json()["data"]["id_definition"]
    raw(emulator, "PATCH", f"/v1/custom-data-definitions/{created}/deactivate")
    id_definition, action = ensure_definition(client)
    assert id_definition == created and action == "activated"
    definition = raw(emulator, "GET", f"/v1/custom-data-definitions/{created}").json()["data"]
    assert definition["status"] == "active"
    assert [f["name"] for f in definition["fields"]][-2:] == ["next_expiry_amount", "customer_id"]
    assert len(emulator.state()["definitions"]) == 2  # nothing duplicated


def test_an_incompatible_definition_or_event_type_stops_with_what_differs(emulator, client):
    bad = {**SEED_DEFINITION, "unique_keys": ["points_balance"]}
    raw(emulator, "POST", "/v1/custom-data-definitions", bad)
    with pytest.raises(ShopiMindError, match=r"unique_keys are \['points_balance'\]"):
        ensure_definition(client)
    types = event_types(load_program(DEFAULT_PROGRAM))
    earned = next(t for t in types if t.code_name == "loyalty.points_earned")
    legacy = earned.properties["metaData"][:-1]  # declared by hand long ago: no event_key field
    raw(emulator, "POST", "/v1/events", {"name": earned.name, "code_name": earned.code_name,
                                         "properties": {"metaData": legacy}})
    with pytest.raises(ShopiMindError, match=r"loyalty.points_earned: metaData.event_key is not declared"):
        ensure_event_types(client, types)


LISTING = r"^GET /v1/custom-data-definitions$"


@pytest.mark.parametrize(("route", "action", "expected"), [
    (LISTING, html(200), "GET /v1/custom-data-definitions answered HTTP 200 text/html"),
    (LISTING, answer(200, [1, 2]), "GET /v1/custom-data-definitions answered HTTP 200 application/json"),
    (LISTING, answer(200, {"statusCode": 200, "data": None}), "not a listing"),
    (LISTING, answer(200, {"data": [{"name": "LoyaltyAccount", "id_definition": "twelve"}], "meta": []}),
     "no readable id"),
    (LISTING, answer(200, {"data": [{"name": "LoyaltyAccount", "id_definition": 3, "unique_keys": 5,
                                     "fields": "all", "relationships": [1, None]}], "meta": {"pagination": 1}}),
     "unique_keys are 5"),
    (r"^POST /v1/custom-data-definitions$", answer(200, {"statusCode": 200, "data": None}),
     "POST /v1/custom-data-definitions answered HTTP 200 application/json"),
    (r"^POST /v1/custom-data-definitions$", answer(201, "created"), "no id_definition"),
])
def test_a_setup_answer_of_the_wrong_shape_stops_setup_saying_what_was_called_and_what_came_back(
        emulator: Emulator, route: str, action, expected: str):
    with FaultProxy(emulator.base_url) as proxy, ShopiMindClient(proxy.base_url, emulator.api_key) as client:
        proxy.add(route, action)
        with pytest.raises(ShopiMindError) as info:
            ensure_setup(client, event_types(load_program(DEFAULT_PROGRAM)))
    assert expected in str(info.value), str(info.value)


def test_an_event_type_listing_of_the_wrong_shape_stops_setup_clearly(emulator: Emulator, client):
    types = event_types(load_program(DEFAULT_PROGRAM))
    ensure_event_types(client, types)  # declared: the next setup lists them to check their schema
    with FaultProxy(emulator.base_url) as proxy, ShopiMindClient(proxy.base_url, emulator.api_key) as via:
        proxy.add(r"^GET /v1/events$", html(200))
        with pytest.raises(ShopiMindError, match=r"GET /v1/events answered HTTP 200 text/html.*Service temporarily"):
            ensure_event_types(via, types)
        proxy.add(r"^GET /v1/events$", answer(200, {"data": [{"code_name": t.code_name, "properties": "?"}
                                                             for t in types]}))
        with pytest.raises(ShopiMindError, match=r"metaData.event_key is not declared"):
            ensure_event_types(via, types)


class _DiskFullOnCommit:
    """A warehouse connection whose COMMIT fails the way a full disk does: DuckDB ends the transaction
    itself, so a ROLLBACK that follows fails with "no transaction is active"."""

    def __init__(self, con):
        self.con = con

    def execute(self, statement: str, *args):
        if statement.strip().upper() == "COMMIT":
            self.con.execute("ROLLBACK")
            raise duckdb.IOException("Could not write file: No space left on device")
        return self.con.execute(statement, *args)


def test_a_full_disk_while_recording_setup_shows_the_disk_error_not_the_failed_rollback(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    try:
        with pytest.raises(duckdb.IOException, match="No space left on device"):
            store_setup(_DiskFullOnCommit(con), "http://127.0.0.1:1", SetupResult(7, "created", {}))
        assert con.execute("SELECT count(*) FROM shopimind_setup").fetchone() == (0,)  # nothing half-written
    finally:
        con.close()
