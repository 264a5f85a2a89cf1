"""The ShopiMind emulator over real HTTP (httpx against 127.0.0.1, ephemeral port)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from loyalty_pipeline.devtools.emulator import EMULATOR_API_KEY, Emulator
from loyalty_pipeline_tests.outbound.shopimind.seed import SEED_DEFINITION as LOYALTY_ACCOUNT

POINTS_EARNED = {
    "name": "Loyalty — points earned",
    "code_name": "loyalty.points_earned",
    "properties": {
        "metaData": [
            {"name": "points_amount", "type": "number", "required": True, "description": "Points credited"},
            {"name": "reason", "type": "text", "required": True, "description": "purchase | referral"},
            {"name": "new_balance", "type": "number", "required": True, "description": "Balance after"},
        ]
    },
}
TIER_UPGRADED = {
    "name": "Loyalty — tier upgraded",
    "code_name": "loyalty.tier_upgraded",
    "properties": {
        "metaData": [
            {"name": "previous_tier", "type": "text", "required": True},
            {"name": "new_tier", "type": "text", "required": True},
        ]
    },
}


def account(customer: str, balance: int, tier: str = "Gold") -> dict[str, Any]:
    return {
        "contact_id": {"by": "id_customer", "value": customer},
        "points_balance": balance,
        "tier": tier,
        "tier_since": "2025-11-12",
        "next_expiry_date": "2026-12-31",
        "next_expiry_amount": 320,
    }


def earned(amount: int = 50, balance: int = 1290) -> dict[str, Any]:
    return {"points_amount": amount, "reason": "purchase", "new_balance": balance}


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture
def api(emulator: Emulator) -> Iterator[httpx.Client]:
    headers = {"spm-api-key": EMULATOR_API_KEY}
    with httpx.Client(base_url=f"{emulator.base_url}/v1", headers=headers, trust_env=False) as client:
        yield client


@pytest.fixture
def control(emulator: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{emulator.base_url}/_emulator", trust_env=False) as client:
        yield client


def create_definition(api: httpx.Client) -> int:
    response = api.post("/custom-data-definitions", json=LOYALTY_ACCOUNT)
    assert response.status_code == 200, response.text
    return response.json()["data"]["id_definition"]


def trigger(
    api: httpx.Client, code_name: str, contact: dict[str, Any], meta: dict[str, Any]
) -> httpx.Response:
    return api.post(f"/events/trigger/{code_name}", json={"contact": contact, "metaData": meta})


def histories(api: httpx.Client, **settings: Any) -> dict[str, Any]:
    response = api.get("/events/histories", params={"settings": json.dumps(settings)})
    assert response.status_code == 200, response.text
    return response.json()


def test_seed_definition_is_created_and_homonyms_refused(api: httpx.Client) -> None:
    id_definition = create_definition(api)
    assert id_definition == 1

    single = api.get(f"/custom-data-definitions/{id_definition}").json()["data"]
    assert single["status"] == "active"
    assert [f["name"] for f in single["fields"]] == [f["name"] for f in LOYALTY_ACCOUNT["fields"]]
    assert single["relationships"][0]["targetField"] == "id_contact"
    assert single["created_at"].endswith("Z") and len(single["created_at"]) == 24  # ms precision

    listing = api.get("/custom-data-definitions", params={"limit": 500}).json()
    assert listing["data"][0]["id_definition"] == "1"  # listings stringify ids
    assert listing["meta"]["pagination"]["items_per_page"] == 10  # limit > 100 falls back to 10

    # Case-, accent- and trailing-space-insensitive duplicate check.
    for homonym in ("LoyaltyAccount", "loyaltyaccöunt  "):
        response = api.post("/custom-data-definitions", json={**LOYALTY_ACCOUNT, "name": homonym})
        assert response.status_code == 400
        assert response.json()["message"] == "custom data definition name is already used."

    # Soft delete frees the name; the old id answers 400 and stays listed as deleted.
    assert api.delete(f"/custom-data-definitions/{id_definition}").status_code == 200
    gone = api.get(f"/custom-data-definitions/{id_definition}")
    assert (gone.status_code, gone.json()["message"]) == (400, "Custom data definition not found")
    assert create_definition(api) == 2
    statuses = [d["status"] for d in api.get("/custom-data-definitions").json()["data"]]
    assert statuses == ["deleted", "active"]


def test_definition_validation(api: httpx.Client) -> None:
    bad_bodies = {
        "unique_keys": {**LOYALTY_ACCOUNT, "unique_keys": ["customer"]},
        "type": {**LOYALTY_ACCOUNT, "fields": [{"name": "x", "label": "X", "type": "string"}]},
        "sourceField": {
            **LOYALTY_ACCOUNT,
            "relationships": [{"sourceField": "nope", "targetSchemaType": "system", "targetSchema": "x"}],
        },
        "label_source": {**LOYALTY_ACCOUNT, "label_source": "web"},
    }
    for needle, body in bad_bodies.items():
        response = api.post("/custom-data-definitions", json=body)
        assert response.status_code == 400, needle
        assert needle in response.json()["message"]
    assert api.get("/custom-data-definitions").json()["meta"]["pagination"]["total_items"] == 0


def test_bulk_save_upserts_on_contact_and_rejects_bad_items(api: httpx.Client, emulator: Emulator) -> None:
    id_definition = create_definition(api)
    missing_tier = {k: v for k, v in account("CUST-B", 10).items() if k != "tier"}
    batch = [account("CUST-A", 100), account("CUST-B", 200), missing_tier, account("CUST-A", 150, "Platinum")]

    response = api.post(f"/custom-data-records/{id_definition}", json=batch)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["sent_count"], body["rejected_count"]) == (3, 1)
    assert body["rejected_items"] == [
        {"index": 2, "payload": missing_tier, "errors": [{"field": "tier", "message": "is required"}]}
    ]

    rows = api.get(f"/custom-data-records/{id_definition}").json()["data"]
    assert [(r["id"], r["points_balance"], r["tier"]) for r in rows] == [
        (1, 150, "Platinum"),
        (2, 200, "Gold"),
    ]
    contact_a = rows[0]["contact_id"]
    assert isinstance(contact_a, int)

    # Same customer again (by canonical id this time): updated in place, not duplicated.
    by_id = {**account("x", 1), "contact_id": contact_a}
    assert api.post(f"/custom-data-records/{id_definition}", json=[by_id]).json()["sent_count"] == 1
    rows = emulator.state()["records"][str(id_definition)]
    assert [(r["contact_id"], r["points_balance"]) for r in rows] == [
        (contact_a, 1),
        (rows[1]["contact_id"], 200),
    ]


def test_bulk_save_whole_request_rejections(api: httpx.Client) -> None:
    id_definition = create_definition(api)
    url = f"/custom-data-records/{id_definition}"

    too_many = api.post(url, json=[account(f"C{i}", i) for i in range(21)])
    assert too_many.status_code == 400
    assert "too many" in too_many.json()["message"] and "20" in too_many.json()["message"]
    assert api.post(url, json=[account(f"C{i}", i) for i in range(20)]).json()["sent_count"] == 20

    not_array = api.post(url, json=account("C1", 1))
    assert (not_array.status_code, not_array.json()["statusCode"]) == (400, 400)

    all_bad = api.post(url, json=[{**account("C1", 1), "points_balance": None}, {"tier": "Gold"}])
    assert all_bad.status_code == 400
    assert [item["index"] for item in all_bad.json()["rejected_items"]] == [0, 1]
    assert all_bad.json()["rejected_items"][0]["errors"] == [{"field": "points_balance", "message": "is required"}]
    # Strict bodies: an undeclared property refuses the whole request, naming it (not one item).
    extra = api.post(url, json=[account("C1", 1), {**account("C2", 2), "extra": 1}])
    assert (extra.status_code, extra.json()["message"]) == (400, "property [1].extra should not exist")

    typed = api.post(url, json=[{**account("C1", 1), "points_balance": 1.5}, account("C2", 2)])
    assert typed.json()["rejected_items"][0]["errors"][0]["field"] == "points_balance"

    assert api.patch(f"/custom-data-definitions/{id_definition}/deactivate").status_code == 200
    inactive = api.post(url, json=[account("C1", 1)])
    assert (inactive.status_code, inactive.json()["message"]) == (400, "custom data definition is not active")
    assert api.post("/custom-data-records/999", json=[account("C1", 1)]).status_code == 400


def test_api_key_is_required_and_never_echoed(emulator: Emulator) -> None:
    url = f"{emulator.base_url}/v1/custom-data-definitions"
    for headers in ({}, {"spm-api-key": "wrong-key-but-well-formed-123"}):
        response = httpx.post(url, json=LOYALTY_ACCOUNT, headers=headers, trust_env=False)
        assert response.status_code == 401
        assert response.json()["statusCode"] == 401 and response.json()["error"] == "Unauthorized"
        assert EMULATOR_API_KEY not in response.text and "wrong-key" not in response.text
    assert emulator.state()["definitions"] == []
    state_text = httpx.get(f"{emulator.base_url}/_emulator/state", trust_env=False).text
    assert EMULATOR_API_KEY not in state_text


def test_event_declaration_and_trigger_validation(api: httpx.Client, emulator: Emulator) -> None:
    assert api.post("/events", json=POINTS_EARNED).status_code == 200
    duplicate = api.post("/events", json=POINTS_EARNED)
    assert (duplicate.status_code, duplicate.json()["message"]) == (409, "already exists")
    assert [e["code_name"] for e in api.get("/events").json()["data"]] == ["loyalty.points_earned"]

    ok = api.post(
        "/events/trigger/loyalty.points_earned",
        json={"contact": {"email": "marie.dupont@example.com"}, "metaData": earned()},
    )
    assert ok.status_code == 200
    assert ok.json() == {"statusCode": 200, "data": {"code_name": "loyalty.points_earned", "queued": True}}

    contact = {"email": "marie.dupont@example.com"}
    invalid = {
        "new_balance": {k: v for k, v in earned().items() if k != "new_balance"},  # required missing
        "points_amount": {**earned(), "points_amount": "50"},  # wrong type
        "bonus": {**earned(), "bonus": 1},  # undeclared
    }
    for field, meta in invalid.items():
        response = trigger(api, "loyalty.points_earned", contact, meta)
        assert response.status_code == 400, field
        assert f"metaData.{field}" in response.json()["message"]

    no_target = api.post("/events/trigger/loyalty.points_earned", json={"metaData": earned()})
    assert no_target.status_code == 400
    unknown = api.post("/events/trigger/loyalty.unknown", json={"contact": contact})
    assert unknown.status_code == 400 and "not found" in unknown.json()["message"]

    # code_name is URL-decoded from the path.
    assert api.post("/events", json={"name": "Spaced", "code_name": "loyalty spaced"}).status_code == 200
    assert trigger(api, "loyalty%20spaced", {"email": "c1@example.com"}, {}).status_code == 200

    state = emulator.state()
    assert state["triggered"] == {"loyalty.points_earned": 1, "loyalty spaced": 1}
    assert state["histories"][0]["payload"] == {"metaData": earned(), "customData": {}}
    assert state["requests"]["POST /v1/events/trigger/{code_name}"]["statuses"] == {"200": 2, "400": 5}


def test_histories_filter_order_and_pagination(api: httpx.Client) -> None:
    api.post("/events", json=POINTS_EARNED)
    api.post("/events", json=TIER_UPGRADED)
    for i in range(3):
        trigger(api, "loyalty.points_earned", {"email": f"c{i}@example.com"}, earned(10 * i))
    for i in range(2):
        trigger(
            api, "loyalty.tier_upgraded", {"email": f"c{i}@example.com"}, {"previous_tier": "S", "new_tier": "G"}
        )

    default = histories(api)
    assert [r["id"] for r in default["data"]] == [5, 4, 3, 2, 1]  # date_creation desc
    row = default["data"][-1]
    assert set(row) >= {"id", "code_name", "date_creation", "contact", "visitor", "payload", "status"}
    assert row["date_creation"].endswith("Z") and row["status"] == "processed"

    by_code = [{"field": "code_name", "values": "loyalty.points_earned", "operator": "EQUALS"}]
    page = histories(api, limit=2, offset=2, order=[{"field": "id", "type": "asc"}], filter=by_code)
    assert [r["id"] for r in page["data"]] == [3]
    assert page["meta"]["pagination"] == {
        "total_items": 3,
        "items_per_page": 2,
        "total_pages": 2,
        "current_page": 2,
        "offset": 2,
        "has_previous_page": True,
        "has_next_page": False,
        "next_page": None,
        "previous_page": 1,
    }

    def ids(operator: str, values: str, field: str = "id") -> list[int]:
        flt = [{"field": field, "values": values, "operator": operator}]
        return [r["id"] for r in histories(api, order=[{"field": "id", "type": "asc"}], filter=flt)["data"]]

    assert ids("NOT_BETWEEN", "2,4") == [1, 5]
    assert ids("BETWEEN", "2,4") == [2, 3, 4]
    assert ids("IN", "1,5") == [1, 5]
    assert ids("NOT_IN", "loyalty.points_earned", "code_name") == [4, 5]
    assert ids("GREATER_THAN", "3") == [4, 5]
    assert ids("LESS_THAN_OR_EQUAL_TO", "2") == [1, 2]
    assert ids("NOT_EQUALS", "processed", "status") == []

    bad = api.get("/events/histories", params={"settings": json.dumps({"filter": [{"field": "id"}]})})
    assert bad.status_code == 400


def test_rate_limit_answers_429_with_retry_after(api: httpx.Client, control: httpx.Client) -> None:
    config = control.post("/config", json={"rate_limit_rps": 0.5, "rate_limit_burst": 2}).json()["config"]
    assert (config["rate_limit_rps"], config["rate_limit_burst"], config["error_rate"]) == (0.5, 2, 0.0)

    statuses = [api.get("/events").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = api.get("/events")
    assert limited.headers["Retry-After"] == "2"  # one token at 0.5 token/s
    assert limited.json()["statusCode"] == 429

    counters = control.get("/state").json()["requests"]["GET /v1/events"]
    assert counters == {"total": 4, "statuses": {"200": 2, "429": 2}, "lost": 0}


def test_lost_response_is_applied_but_unanswered(api: httpx.Client, emulator: Emulator) -> None:
    api.post("/events", json=POINTS_EARNED)
    emulator.configure(lose_response_rate=1.0)
    with pytest.raises(httpx.TransportError):
        api.post(
            "/events/trigger/loyalty.points_earned",
            json={"contact": {"email": "a@example.com"}, "metaData": earned()},
        )
    reads = api.get("/events")  # reads are never lost
    assert reads.status_code == 200

    state = emulator.state()
    assert state["triggered"]["loyalty.points_earned"] == 1
    assert state["requests"]["POST /v1/events/trigger/{code_name}"] == {"total": 1, "statuses": {}, "lost": 1}


def test_a_lost_answer_closes_the_connection_without_a_byte(emulator: Emulator) -> None:
    """Not even a status line: the client cannot tell whether the write was accepted."""
    emulator.configure(lose_response_rate=1.0)
    body = json.dumps(POINTS_EARNED).encode()
    host, port = emulator.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(b"POST /v1/events HTTP/1.1\r\nHost: emulator\r\nContent-Type: application/json\r\n"
                     b"spm-api-key: %s\r\nContent-Length: %d\r\n\r\n%s" % (EMULATOR_API_KEY.encode(), len(body), body))
        assert conn.recv(1024) == b""  # the end of the stream, first thing
    state = emulator.state()
    assert [e["code_name"] for e in state["events"]] == ["loyalty.points_earned"]
    assert state["requests"]["POST /v1/events"] == {"total": 1, "statuses": {}, "lost": 1}


def test_stop_ends_keep_alive_connections_and_a_taken_port_fails_start() -> None:
    with Emulator() as emulator, httpx.Client(base_url=emulator.base_url, trust_env=False) as client:
        assert client.get("/_emulator/state").status_code == 200  # the client keeps this connection open
        with pytest.raises(OSError):  # what local.py falls back to a free port on
            Emulator(port=int(emulator.base_url.rsplit(":", 1)[1])).start()
        emulator.stop()
        with pytest.raises(httpx.TransportError):
            client.get("/_emulator/state")


def test_routes_match_as_the_real_api_does(api: httpx.Client, emulator: Emulator) -> None:
    """Express routing: a trailing slash is ignored and an encoded "/" stays inside its parameter; a method a
    path does not have is an unmatched route (404, after the key is checked)."""
    assert api.post("/events/", json={**TIER_UPGRADED, "code_name": "loyalty/tier"}).status_code == 200
    meta = {"previous_tier": "Silver", "new_tier": "Gold"}
    assert trigger(api, "loyalty%2Ftier", {"email": "a@x.io"}, meta).status_code == 200
    assert emulator.state()["triggered"] == {"loyalty/tier": 1}
    assert api.put("/events").status_code == 404
    assert httpx.put(f"{emulator.base_url}/v1/events", trust_env=False).status_code == 401
    assert emulator.state()["requests"]["PUT (unmatched)"] == {"total": 2, "statuses": {"404": 1, "401": 1},
                                                                 "lost": 0}


def test_error_rate_fails_before_applying_and_is_reproducible(emulator: Emulator, api: httpx.Client) -> None:
    emulator.configure(error_rate=1.0)
    failed = api.post("/events", json=POINTS_EARNED)
    assert failed.status_code in (500, 502, 503)
    assert emulator.state()["events"] == []

    def run() -> list[int]:
        emulator.configure(error_rate=0.5, seed=7)
        return [api.get("/events").status_code for _ in range(12)]

    first = run()
    assert first == run()
    assert 200 in first and set(first) - {200}


def test_strict_contacts_only_resolve_seeded_contacts(
    api: httpx.Client, control: httpx.Client, emulator: Emulator
) -> None:
    id_definition = create_definition(api)
    api.post("/events", json=TIER_UPGRADED)
    control.post("/config", json={"strict_contacts": True})
    seeded = control.post("/contacts", json=[{"id_contact": 42, "id_customer": "CUST-1", "email": "a@x.io"}])
    assert seeded.json()["contacts"][0]["id_contact"] == 42

    batch = [account("CUST-1", 5), account("CUST-2", 6)]
    saved = api.post(f"/custom-data-records/{id_definition}", json=batch)
    body = saved.json()
    assert (saved.status_code, body["sent_count"], body["rejected_count"]) == (200, 1, 1)
    assert body["rejected_items"][0]["index"] == 1
    assert body["rejected_items"][0]["errors"][0]["field"] == "contact_id"
    assert [r["contact_id"] for r in emulator.state()["records"][str(id_definition)]] == [42]

    meta = {"previous_tier": "Silver", "new_tier": "Gold"}
    for email in ("A@x.io", "ghost@x.io"):
        response = trigger(api, "loyalty.tier_upgraded", {"email": email}, meta)
        assert response.status_code == 200  # unknown contacts are accepted (async semantics)
    rows = histories(api, order=[{"field": "id", "type": "asc"}])["data"]
    assert [(r["id_contact"], r["status"]) for r in rows] == [(42, "processed"), (None, "contact_not_found")]
    # A null id_contact only satisfies negative operators.
    not_42 = [{"field": "id_contact", "values": "42", "operator": "NOT_EQUALS"}]
    assert [r["status"] for r in histories(api, filter=not_42)["data"]] == ["contact_not_found"]
    low_ids = [{"field": "id_contact", "values": "0,10", "operator": "BETWEEN"}]
    assert histories(api, filter=low_ids)["data"] == []


def test_concurrent_clients_and_reset(emulator: Emulator, control: httpx.Client) -> None:
    headers = {"spm-api-key": EMULATOR_API_KEY}
    with httpx.Client(base_url=f"{emulator.base_url}/v1", headers=headers, trust_env=False) as client:
        client.post("/events", json=TIER_UPGRADED)
    meta = {"previous_tier": "Silver", "new_tier": "Gold"}

    def worker(n: int) -> None:
        with httpx.Client(base_url=f"{emulator.base_url}/v1", headers=headers, trust_env=False) as client:
            for i in range(10):
                response = client.post(
                    "/events/trigger/loyalty.tier_upgraded",
                    json={"contact": {"email": f"c{n}-{i}@example.com"}, "metaData": meta},
                )
                assert response.status_code == 200

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    state = emulator.state()
    assert state["triggered"] == {"loyalty.tier_upgraded": 160}
    assert sorted(h["id"] for h in state["histories"]) == list(range(1, 161))
    assert len({c["id_contact"] for c in state["contacts"]}) == 160  # one stable id per customer

    assert control.post("/reset").json() == {"reset": True}
    assert control.get("/state").json()["histories"] == []


# -- listing records, deleting them, and strict bodies ---------------------------------------------------

KEYED_ACCOUNT = {**LOYALTY_ACCOUNT, "fields": [*LOYALTY_ACCOUNT["fields"],
                                               {"name": "customer_id", "label": "Customer", "type": "text",
                                                "required": False}]}


def keyed(customer: str, balance: int) -> dict[str, Any]:
    return {**account(customer, balance), "customer_id": customer}


def keyed_definition(api: httpx.Client, customers: int) -> tuple[int, str]:
    """A LoyaltyAccount with a customer_id field and records C1..Cn (balance 10 x n, ids 1..n)."""
    id_definition = api.post("/custom-data-definitions", json=KEYED_ACCOUNT).json()["data"]["id_definition"]
    url = f"/custom-data-records/{id_definition}"
    saved = api.post(url, json=[keyed(f"C{n}", 10 * n) for n in range(1, customers + 1)])
    assert saved.json()["sent_count"] == customers
    return id_definition, url


def test_records_listing_filters_projects_orders_and_pages(api: httpx.Client) -> None:
    _, url = keyed_definition(api, 5)

    def listed(*filters: dict[str, Any], **params: Any) -> list[Any]:
        query = {"filters": json.dumps(list(filters)), **params} if filters else params
        response = api.get(url, params=query)
        assert response.status_code == 200, response.text
        return [r["customer_id"] for r in response.json()["data"]]

    def where(field: str, operator: str, values: Any) -> dict[str, Any]:
        return {"field": field, "operator": operator, "values": values}

    # The lookup the pipeline makes: by customer_id, IN an array, only id and customer_id back.
    page = api.get(url, params={"filters": json.dumps([where("customer_id", "IN", ["C4", "C2", "nobody"])]),
                                "fields": "id,customer_id", "limit": 100})
    assert page.json()["data"] == [{"id": 2, "customer_id": "C2"}, {"id": 4, "customer_id": "C4"}]
    assert listed(where("customer_id", "EQUALS", "C3")) == ["C3"]
    assert listed(where("customer_id", "IN", "C1,C5")) == ["C1", "C5"]  # a comma string works too
    assert listed(where("customer_id", "NOT_IN", ["C1", "C2"])) == ["C3", "C4", "C5"]
    assert listed(where("points_balance", "GREATER_THAN", "25")) == ["C3", "C4", "C5"]  # typed per field
    assert listed(where("points_balance", "BETWEEN", [20, 40])) == ["C2", "C3", "C4"]
    assert listed(where("points_balance", "NOT_BETWEEN", "20,40")) == ["C1", "C5"]
    assert listed(where("customer_id", "LIKE", "C_"), where("id", "LESS_THAN_OR_EQUAL_TO", 2)) == ["C1", "C2"]
    assert listed(where("tier", "CONTAINS", "ol"), where("customer_id", "ENDS_WITH", "5")) == ["C5"]
    assert listed(where("customer_id", "STARTS_WITH", "X")) == []
    # order, paging, a repeated `fields` parameter
    response = api.get(url, params={"order": json.dumps([{"field": "points_balance", "type": "desc"}]),
                                    "limit": 2, "offset": 1, "fields": ["id", "tier"]}).json()
    assert response["data"] == [{"id": 4, "tier": "Gold"}, {"id": 3, "tier": "Gold"}]
    assert (response["meta"]["pagination"]["total_items"], response["meta"]["pagination"]["has_next_page"]) == (5, True)

    refused = {
        "cannot filter on field 'contact'": {"filters": json.dumps([where("contact", "EQUALS", "1")])},
        "unsupported filter operator 'ILIKE'": {"filters": json.dumps([where("tier", "ILIKE", "g%")])},
        "property filters[0].value should not exist": {
            "filters": json.dumps([{"field": "tier", "operator": "EQUALS", "value": "Gold"}])},
        "bad filter values for 'points_balance'": {"filters": json.dumps([where("points_balance", "EQUALS", "x")])},
        "unknown field 'email'": {"fields": "id,email"},
        "query parameter 'filter' should not exist": {"filter": "[]"},
    }
    for message, params in refused.items():
        response = api.get(url, params=params)
        assert response.status_code == 400 and message in response.json()["message"], (message, response.text)


def test_bulk_delete_takes_record_ids_skips_unknown_ones_and_never_reuses_an_id(api: httpx.Client,
                                                                               emulator: Emulator) -> None:
    id_definition, url = keyed_definition(api, 3)
    delete = f"{url}/bulk-delete"

    first = api.post(delete, json=[1, 3, 99])
    assert first.json() == {"statusCode": 200, "sent_count": 3, "rejected_count": 0, "rejected_items": []}
    assert [r["id"] for r in api.get(url).json()["data"]] == [2]
    again = api.post(delete, json=[1, 3])  # idempotent: already gone, skipped
    assert (again.status_code, again.json()["sent_count"]) == (200, 2)
    assert [r["id"] for r in api.get(url).json()["data"]] == [2]

    mixed = api.post(delete, json=["2", "x", -1]).json()  # listings stringify ids: "2" is an id
    assert (mixed["sent_count"], mixed["rejected_count"]) == (1, 2)
    assert [(i["index"], i["payload"]) for i in mixed["rejected_items"]] == [(1, "x"), (2, -1)]
    assert api.get(url).json()["data"] == []

    for body, message in (([None, "y"], "all record ids are invalid"), ({"ids": [1]}, "must be a JSON array"),
                          ([], "non-empty array"), (list(range(1, 22)), "too many record ids in one call: 21")):
        response = api.post(delete, json=body)
        assert response.status_code == 400 and message in response.json()["message"], body

    assert api.post(url, json=[keyed("C1", 7)]).json()["sent_count"] == 1
    assert [r["id"] for r in api.get(url).json()["data"]] == [4]  # auto-increment: 1 is never reused
    deleted = emulator.state()["deleted_records"][str(id_definition)]
    assert [(r["id"], r["customer_id"]) for r in deleted] == [(1, "C1"), (3, "C3"), (2, "C2")]

    assert api.patch(f"/custom-data-definitions/{id_definition}/deactivate").status_code == 200
    inactive = api.post(delete, json=[4])
    assert (inactive.status_code, inactive.json()["message"]) == (400, "custom data definition is not active")


def test_an_unknown_property_is_refused_naming_it(api: httpx.Client) -> None:
    """As strict as the SDK's request types: the next drift in what the pipeline sends is a 400, not a silent
    success (shopimind-api.md §0: custom-data and events controllers reject extra fields)."""
    id_definition, url = keyed_definition(api, 1)
    assert api.post("/events", json=POINTS_EARNED).status_code == 200
    trigger_url = "/events/trigger/loyalty.points_earned"
    field = LOYALTY_ACCOUNT["fields"][0]
    relation = LOYALTY_ACCOUNT["relationships"][0]
    metadata_spec = POINTS_EARNED["properties"]["metaData"][0]
    refused = [
        ("POST", "/custom-data-definitions", {**LOYALTY_ACCOUNT, "name": "Other", "label_source": "web"},
         "property label_source"),
        ("POST", "/custom-data-definitions", {**LOYALTY_ACCOUNT, "name": "Other", "fields": [{**field, "unit": "x"}]},
         "property fields[0].unit"),
        ("POST", "/custom-data-definitions", {**LOYALTY_ACCOUNT, "name": "Other",
                                              "relationships": [{**relation, "cascade": True}]},
         "property relationships[0].cascade"),
        ("PATCH", f"/custom-data-definitions/{id_definition}/extend", {"unique_keys": ["tier"]},
         "property unique_keys"),
        ("POST", url, [keyed("C2", 1), {**keyed("C3", 1), "email": "c3@x.io"}], "property [1].email"),
        ("POST", "/events", {**POINTS_EARNED, "code_name": "other", "enabled": True}, "property enabled"),
        ("POST", "/events", {**POINTS_EARNED, "code_name": "other", "properties": {"meta": []}},
         "property properties.meta"),
        ("POST", "/events", {**POINTS_EARNED, "code_name": "other",
                             "properties": {"metaData": [{**metadata_spec, "label": "Points"}]}},
         "property properties.metaData[0].label"),
        ("POST", trigger_url, {"contact": {"id_customer": "C1"}, "metaData": earned()},
         "property contact.id_customer"),
        ("POST", trigger_url, {"contact": {"email": "a@x.io"}, "metaData": earned(), "event_key": "k"},
         "property event_key"),
        ("POST", trigger_url, {"contact": {"id": "42"}, "metaData": earned()}, "contact.id must be a number"),
    ]
    for method, path, body, message in refused:
        response = api.request(method, path, json=body)
        assert response.status_code == 400 and message in response.json()["message"], (path, response.text)
    unknown_setting = api.get("/events/histories", params={"settings": json.dumps({"filters": []})})
    assert "property settings.filters should not exist" in unknown_setting.json()["message"]
    assert [r["customer_id"] for r in api.get(url).json()["data"]] == ["C1"]  # nothing applied
    assert [e["code_name"] for e in api.get("/events").json()["data"]] == ["loyalty.points_earned"]
