"""The ShopiMind client's delivery rules, with faults injected by httpx.MockTransport and the emulator."""

from __future__ import annotations

import json
import time
from urllib.parse import quote, quote_plus

import httpx
import pytest

from loyalty_pipeline.devtools.emulator import Emulator
from loyalty_pipeline.outbound.shopimind.client import AuthError, RateLimiter, ShopiMindClient, retry_after_seconds

KEY = "test-key-0123456789-abcdef"


def scripted(*replies, seen: list | None = None) -> httpx.MockTransport:
    """A transport answering each request with the next reply: a status, (status, headers), or an exception."""
    queue = list(replies)

    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        reply = queue.pop(0)
        if isinstance(reply, Exception):
            raise reply
        status, headers = reply if isinstance(reply, tuple) else (reply, {})
        body = {"statusCode": status, "message": f"reply {status}"}
        if status == 200:
            body = {"statusCode": 200, "sent_count": 1, "rejected_count": 0, "rejected_items": []}
        return httpx.Response(status, json=body, headers=headers)

    return httpx.MockTransport(handle)


def client(transport: httpx.BaseTransport, **kwargs) -> ShopiMindClient:
    options = {"max_retries": 3, "backoff_base_s": 0.001, "backoff_max_s": 0.01, "deadline_s": 30.0}
    return ShopiMindClient("https://api.test", KEY, transport=transport, **{**options, **kwargs})


def test_5xx_408_and_connection_errors_are_retried_then_succeed():
    seen: list[httpx.Request] = []
    c = client(scripted(500, 503, 408, httpx.ConnectError("refused"), 200, seen=seen), max_retries=4)
    result = c.save_records(7, b"[]")
    assert (result.outcome, result.status, result.requests) == ("ok", 200, 5)
    assert all(r.headers["spm-api-key"] == KEY and r.url.path == "/v1/custom-data-records/7" for r in seen)


def test_the_retry_budget_ends_in_failed_with_the_last_error():
    result = client(scripted(502, 502, 502, 502, 200), max_retries=3).save_records(1, b"[]")
    assert (result.outcome, result.status, result.requests) == ("failed", 502, 4)
    assert "reply 502" in result.error


def test_429_honours_retry_after_and_does_not_use_the_retry_budget():
    throttled = (429, {"Retry-After": "0.2"})
    start = time.monotonic()
    result = client(scripted(throttled, throttled, throttled, 200), max_retries=0).save_records(1, b"[]")
    assert (result.outcome, result.requests) == ("ok", 4)
    assert time.monotonic() - start >= 0.55  # three waits of 0.2 s, not the 1 ms backoff


def test_a_429_storm_is_bounded_by_the_deadline():
    c = client(scripted(*[(429, {"Retry-After": "1"})] * 10), deadline_s=1.5)
    start = time.monotonic()
    result = c.save_records(1, b"[]")
    assert result.outcome == "failed" and "deadline" in result.error
    assert time.monotonic() - start < 1.6


def test_other_4xx_are_permanent_with_the_api_message_and_never_retried():
    seen: list[httpx.Request] = []
    result = client(scripted(400, 200, seen=seen)).trigger("loyalty.x", b"{}")
    assert (result.outcome, result.status, result.error, len(seen)) == ("rejected", 400, "reply 400", 1)


def test_a_lost_answer_makes_a_trigger_uncertain_but_a_record_upsert_is_retried():
    lost = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    trigger = client(scripted(lost, 200)).trigger("loyalty.points_earned", b"{}")
    assert (trigger.outcome, trigger.requests) == ("uncertain", 1)
    assert client(scripted(httpx.ReadTimeout("timed out"), 200)).save_records(1, b"[]").outcome == "ok"
    # A gateway timeout says nothing about whether the upstream acted: uncertain too, for a trigger.
    assert client(scripted(504, 200)).trigger("x", b"{}").outcome == "uncertain"
    # A connection that never opened sent nothing: safe to retry even a trigger.
    assert client(scripted(httpx.ConnectError("refused"), 200)).trigger("x", b"{}").outcome == "ok"


def test_a_bad_key_stops_the_run_and_the_key_is_never_in_errors_or_repr():
    c = client(scripted(401))
    with pytest.raises(AuthError) as info:
        c.trigger("x", b"{}")
    assert "401" in str(info.value) and KEY not in str(info.value)
    assert KEY not in repr(c)
    echo = client(scripted(400))  # an API that echoes the key in its message is scrubbed
    echo._http._transport = httpx.MockTransport(
        lambda r: httpx.Response(400, json={"message": f"bad key {r.headers['spm-api-key']}"}))
    assert echo.save_records(1, b"[]").error == "bad key ***"


