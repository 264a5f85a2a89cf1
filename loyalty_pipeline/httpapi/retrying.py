"""The one retry policy of the pipeline's HTTP clients: a shared rate limit, throttling, backoff, a deadline.

`Retrying.call(send)` sends one request until it gets an answer worth judging, and says how it ended:

- `answered`  a 2xx, or a status that retrying cannot change (a 4xx other than 408/429): the caller
              judges it (ShopiMind: `rejected`, or stops on 401/403; a pull: fails naming the page).
- `failed`    retryable trouble (timeouts, connection errors, 408, 429, 5xx) that outlived the retry
              budget or the deadline.
- `uncertain` a non-idempotent request whose bytes may have reached the server but whose answer was
              lost (a transport error after sending, or a 504): never retried blindly.

The rules: a 429 waits its Retry-After (or a backoff) through the shared limiter, so every thread of
the client slows down, and does not use the retry budget; the deadline bounds it. Other retryable
trouble waits Retry-After if given, else exponential backoff with "equal jitter", within `max_retries`.
No wait ever passes the deadline, which every call of the client shares, and no request starts after it.

The loop is written out, not stamina's or tenacity's: a 429 must not count against the retry budget
(both count every attempt), must pause every worker through the shared limiter rather than sleep in
this thread, and no wait may pass the run's deadline, shared by all calls (stamina's timeout is per call
and checked after the attempt). With tenacity that is a custom stop, wait and retry_error_callback over a
counter kept here: the same rules in more pieces, replacing the dozen lines of `call` that count, check
and sleep.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import httpx

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Transport errors raised before any byte of the request could reach the server: always safe to retry.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
# Transport errors after the request may have been (partly) sent: the server may have acted on it.
MAYBE_SENT = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.WriteError,
              httpx.RemoteProtocolError, httpx.NetworkError, httpx.TimeoutException)


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


@dataclass(frozen=True)
class Attempt:
    """How one call ended (see the module docstring)."""

    outcome: Literal["answered", "failed", "uncertain"]
    response: httpx.Response | None  # the last answer; None when the last try got none
    error: str | None  # why it failed (scrubbed): the last answer's message or the transport error
    requests: int  # HTTP requests made, retries included


class Retrying:
    """The policy and its shared state (deadline, limiter, counters) for one client; thread-safe."""

    def __init__(self, *, max_retries: int = 4, backoff_base_s: float = 0.5, backoff_max_s: float = 30.0,
                 deadline_s: float = 3600.0, requests_per_second: float = 0.0, burst: int | None = None,
                 scrub: Callable[[str], str] = str) -> None:
        self.max_retries = max_retries
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.deadline = time.monotonic() + deadline_s
        self.limiter = RateLimiter(requests_per_second, burst=burst)
        self.scrub = scrub
        self.stats = {"requests": 0, "throttled": 0, "retried": 0}
        self._stats_lock = threading.Lock()

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def _count(self, name: str) -> None:
        with self._stats_lock:
            self.stats[name] += 1

    def backoff(self, attempt: int) -> float:
        """Exponential with "equal jitter": half the delay fixed, half random, capped."""
        delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return delay / 2 + random.uniform(0, delay / 2)

    def call(self, send: Callable[[], httpx.Response], *, message: Callable[[httpx.Response], str],
             idempotent: bool = True) -> Attempt:
        """Send until answered, failed or uncertain. `message(response)`: the (scrubbed) error an answer
        carries, for the `failed` error text."""
        attempts = requests = 0
        response: httpx.Response | None = None
        error = "deadline reached before the first request"
        while True:
            # No request starts past the deadline, whether or not the limiter makes it wait.
            if self.time_left() <= 0 or not self.limiter.acquire(self.deadline):
                return Attempt("failed", response, f"run deadline reached; last error: {error}", requests)
            requests += 1
            self._count("requests")
            wait: float | None = None
            try:
                response = send()
            except NOT_SENT as exc:
                response, error = None, f"{type(exc).__name__}: {self.scrub(str(exc)) or 'no detail'}"
            except MAYBE_SENT as exc:
                response, error = None, f"{type(exc).__name__}: {self.scrub(str(exc)) or 'no detail'}"
                if not idempotent:
                    return Attempt("uncertain", None, error, requests)
            except httpx.HTTPError as exc:
                # Anything else httpx raises (a header it refuses to send, an undecodable body, redirects)
                # is no transient trouble: said once, scrubbed (its text may quote a header). A request
                # httpx refused never left; any other may have reached the server.
                error = f"{type(exc).__name__}: {self.scrub(str(exc)) or 'no detail'}"
                sent = not isinstance(exc, httpx.LocalProtocolError)
                return Attempt("uncertain" if sent and not idempotent else "failed", None, error, requests)
            else:
                status = response.status_code
                if status < 300 or status not in RETRYABLE_STATUSES:
                    return Attempt("answered", response, None, requests)
                error = message(response)
                if status == 429:
                    # Throttling is not a failure: it does not use the retry budget; the deadline bounds it.
                    self._count("throttled")
                    wait = retry_after_seconds(response.headers.get("Retry-After"))
                    self.limiter.pause(wait if wait is not None else self.backoff(1))
                    continue
                if status == 504 and not idempotent:  # a gateway timeout says nothing of the upstream
                    return Attempt("uncertain", response, error, requests)
                wait = retry_after_seconds(response.headers.get("Retry-After"))
            attempts += 1
            if attempts > self.max_retries:
                return Attempt("failed", response, f"{error} (after {requests} requests)", requests)
            self._count("retried")
            delay = wait if wait is not None else self.backoff(attempts)
            if time.monotonic() + delay > self.deadline:
                return Attempt("failed", response, f"run deadline reached; last error: {error}", requests)
            time.sleep(delay)
