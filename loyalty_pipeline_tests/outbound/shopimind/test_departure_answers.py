"""The deletion of departed members' records, with the answers the emulator never gives: ShopiMind scripted
with httpx.MockTransport (fault injection), the ledger in a real DuckDB file."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import httpx
import pytest

from loyalty_pipeline.outbound.core.ledger import replay
from loyalty_pipeline.outbound.shopimind.client import ShopiMindClient
from loyalty_pipeline.outbound.shopimind.delivery import DeliverySettings
from loyalty_pipeline.outbound.shopimind.departures import LeavePolicy, deliver_departures
from loyalty_pipeline.warehouse.connection import connect

DEST = "https://api.test"
D1 = dt.date(2026, 3, 1)
SETTINGS = DeliverySettings(concurrency=2, history_visibility_s=0)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(tmp_path / "w.duckdb")
    yield con
    con.close()


def left_the_program(con: duckdb.DuckDBPyConnection, *customers: str) -> None:
    """Members whose acknowledged record ShopiMind holds, who opted out in today's snapshot."""
    for customer in customers:
        con.execute("INSERT INTO snapshots VALUES ($d, $c, NULL, false, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, "
                    "[], 'accounts.csv', 2)", {"d": D1, "c": customer})
        con.execute("INSERT INTO account_sync_state VALUES ($dest, $c, $d, 10, 'Gold', NULL, NULL, NULL, now(), true)",
                    {"dest": DEST, "c": customer, "d": D1})


Handler = Callable[[httpx.Request], httpx.Response]


def scripted(listing: Handler, bulk_delete: Handler) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "GET" and request.url.path == "/v1/custom-data-records/7":
            return listing(request)
        if request.method == "POST" and request.url.path == "/v1/custom-data-records/7/bulk-delete":
            return bulk_delete(request)
        raise AssertionError(f"unexpected {request.method} {request.url}")
    return httpx.MockTransport(handle), seen


def listing_of(rows: list[dict]) -> Handler:
    return lambda request: httpx.Response(200, json={"statusCode": 200, "data": rows,
                                                     "meta": {"pagination": {"has_next_page": False}}})


def depart(con: duckdb.DuckDBPyConnection, transport: httpx.MockTransport) -> dict:
    with ShopiMindClient(DEST, "test-key-0123456789-abcdef", transport=transport, max_retries=1,
                         backoff_base_s=0.001, deadline_s=30) as client:
        return deliver_departures(con, client, D1, DEST, LeavePolicy(), SETTINGS,
                                  id_definition=7)


def delete_state(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute("SELECT key, status, attempts FROM delivery_state WHERE kind = 'account_delete' "
                       "ORDER BY key").fetchall()


def test_a_bulk_delete_answer_that_does_not_add_up_is_uncertain_and_retried_by_the_next_run(con):
    left_the_program(con, "B", "C")
    rows = [{"id": 11, "customer_id": "B"}, {"id": "12", "customer_id": "C"}]  # ids may come stringified
    answers = iter([{"statusCode": 200, "sent_count": 1, "rejected_count": 0, "rejected_items": []},
                    {"statusCode": 200, "sent_count": 2, "rejected_count": 0, "rejected_items": []}])
    transport, seen = scripted(listing_of(rows), lambda r: httpx.Response(200, json=next(answers)))

    first = depart(con, transport)
    assert first["final"] == {"uncertain": 2}
    assert delete_state(con) == [("B", "uncertain", 1), ("C", "uncertain", 1)]
    [(error,)] = con.execute("SELECT DISTINCT error FROM delivery_state WHERE kind = 'account_delete'").fetchall()
    assert error.startswith("2xx answer that does not add up (sent_count 1 + rejected_count 0 for 2 records and "
                            "0 rejected_items): POST /v1/custom-data-records/7/bulk-delete answered HTTP 200"), error
    assert con.execute("SELECT count(*) FROM account_sync_state").fetchone()[0] == 2  # still held

    second = depart(con, transport)  # deleting is idempotent: simply sent again
    assert second["final"] == {"sent": 2} and delete_state(con) == [("B", "sent", 2), ("C", "sent", 2)]
    assert con.execute("SELECT count(*) FROM account_sync_state").fetchone()[0] == 0
    lookup = json.loads(seen[0].url.params["filters"])
    assert lookup == [{"field": "customer_id", "operator": "IN", "values": ["B", "C"]}]
    assert seen[0].url.params["fields"] == "id,customer_id"
    assert [json.loads(r.content) for r in seen if r.method == "POST"] == [[11, 12], [11, 12]]
    assert depart(con, transport)["actions"] == {} and len(seen) == 4  # nothing held: nothing sent


def test_a_listing_that_ignores_the_filter_deletes_nothing_and_a_refusal_waits_for_a_replay(con):
    left_the_program(con, "B")
    never = lambda request: pytest.fail("nothing may be deleted")  # noqa: E731
    transport, _ = scripted(listing_of([{"id": 1, "customer_id": "B"}, {"id": 2, "customer_id": "Z"}]), never)
    assert depart(con, transport)["final"] == {"failed": 1}
    [(error,)] = con.execute("SELECT error FROM delivery_state WHERE kind = 'account_delete'").fetchall()
    assert error == "record listing ignored the customer_id filter (answered 'Z')"

    refused = {"statusCode": 200, "sent_count": 0, "rejected_count": 1,
               "rejected_items": [{"index": 0, "payload": 1, "errors": [{"field": None, "message": "locked"}]}]}
    transport, seen = scripted(listing_of([{"id": 1, "customer_id": "B"}]),
                               lambda r: httpx.Response(200, json=refused))
    assert depart(con, transport)["final"] == {"rejected": 1}
    assert depart(con, transport)["actions"] == {"previously_rejected": 1}  # not retried blindly
    assert replay(con, kind="account_delete") == 1
    assert depart(con, transport)["final"] == {"rejected": 1} and len(seen) == 4