def test_any_other_httpx_error_ends_the_call_scrubbed_and_never_escapes():
    # httpx refuses to send a header with a newline and quotes it in its error: never sent, not retried.
    refused = httpx.LocalProtocolError(f"Illegal header value b'{KEY}\\n'")
    attempt = client(scripted(refused, 200)).trigger("x", b"{}")
    assert (attempt.outcome, attempt.requests) == ("failed", 1)
    assert "LocalProtocolError" in attempt.error and KEY not in attempt.error
    # An answer that could not be decoded may have been acted on: a trigger is uncertain, never re-sent blindly.
    assert client(scripted(httpx.DecodingError("bad gzip"), 200)).trigger("x", b"{}").outcome == "uncertain"


def test_retry_after_accepts_seconds_and_http_dates():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert 0 <= retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait


def test_the_rate_limiter_is_shared_and_paced():
    limiter = RateLimiter(rate=50, burst=5)
    start = time.monotonic()
    for _ in range(30):
        assert limiter.acquire(deadline=time.monotonic() + 10)
    assert time.monotonic() - start >= (30 - 5) / 50 * 0.9
    limiter.pause(0.3)
    start = time.monotonic()
    limiter.acquire(deadline=time.monotonic() + 10)
    assert time.monotonic() - start >= 0.29
    limiter.pause(10)
    start = time.monotonic()
    assert not limiter.acquire(deadline=time.monotonic() + 0.1)  # gives up instead of waiting past a deadline
    assert time.monotonic() - start < 0.1


@pytest.mark.real  # long scenario: a rate-limited burst takes seconds by design
def test_against_the_emulator_a_rate_limited_burst_all_gets_through():
    with Emulator(rate_limit_rps=40, rate_limit_burst=5) as emu:
        c = ShopiMindClient(emu.base_url, emu.api_key, backoff_base_s=0.01, max_retries=0, deadline_s=30)
        body = json.dumps({"name": "E", "code_name": "e", "properties": {"metaData": []}}).encode()
        assert c.request("POST", "/v1/events", content=body).ok
        results = [c.trigger("e", json.dumps({"contact": {"email": f"{i}@x.io"}}).encode()) for i in range(30)]
        assert {r.outcome for r in results} == {"ok"}
        assert len(emu.state()["histories"]) == 30
        assert c.stats["throttled"] > 0  # the storm happened, and cost no retry budget


# A key in which every echoed form differs: raw, JSON-escaped, URL-encoded (quote, quote_plus, lower hex).
ODD_KEY = 'odd"key/with+plus&back\\slash-0123456789'
ODD_FORMS = (ODD_KEY, json.dumps(ODD_KEY)[1:-1], quote(ODD_KEY, safe=""), quote_plus(ODD_KEY),
             quote(ODD_KEY, safe="").lower())


def echoing(status: int, content_type: str = "application/json") -> httpx.MockTransport:
    """A server that echoes the request's key in every form, everywhere in its answer."""
    def handle(request: httpx.Request) -> httpx.Response:
        key = request.headers["spm-api-key"]
        headers = json.dumps(dict(request.headers))  # JSON text inside a string: the JSON-escaped form
        if content_type != "application/json":
            text = f"<html>{key} {headers} {quote(key, safe='')} {quote_plus(key)}</html>"
            return httpx.Response(status, text=text, headers={"content-type": content_type})
        body = {"statusCode": status, "message": f"request headers: {headers}", "sent_count": 0,
                "rejected_count": 1, key: [quote(key, safe="").lower()],
                "rejected_items": [{"index": 0, "payload": {"k": key},
                                    "errors": [{"field": "contact_id", "message": f"{key} {quote_plus(key)}"}]}]}
        return httpx.Response(status, json=body)
    return httpx.MockTransport(handle)


@pytest.mark.parametrize(("status", "content_type"), [(200, "application/json"), (400, "application/json"),
                                                       (200, "text/html"), (502, "text/html")])
def test_everything_an_answer_carries_is_scrubbed_before_anything_reads_it(status: int, content_type: str):
    c = ShopiMindClient("https://api.test", ODD_KEY, transport=echoing(status, content_type), max_retries=0,
                        deadline_s=5)
    for result in (c.save_records(1, b"[]"), c.get("/v1/custom-data-definitions"), c.trigger("x", b"{}")):
        assert not [form for form in ODD_FORMS if form in repr(result)], repr(result)
        seen = repr(result) + result.describe()  # what error messages quote of an answer
        assert "***" in seen and not [form for form in ODD_FORMS if form in seen], seen


@pytest.mark.parametrize("body", [b"<html>maintenance</html>", b"[1, 2]", b"null", b'"text"', b"",
                                  b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe not utf-8"])
def test_any_body_gives_a_result_and_never_breaks_the_client(body: bytes):
    transport = httpx.MockTransport(lambda r: httpx.Response(200, content=body))
    result = client(transport).get("/v1/events")
    assert (result.outcome, result.status) == ("ok", 200)
    assert result.body is None or not isinstance(result.body, dict)
    assert "HTTP 200" in result.describe() and "GET /v1/events" in result.describe()
