"""The outbox rules on a real DuckDB file, with the API scripted by httpx.MockTransport (fault injection)."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import httpx
import pytest

from loyalty_pipeline.cli import main
from loyalty_pipeline.outbound.shopimind.accounts import deliver_accounts
from loyalty_pipeline.outbound.shopimind.client import ShopiMindClient, ShopiMindError
from loyalty_pipeline.outbound.shopimind.delivery import DeliverySettings
from loyalty_pipeline.outbound.shopimind.triggers import deliver_events
from loyalty_pipeline.warehouse.connection import connect

DEST = "https://api.test"
D1, D2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
SETTINGS = DeliverySettings(concurrency=2, history_visibility_s=0, resend_rounds=2, carry_days=3)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(tmp_path / "w.duckdb")
    yield con
    con.close()


class Api:
    """Counts requests per path and answers with the current handler for (method, path prefix)."""

    def __init__(self) -> None:
        self.calls: Counter = Counter()
        self.handlers: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        for (method, prefix), handler in self.handlers.items():
            if request.method == method and request.url.path.startswith(prefix):
                self.calls[(method, prefix)] += 1
                return handler(request)
        raise AssertionError(f"unexpected {request.method} {request.url}")

    def client(self) -> ShopiMindClient:
        return ShopiMindClient(DEST, "test-key-0123456789-abcdef", transport=httpx.MockTransport(self),
                               max_retries=1, backoff_base_s=0.001, deadline_s=30)


def lost(request: httpx.Request) -> httpx.Response:
    raise httpx.RemoteProtocolError("Server disconnected without sending a response.")


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"statusCode": 200, "data": {"queued": True}})


def histories_with(*keys: str) -> Callable[[httpx.Request], httpx.Response]:
    rows = [{"id": i, "code_name": "loyalty.points_earned", "payload": {"metaData": {"event_key": k}}}
            for i, k in enumerate(keys)]
    return lambda request: httpx.Response(200, json={"statusCode": 200, "data": rows,
                                                     "meta": {"pagination": {"has_next_page": False}}})


def add_event(con: duckdb.DuckDBPyConnection, key: str, day: dt.date, status: str = "pending") -> None:
    con.execute("INSERT INTO loyalty_events VALUES (?, ?, ?, ?, 'loyalty.points_earned', 'purchase', ?, ?)",
                [key, day, f"C-{key}", f"{key}@example.com",
                 json.dumps({"points_amount": 5, "reason": "purchase", "new_balance": 10}), status])


def states(con: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    return {k: (s, a) for k, s, a in con.execute("SELECT key, status, attempts FROM delivery_state").fetchall()}


def test_an_uncertain_event_is_never_resent_until_the_histories_say_it_is_missing(con):
    add_event(con, "E1", D1)
    api = Api()
    api.handlers = {("POST", "/v1/events/trigger"): lost, ("GET", "/v1/events/histories"):
                    lambda r: httpx.Response(503, json={"message": "down"})}
    deliver_events(con, api.client(), D1, DEST, SETTINGS)
    deliver_events(con, api.client(), D1, DEST, SETTINGS)  # next run: still cannot look it up
    assert api.calls[("POST", "/v1/events/trigger")] == 1
    assert states(con) == {"E1": ("uncertain", 1)}
    assert con.execute("SELECT error FROM delivery_state").fetchone()[0] == "reconcile failed: down (after 2 requests)"

    api.handlers[("GET", "/v1/events/histories")] = histories_with("other-key")  # reachable: not there
    api.handlers[("POST", "/v1/events/trigger")] = ok
    deliver_events(con, api.client(), D1, DEST, SETTINGS)
    assert api.calls[("POST", "/v1/events/trigger")] == 2 and states(con) == {"E1": ("sent", 2)}
    log = con.execute("SELECT status, note FROM sync_log ORDER BY logged_at, status").fetchall()
    assert [s for s, _ in log] == ["uncertain", "uncertain", "uncertain", "failed", "sent"]


def test_an_uncertain_event_found_in_the_histories_is_sent_without_a_second_request(con):
    add_event(con, "E1", D1)
    api, lookups = Api(), []
    found = histories_with("E1")
    api.handlers = {("POST", "/v1/events/trigger"): lost,
                    ("GET", "/v1/events/histories"): lambda r: (lookups.append(r), found(r))[1]}
    result = deliver_events(con, api.client(), D1, DEST, SETTINGS)
    assert api.calls[("POST", "/v1/events/trigger")] == 1
    assert states(con) == {"E1": ("sent", 1)} and result["reconciled"] == {"found": 1}
    # Searched by code_name, from the first attempt (minus a clock-skew margin), oldest first.
    settings = json.loads(lookups[0].url.params["settings"])
    first = con.execute("SELECT first_attempt_at AT TIME ZONE 'UTC' FROM delivery_state").fetchone()[0]
    since = dt.datetime.fromisoformat(settings["filter"][1]["values"].rstrip("Z"))
    assert settings["filter"][0] == {"field": "code_name", "operator": "EQUALS", "values": "loyalty.points_earned"}
    assert settings["filter"][1]["operator"] == "GREATER_THAN_OR_EQUAL_TO"
    assert dt.timedelta(seconds=299) < first - since < dt.timedelta(seconds=301)
    assert settings["order"] == [{"field": "id", "type": "asc"}] and settings["limit"] == 100


def test_stale_events_are_recorded_not_sent_and_failed_ones_are_retried_by_the_next_days_run(con):
    add_event(con, "OLD", D1 - dt.timedelta(days=10))
    add_event(con, "A", D1)
    add_event(con, "STALE", D2, status="suppressed_stale")
    add_event(con, "B", D2)
    api = Api()
    api.handlers = {("POST", "/v1/events/trigger"): lambda r: httpx.Response(503, json={"message": "busy"})}
    deliver_events(con, api.client(), D1 - dt.timedelta(days=10), DEST, SETTINGS)
    deliver_events(con, api.client(), D1, DEST, SETTINGS)
    assert states(con) == {"OLD": ("failed", 1), "A": ("failed", 1)}

    sent: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content)["metaData"]["event_key"])
        return ok(request)

    api.handlers[("POST", "/v1/events/trigger")] = record
    result = deliver_events(con, api.client(), D2, DEST, SETTINGS)
    # A (yesterday, failed) is carried over; OLD is outside carry_days: its own day's re-run sends it.
    assert sorted(sent) == ["A", "B"]
    assert states(con) == {"OLD": ("failed", 1), "A": ("sent", 2), "B": ("sent", 1), "STALE": ("suppressed_stale", 0)}
    assert result["final"] == {("sent", "loyalty.points_earned"): 2, ("suppressed_stale", "loyalty.points_earned"): 1}
    deliver_events(con, api.client(), D2, DEST, SETTINGS)
    assert sorted(sent) == ["A", "B"]  # a re-run sends nothing; the stale event is not logged twice
    assert con.execute("SELECT count(*) FROM sync_log WHERE key = 'STALE'").fetchone()[0] == 1


def add_member(con: duckdb.DuckDBPyConnection, customer_id: str, day: dt.date = D1, balance: int = 100) -> None:
    con.execute("INSERT INTO snapshots VALUES (?, ?, NULL, true, ?, ?, 'Gold', 3, DATE '2026-01-05', NULL, "
                "DATE '2026-12-31', 40, [], 'f.csv', 2)", [day, customer_id, balance, balance])


def test_rejected_items_in_another_shape_are_matched_by_payload_and_unattributable_ones_retried(con):
    for c in ("C1", "C2", "C3"):
        add_member(con, c)
    api = Api()

    def refuse_c2_without_index(request: httpx.Request) -> httpx.Response:
        records = json.loads(request.content)
        refused = [{"record": r, "error": "points_balance: too low"} for r in records
                   if r["contact_id"]["value"] == "C2"]
        return httpx.Response(200, json={"sent_count": len(records) - 1, "rejected_count": 1,
                                         "rejected_items": refused})

    api.handlers = {("POST", "/v1/custom-data-records"): refuse_c2_without_index}
    result = deliver_accounts(con, api.client(), D1, DEST, 7, SETTINGS)
    assert states(con) == {"C1": ("sent", 1), "C2": ("rejected", 1), "C3": ("sent", 1)}
    assert con.execute("SELECT error FROM delivery_state WHERE key = 'C2'").fetchone()[0] == \
        "points_balance: too low"
    assert result["final"] == {"sent": 2, "rejected": 1}
    assert con.execute("SELECT customer_id, tier, tier_since::VARCHAR FROM account_sync_state ORDER BY 1"
                       ).fetchall() == [("C1", "Gold", "2026-01-05"), ("C3", "Gold", "2026-01-05")]

    add_member(con, "C4", D2)
    add_member(con, "C1", D2, balance=120)
    api.handlers = {("POST", "/v1/custom-data-records"): lambda r: httpx.Response(
        200, json={"rejected_items": ["something went wrong with one of them"]})}
    deliver_accounts(con, api.client(), D2, DEST, 7, SETTINGS)
    # Which one was refused cannot be told (and the counts are missing): not the bulk envelope, so neither
    # is taken as acknowledged; both are uncertain (was: failed, before issue 13) and go again next run.
    assert {k: v for k, v in states(con).items() if k in ("C1", "C4")} == {"C1": ("uncertain", 2),
                                                                          "C4": ("uncertain", 1)}
    assert con.execute("SELECT error FROM delivery_state WHERE key = 'C4'").fetchone()[0].startswith(
        "2xx answer that does not add up (not the bulk envelope: sent_count None, rejected_count None")
    assert con.execute("SELECT points_balance FROM account_sync_state WHERE customer_id = 'C1'").fetchone() == (100,)


def test_a_rejected_event_is_never_resent_until_ops_replay_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture):
    path = tmp_path / "ops.duckdb"
    con = connect(path)
    add_event(con, "E1", D1)
    api = Api()
    api.handlers = {("POST", "/v1/events/trigger"): lambda r: httpx.Response(
        400, json={"statusCode": 400, "message": "metaData.reason must be a string of at most 255 chars"})}
    deliver_events(con, api.client(), D1, DEST, SETTINGS)
    deliver_events(con, api.client(), D1, DEST, SETTINGS)
    assert api.calls[("POST", "/v1/events/trigger")] == 1
    assert con.execute("SELECT status, http_status, error FROM delivery_state").fetchall() == [
        ("rejected", 400, "metaData.reason must be a string of at most 255 chars")]
    con.close()

    monkeypatch.setenv("LOYALTY_WAREHOUSE", str(path))
    assert main(["shopimind-replay", "--kind", "event", "--day", D1.isoformat()]) == 0
    assert capsys.readouterr().out.startswith("1 rejected key(s) released")
    con = connect(path)
    api.handlers[("POST", "/v1/events/trigger")] = ok
    deliver_events(con, api.client(), D1, DEST, SETTINGS)
    assert api.calls[("POST", "/v1/events/trigger")] == 2 and states(con) == {"E1": ("sent", 2)}
    con.close()


def gone_unless(live: set[int], message: str = "Custom data definition not found"):
    """saveCustomDataRecords that only knows the definitions in `live` (by id, read at call time)."""
    def handler(request: httpx.Request) -> httpx.Response:
        if int(request.url.path.rsplit("/", 1)[1]) in live:
            return saved(request)
        return httpx.Response(400, json={"statusCode": 400, "message": message})
    return handler


def trigger_gone_unless(declared: list[bool]):
    """triggerEvent that finds the event type only while declared[0]."""
    return lambda r: ok(r) if declared[0] else httpx.Response(
        400, json={"statusCode": 400, "message": "event 'loyalty.points_earned' not found"})


def test_a_bootstrap_gone_mid_run_stops_the_run_without_rejecting_the_rows(con):
    """Without a way to set up again (no `setup`), a gone definition or event type stops the run."""
    add_event(con, "E1", D1)
    add_member(con, "C1")
    api = Api()
    api.handlers = {("POST", "/v1/events/trigger"): trigger_gone_unless([False]),
                    ("POST", "/v1/custom-data-records"): gone_unless(set())}
    with pytest.raises(ShopiMindError, match="event type changed during the run; re-run to set it up"):
        deliver_events(con, api.client(), D1, DEST, SETTINGS)
    with pytest.raises(ShopiMindError, match="definition changed during the run; re-run to set it up"):
        deliver_accounts(con, api.client(), D1, DEST, 7, SETTINGS)
    assert states(con) == {"E1": ("failed", 1), "C1": ("failed", 1)}  # retried by the next run


def test_a_gone_bootstrap_is_set_up_again_once_and_the_refused_rows_retried_once(con):
    add_event(con, "E1", D1)
    add_event(con, "E2", D1)
    add_member(con, "C1")
    add_member(con, "C2")
    api, live, declared, calls = Api(), set(), [False], []

    def setup(heal: bool) -> int:  # what the assets pass: the cached id first, then a re-created one
        calls.append(heal)
        if heal:
            live.add(8)
            declared[0] = True
        return 8 if heal else 7

    api.handlers = {("POST", "/v1/events/trigger"): trigger_gone_unless(declared),
                    ("POST", "/v1/custom-data-records"): gone_unless(live)}
    result = deliver_events(con, api.client(), D1, DEST, SETTINGS, setup=setup)
    assert calls == [False, True] and result["setup_healed"]
    assert api.calls[("POST", "/v1/events/trigger")] == 4  # each event refused once, then sent
    calls.clear()
    result = deliver_accounts(con, api.client(), D1, DEST, None, SETTINGS, setup=setup)
    assert calls == [False, True] and result["setup_healed"] and result["definition_id"] == 8
    assert api.calls[("POST", "/v1/custom-data-records")] == 2  # the refused batch, then its retry
    assert states(con) == {"C1": ("sent", 2), "C2": ("sent", 2), "E1": ("sent", 2), "E2": ("sent", 2)}
    log = con.execute("SELECT key, status, note FROM sync_log WHERE key IN ('C1', 'E1') ORDER BY key, attempt"
                      ).fetchall()
    healing = "setup gone: setup re-run, then retried once"
    assert log == [("C1", "failed", healing), ("C1", "sent", None), ("E1", "failed", healing), ("E1", "sent", None)]


def test_a_bootstrap_gone_again_during_the_retry_fails_the_run_clearly(con):
    add_event(con, "E1", D1)
    add_member(con, "C1")
    api, calls = Api(), []

    def setup(heal: bool) -> int:  # set up again, but deleted again before the retry lands
        calls.append(heal)
        return 8 if heal else 7

    api.handlers = {("POST", "/v1/events/trigger"): trigger_gone_unless([False]),
                    ("POST", "/v1/custom-data-records"): gone_unless(set(), "custom data definition is not active")}
    with pytest.raises(ShopiMindError, match=r"not active: the LoyaltyAccount definition is still refused after "
                                             r"setup was re-run in this run"):
        deliver_accounts(con, api.client(), D1, DEST, None, SETTINGS, setup=setup)
    with pytest.raises(ShopiMindError, match="the event type is still refused after setup was re-run"):
        deliver_events(con, api.client(), D1, DEST, SETTINGS, setup=setup)
    assert calls == [False, True, False, True]  # setup re-run once per run, not in a loop
    assert api.calls[("POST", "/v1/custom-data-records")] == 2 and api.calls[("POST", "/v1/events/trigger")] == 2
    assert states(con) == {"E1": ("failed", 2), "C1": ("failed", 2)}  # failed, never rejected: retried next run


def test_nothing_to_send_makes_no_request_and_asks_for_no_setup(con):
    add_member(con, "C1")
    add_event(con, "E1", D1)
    api = Api()
    api.handlers = {("POST", "/v1/events/trigger"): ok, ("POST", "/v1/custom-data-records"): gone_unless({7})}
    calls: list[bool] = []

    def setup(heal: bool) -> int:
        calls.append(heal)
        return 7

    deliver_accounts(con, api.client(), D1, DEST, None, SETTINGS, setup=setup)
    deliver_events(con, api.client(), D1, DEST, SETTINGS, setup=setup)
    assert calls == [False, False] and sum(api.calls.values()) == 2
    api.handlers = {}  # any request now fails the test
    calls.clear()
    for _ in range(2):  # the day again: acknowledged account, sent event, nothing uncertain or failed
        deliver_accounts(con, api.client(), D1, DEST, None, SETTINGS, setup=setup)
        deliver_events(con, api.client(), D1, DEST, SETTINGS, setup=setup)
    assert calls == [] and sum(api.calls.values()) == 2


def test_setup_is_cached_per_destination_and_re_run_only_for_what_changed(con):
    from loyalty_pipeline.outbound.shopimind.models import EventDeclaration
    from loyalty_pipeline.outbound.shopimind.setup import ensure_setup_cached, stored_setup

    meta = [{"name": "points_amount", "type": "number", "required": True}]
    earned = EventDeclaration(name="Points earned", code_name="loyalty.points_earned", properties={"metaData": meta})
    expired = EventDeclaration(name="Points expired", code_name="loyalty.points_expired", properties={"metaData": meta})
    api = Api()
    api.handlers = {
        ("GET", "/v1/custom-data-definitions"): lambda r: httpx.Response(
            200, json={"data": [], "meta": {"pagination": {"has_next_page": False}}}),
        ("POST", "/v1/custom-data-definitions"): lambda r: httpx.Response(200, json={"data": {"id_definition": 7}}),
        ("POST", "/v1/events"): lambda r: httpx.Response(200, json={"data": {}}),
    }
    with api.client() as client:
        first = ensure_setup_cached(con, client, DEST, [earned])
        assert (first.definition_id, first.definition_action, first.events) == (7, "created", {
            "loyalty.points_earned": "created"})
        assert first.requests == 3 and sum(api.calls.values()) == 3
        again = ensure_setup_cached(con, client, DEST, [earned])
        assert (again.summary, again.requests, sum(api.calls.values())) == ("cached", 0, 3)
        assert ensure_setup_cached(con, client, "https://other.test", [earned]).requests == 3  # per destination
        # A newly enabled type: declared alone. A changed schema: re-declared alone.
        added = ensure_setup_cached(con, client, DEST, [earned, expired])
        assert added.events == {"loyalty.points_earned": "cached", "loyalty.points_expired": "created"}
        assert added.requests == 1 and added.definition_action == "cached"
        changed = EventDeclaration(name=earned.name, code_name=earned.code_name,
                            properties={"metaData": [*meta, {"name": "reason", "type": "text", "required": False}]})
        assert ensure_setup_cached(con, client, DEST, [changed, expired]).requests == 1
        assert ensure_setup_cached(con, client, DEST, [changed, expired]).requests == 0
        # Only the events part asked for, and it is in place: the definition is not looked at.
        assert ensure_setup_cached(con, client, DEST, [changed], definition=False).requests == 0
        # ShopiMind said it is gone: `force` re-runs the part asked for, whatever the cache says.
        healed = ensure_setup_cached(con, client, DEST, [changed, expired], events=False, force=True)
        assert (healed.definition_action, healed.requests) == ("created", 2)
    stored = stored_setup(con, DEST)
    assert stored.definition_id == 7 and sorted(stored.event_hashes) == ["loyalty.points_earned",
                                                                          "loyalty.points_expired"]


def saved(request: httpx.Request) -> httpx.Response:
    """saveCustomDataRecords accepting every record, with the documented bulk envelope."""
    n = len(json.loads(request.content))
    return httpx.Response(200, json={"statusCode": 200, "sent_count": n, "rejected_count": 0, "rejected_items": []})


@pytest.mark.parametrize("lost_how", ["transport", "envelope"])
def test_an_account_not_acknowledged_is_sent_again_even_when_its_values_went_back(con, lost_how: str):
    """ShopiMind may hold a push that was not acknowledged (applied, answer lost or unreadable): a later
    day whose values equal the last acknowledged ones must still be sent, or ShopiMind keeps the other."""
    add_member(con, "C1", D1, balance=100)
    api = Api()
    api.handlers = {("POST", "/v1/custom-data-records"): saved}
    deliver_accounts(con, api.client(), D1, DEST, 7, SETTINGS)
    add_member(con, "C1", D2, balance=150)
    unacknowledged = lost if lost_how == "transport" else lambda r: httpx.Response(
        200, json={"statusCode": 200, "sent_count": 1})  # applied, but no rejected_count/items: not an envelope
    api.handlers = {("POST", "/v1/custom-data-records"): unacknowledged}
    deliver_accounts(con, api.client(), D2, DEST, 7, SETTINGS)
    assert states(con) == {"C1": ("failed" if lost_how == "transport" else "uncertain", 2)}

    con.execute("UPDATE snapshots SET points_balance = 100 WHERE snapshot_date = $d", {"d": D2})  # back to D1's
    sent: list[dict] = []
    api.handlers = {("POST", "/v1/custom-data-records"): lambda r: (sent.extend(json.loads(r.content)), saved(r))[1]}
    result = deliver_accounts(con, api.client(), D2, DEST, 7, SETTINGS)
    assert result["actions"] == {"send": 1}
    assert [r["points_balance"] for r in sent] == [100] and states(con) == {"C1": ("sent", 3)}


def add_raw_event(con: duckdb.DuckDBPyConnection, key: str, metadata: str) -> None:
    con.execute("INSERT INTO loyalty_events VALUES (?, ?, ?, ?, 'loyalty.points_earned', 'purchase', ?, 'pending')",
                [key, D1, f"C-{key}", f"{key}@example.com", metadata])


def test_an_event_whose_trigger_cannot_be_built_is_rejected_with_its_reason_and_the_rest_are_sent(con):
    add_event(con, "E1", D1)
    add_raw_event(con, "E2", "null")  # JSON, but not an object: no trigger body can be made of it
    add_raw_event(con, "E3", '["points", 5]')
    add_event(con, "E4", D1)
    api = Api()
    api.handlers = {("POST", "/v1/events/trigger"): ok}
    deliver_events(con, api.client(), D1, DEST, SETTINGS)
    assert api.calls[("POST", "/v1/events/trigger")] == 2
    assert {k: s for k, (s, _) in states(con).items()} == {"E1": "sent", "E2": "rejected", "E3": "rejected",
                                                          "E4": "sent"}
    errors = dict(con.execute("SELECT key, error FROM delivery_state WHERE status = 'rejected'").fetchall())
    assert errors["E2"].startswith("not sent, the trigger cannot be built: metadata") and "null" in errors["E2"]


def test_a_trigger_answered_2xx_with_something_else_than_json_is_uncertain_and_reconciled(con):
    """A 200 HTML page (a portal, a misrouted balancer) does not say ShopiMind queued the event."""
    add_event(con, "E1", D1)
    add_event(con, "E2", D1)
    api = Api()
    answers = iter([httpx.Response(200, text="<html>maintenance</html>", headers={"content-type": "text/html"}),
                    httpx.Response(200, json={"statusCode": 500, "message": "upstream failed"})])
    api.handlers = {("POST", "/v1/events/trigger"): lambda r: next(answers, None) or ok(r),
                    ("GET", "/v1/events/histories"): histories_with()}
    result = deliver_events(con, api.client(), D1, DEST, SETTINGS)
    # Both looked up (not there), then resent once; never taken as sent on the strength of a 200.
    assert api.calls[("POST", "/v1/events/trigger")] == 4 and result["reconciled"] == {"not_found": 2}
    assert states(con) == {"E1": ("sent", 2), "E2": ("sent", 2)}
    log = con.execute("SELECT status, error FROM sync_log WHERE status = 'uncertain' ORDER BY error").fetchall()
    assert [s for s, _ in log] == ["uncertain", "uncertain"]
    assert "text/html" in log[0][1] + log[1][1] and "statusCode 500" in log[0][1] + log[1][1]


def test_a_bulk_envelope_with_stringified_counts_that_add_up_is_read(con):
    """Listings stringify scalars; counts given as digit strings are still counts (they must add up)."""
    for c in ("C1", "C2"):
        add_member(con, c)
    api = Api()
    api.handlers = {("POST", "/v1/custom-data-records"): lambda r: httpx.Response(200, json={
        "statusCode": "200", "sent_count": "1", "rejected_count": "1",
        "rejected_items": [{"index": "1", "payload": json.loads(r.content)[1], "errors": ["tier: too long"]}]})}
    deliver_accounts(con, api.client(), D1, DEST, 7, SETTINGS)
    assert states(con) == {"C1": ("sent", 1), "C2": ("rejected", 1)}
    assert con.execute("SELECT error FROM delivery_state WHERE key = 'C2'").fetchone() == ("tier: too long",)
