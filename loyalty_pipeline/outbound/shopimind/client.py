"""The ShopiMind HTTP client: one `httpx.Client` under the shared retry policy (httpapi/retrying.py:
retries, a shared rate limit, a deadline).

Every call ends in one of four outcomes, which is what the delivery log records:

- `ok`        2xx.
- `rejected`  a 4xx other than 408/429: permanent, carries the API's message, never retried blindly.
- `failed`    retryable trouble (timeouts, connection errors, 408, 429, 5xx) that outlived the retry
              budget or the run's deadline: retried on the next run.
- `uncertain` a non-idempotent request (an event trigger) whose bytes may have reached the server
              but whose answer was lost: it must be reconciled against the event histories, not resent.

The API key only ever goes into the `spm-api-key` header. Whatever comes back (the parsed body, an
excerpt of a body that is not JSON, a transport error's text) passes the one `Scrubber` before a
`Result` is made of it, so nothing downstream can store or log an echoed key. A body of any shape
(HTML, a JSON array, nesting too deep to parse) is carried as it is, for the callers' readers to judge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx

from ...httpapi.retrying import RateLimiter, Retrying, retry_after_seconds  # noqa: F401 (the last two: as tests name them)
from ...httpapi.scrub import Scrubber
from ...httpapi.session import api_client
from ..core.outcomes import Failed, StopRun, Uncertain, Unsent
from .models import error_message, refusal

Outcome = Literal["ok", "rejected", "failed", "uncertain"]


class ShopiMindError(StopRun):
    """A problem the whole run must stop for (bad key, broken setup); never contains the key."""


class AuthError(ShopiMindError):
    pass


@dataclass(frozen=True)
class Answer:
    """One HTTP answer as the rest of the pipeline may see it: scrubbed (see `ShopiMindClient._answer`)."""

    status: int
    body: Any  # the parsed JSON document; None when the body is not JSON (or is JSON null)
    content_type: str  # media type only, e.g. "text/html"
    excerpt: str  # the body's start, whitespace collapsed, for error messages


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    status: int | None  # HTTP status of the last answer (None: no answer)
    body: Any  # parsed JSON of the last answer, if any (scrubbed)
    error: str | None  # the API's message or the transport error, for logs and the sync log (scrubbed)
    requests: int  # HTTP requests made, retries included
    call: str = ""  # "METHOD /path", for messages
    answer: Answer | None = None  # the last answer, if any

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def fate(self) -> Unsent:
        """A result that is not `ok` as the exception the delivery core routes by: `Failed`, `Uncertain`,
        or what the refusal's message says (`models.refusal`: `SetupGone`, `TooLarge`, `Refused`)."""
        kind = {"failed": Failed, "uncertain": Uncertain}.get(self.outcome) or refusal(self.error)
        return kind(self.error or self.describe(), http_status=self.status, requests=self.requests)

    def describe(self) -> str:
        """What was called and what came back, for an error message (never the key: scrubbed)."""
        if self.answer is None:
            return f"{self.call} got no answer ({self.error or 'no detail'})"
        excerpt = f": {self.answer.excerpt!r}" if self.answer.excerpt else " (empty body)"
        return f"{self.call} answered HTTP {self.answer.status} {self.answer.content_type or 'with no type'}{excerpt}"


class ShopiMindClient:
    """Thread-safe: many workers share one client (one connection pool, one rate limit, one deadline)."""

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 30.0, connect_timeout_s: float = 5.0,
                 max_retries: int = 4, backoff_base_s: float = 0.5, backoff_max_s: float = 30.0,
                 requests_per_second: float = 0.0, concurrency: int = 8, deadline_s: float = 3600.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not api_key:
            raise AuthError("no ShopiMind API key given")
        self.base_url = base_url.rstrip("/")
        self._scrubber = Scrubber(api_key)
        self.retrying = Retrying(max_retries=max_retries, backoff_base_s=backoff_base_s, backoff_max_s=backoff_max_s,
                                 deadline_s=deadline_s, requests_per_second=requests_per_second,
                                 burst=max(concurrency, int(requests_per_second)), scrub=self.scrub)
        self.stats = self.retrying.stats  # requests, throttled, retried
        self._http = api_client(self.base_url, {"spm-api-key": api_key}, timeout_s=timeout_s,
                                connect_timeout_s=connect_timeout_s, concurrency=concurrency, transport=transport)

    def __repr__(self) -> str:
        return f"ShopiMindClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ShopiMindClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def scrub(self, text: str) -> str:
        return self._scrubber.text(text)

    def _answer(self, response: httpx.Response) -> Answer:
        """The chokepoint where API text enters the pipeline: parsed, then scrubbed whole."""
        content_type = response.headers.get("content-type", "").split(";")[0].strip()
        return Answer(response.status_code, self._scrubber.body(response), content_type,
                      self._scrubber.excerpt(response))

    def time_left(self) -> float:
        return self.retrying.time_left()

    def request(self, method: str, path: str, *, content: bytes | None = None, json_body: Any = None,
                params: dict[str, Any] | None = None, idempotent: bool = True) -> Result:
        """One API call under the shared retry policy (httpapi/retrying.py). `idempotent=False` (event
        triggers) turns a possibly-delivered transport error, and a 504, into `uncertain` instead of a
        blind retry; an answer the policy does not retry is `ok` (2xx) or `rejected` (a 401/403 stops
        the run)."""
        if content is None and json_body is not None:
            content = json.dumps(json_body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"} if content is not None else None
        call = f"{method} {path}"
        attempt = self.retrying.call(
            lambda: self._http.request(method, path, content=content, params=params, headers=headers),
            message=lambda response: error_message(self._answer(response).body, f"HTTP {response.status_code}"),
            idempotent=idempotent)
        answer = self._answer(attempt.response) if attempt.response is not None else None
        status, body = (answer.status, answer.body) if answer else (None, None)

        def result(outcome: Outcome, error: str | None) -> Result:
            return Result(outcome, status, body, error, attempt.requests, call, answer)

        if attempt.outcome != "answered":
            return result(attempt.outcome, attempt.error)
        if 200 <= status < 300:
            return result("ok", None)
        error = error_message(body, f"HTTP {status}")
        if status in (401, 403):
            raise AuthError(f"ShopiMind answered {status} ({error}): check SHOPIMIND_API_KEY and "
                            f"SHOPIMIND_BASE_URL ({self.base_url})")
        return result("rejected", error)

    # -- routes -------------------------------------------------------------------------------------

    def get(self, path: str, params: dict[str, Any] | None = None) -> Result:
        return self.request("GET", path, params=params)

    def post(self, path: str, json_body: Any) -> Result:
        return self.request("POST", path, json_body=json_body)

    def save_records(self, id_definition: int, body: bytes) -> Result:
        # Upserts on the unique key are idempotent: a lost answer is simply retried.
        return self.request("POST", f"/v1/custom-data-records/{id_definition}", content=body)

    def trigger(self, code_name: str, body: bytes) -> Result:
        return self.request("POST", f"/v1/events/trigger/{quote(code_name, safe='')}", content=body, idempotent=False)

    def histories(self, settings: dict[str, Any]) -> Result:
        return self.get("/v1/events/histories", params={"settings": json.dumps(settings)})
