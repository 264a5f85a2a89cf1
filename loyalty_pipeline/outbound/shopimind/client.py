"""The ShopiMind HTTP client: one `httpx.Client`, retries, a shared rate limit, a deadline.

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

import email.utils
import json
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx

from ..core.outcomes import Failed, StopRun, Uncertain, Unsent
from .models import error_message, refusal
from .scrub import Scrubber

Outcome = Literal["ok", "rejected", "failed", "uncertain"]

USER_AGENT = "loyalty-pipeline/0.1"
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Transport errors raised before any byte of the request could reach the server: always safe to retry.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
# Transport errors after the request may have been (partly) sent: the server may have acted on it.
_MAYBE_SENT = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.WriteError,
               httpx.RemoteProtocolError, httpx.NetworkError, httpx.TimeoutException)


class ShopiMindError(StopRun):
    """A problem the whole run must stop for (bad key, broken setup); never contains the key."""


class AuthError(ShopiMindError):
    pass


EXCERPT_CHARS = 200  # of an answer, in error messages


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


class RateLimiter:
    """Token bucket shared by every worker thread, plus a global pause after a 429's Retry-After."""

    def __init__(self, rate: float, burst: int | None = None) -> None:
        self.rate = rate
        self.capacity = float(burst or max(1, int(rate)))
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self.paused_until = 0.0
        self.lock = threading.Lock()

    def acquire(self, deadline: float) -> bool:
        """Wait for a token; False if that would pass the deadline."""
        while True:
            with self.lock:
                now = time.monotonic()
                wait = self.paused_until - now
                if wait <= 0 and self.rate > 0:
                    self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
                    self.stamp = now
                    if self.tokens >= 1:
                        self.tokens -= 1
                        return True
                    wait = (1 - self.tokens) / self.rate
                elif wait <= 0:  # rate 0 = no client-side limit
                    return True
            if time.monotonic() + wait > deadline:
                return False
            time.sleep(wait)

    def pause(self, seconds: float) -> None:
        """The server said "slow down": every worker waits, not only the one that got the 429."""
        with self.lock:
            self.paused_until = max(self.paused_until, time.monotonic() + seconds)
            self.tokens = 0.0
            self.stamp = max(self.stamp, self.paused_until)


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date), None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


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
        self.max_retries = max_retries
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.deadline = time.monotonic() + deadline_s
        self.limiter = RateLimiter(requests_per_second, burst=max(concurrency, int(requests_per_second)))
        self.stats = {"requests": 0, "throttled": 0, "retried": 0}
        self._stats_lock = threading.Lock()
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"spm-api-key": api_key, "Accept": "application/json", "User-Agent": USER_AGENT},
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2),
            follow_redirects=False,  # a redirect would re-send the key to wherever it points
            transport=transport,
        )

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
        try:
            body = self._scrubber.json(json.loads(response.content)) if response.content.strip() else None
        except (ValueError, RecursionError):  # not JSON (or not UTF-8), or nested beyond reading
            body = None
        excerpt = " ".join(self.scrub(response.text).split())
        content_type = response.headers.get("content-type", "").split(";")[0].strip()
        return Answer(response.status_code, body, content_type,
                      excerpt[:EXCERPT_CHARS] + ("…" if len(excerpt) > EXCERPT_CHARS else ""))

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def _count(self, name: str) -> None:
        with self._stats_lock:
            self.stats[name] += 1

    def _backoff(self, attempt: int) -> float:
        """Exponential with "equal jitter": half the delay fixed, half random, capped."""
        delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return delay / 2 + random.uniform(0, delay / 2)

    def request(self, method: str, path: str, *, content: bytes | None = None, json_body: Any = None,
                params: dict[str, Any] | None = None, idempotent: bool = True) -> Result:
        """One API call with retries. `idempotent=False` (event triggers) turns a possibly-delivered
        transport error, and a 504, into `uncertain` instead of a blind retry.

        The loop is written out, not stamina's or tenacity's: a 429 must not count against the retry
        budget (both count every attempt), must pause every worker through the shared limiter rather
        than sleep in this thread, and no wait may pass the run's deadline, shared by all calls
        (stamina's timeout is per call and checked after the attempt). With tenacity that is a custom
        stop, wait and retry_error_callback over a counter kept here: the same rules in more pieces,
        replacing the half-dozen lines below that count, check and sleep."""
        if content is None and json_body is not None:
            content = json.dumps(json_body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"} if content is not None else None
        call = f"{method} {path}"
        attempts = requests = 0
        answer: Answer | None = None
        error = "deadline reached before the first request"

        def result(outcome: Outcome, error: str | None) -> Result:
            status, body = (answer.status, answer.body) if answer else (None, None)
            return Result(outcome, status, body, error, requests, call, answer)

        while True:
            if not self.limiter.acquire(self.deadline):
                return result("failed", f"run deadline reached; last error: {error}")
            requests += 1
            self._count("requests")
            wait: float | None = None
            try:
                response = self._http.request(method, path, content=content, params=params, headers=headers)
            except _NOT_SENT as exc:
                answer, error = None, f"{type(exc).__name__}: {self.scrub(str(exc)) or 'no detail'}"
            except _MAYBE_SENT as exc:
                answer, error = None, f"{type(exc).__name__}: {self.scrub(str(exc)) or 'no detail'}"
                if not idempotent:
                    return result("uncertain", error)
            else:
                answer = self._answer(response)
                status = answer.status
                if 200 <= status < 300:
                    return result("ok", None)
                error = error_message(answer.body, f"HTTP {status}")
                if status == 429:
                    # Throttling is not a failure: it does not use the retry budget; the deadline bounds it.
                    self._count("throttled")
                    wait = retry_after_seconds(response.headers.get("Retry-After"))
                    self.limiter.pause(wait if wait is not None else self._backoff(1))
                    continue
                if status in (401, 403):
                    raise AuthError(f"ShopiMind answered {status} ({error}): check SHOPIMIND_API_KEY and "
                                    f"SHOPIMIND_BASE_URL ({self.base_url})")
                if status not in RETRYABLE_STATUSES:
                    return result("rejected", error)
                if status == 504 and not idempotent:  # a gateway timeout says nothing of the upstream
                    return result("uncertain", error)
                wait = retry_after_seconds(response.headers.get("Retry-After"))
            attempts += 1
            if attempts > self.max_retries:
                return result("failed", f"{error} (after {requests} requests)")
            self._count("retried")
            delay = wait if wait is not None else self._backoff(attempts)
            if time.monotonic() + delay > self.deadline:
                return result("failed", f"run deadline reached; last error: {error}")
            time.sleep(delay)

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
