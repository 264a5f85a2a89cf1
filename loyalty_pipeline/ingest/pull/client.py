"""The pulls' HTTP client: GETs of JSON pages under the shared retry policy (httpapi/retrying.py).

GETs are idempotent, so every retryable trouble is retried (429 with Retry-After, 5xx, timeouts, a
dropped connection) within the retry budget and the pull's deadline. Anything else that is not a 2xx
with a JSON object fails the pull (`PullError`), naming the call; a 401/403 names the environment
variables to check, never their values. Credentials travel in headers only; every answer is parsed
and then passed whole through the one scrubber before anyone reads it, so an echoed credential never
reaches the export, a message or a log.
"""

from __future__ import annotations

from typing import Any

import httpx

from ...httpapi.retrying import Retrying
from ...httpapi.scrub import Scrubber
from ...httpapi.session import api_client


class PullError(RuntimeError):
    """The pull cannot go on; the message names the call (and page) and never carries a credential."""


def _message(body: Any, fallback: str) -> str:
    """The error an API answer carries: LoyaltyLion `{"error": {"message"}}`, Voucherify `{"message",
    "details"}`, or the status."""
    if isinstance(body, dict):
        inner = body.get("error")
        inner = inner.get("message") if isinstance(inner, dict) else inner
        parts = [str(p) for p in (body.get("message") or inner, body.get("details")) if p]
        if parts:
            return ": ".join(parts)
    return fallback


class PullClient:
    """One platform API: its root, its credential headers, one retry policy and deadline for the pull."""

    def __init__(self, base_url: str, headers: dict[str, str], *, secrets: list[str], credential_names: str,
                 requests_per_second: float,
                 deadline_s: float, max_retries: int = 6, backoff_base_s: float = 1.0, backoff_max_s: float = 60.0,
                 timeout_s: float = 60.0, concurrency: int = 4, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.credential_names = credential_names  # e.g. "LOYALTYLION_API_KEY", for messages
        self._scrubber = Scrubber(*secrets, *headers.values())
        self.retrying = Retrying(max_retries=max_retries, backoff_base_s=backoff_base_s, backoff_max_s=backoff_max_s,
                                 deadline_s=deadline_s, requests_per_second=requests_per_second,
                                 burst=max(1, concurrency), scrub=self._scrubber.text)
        self._http = api_client(self.base_url, headers, timeout_s=timeout_s, connect_timeout_s=10.0,
                                concurrency=concurrency, transport=transport)

    def __repr__(self) -> str:
        return f"PullClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PullClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.retrying.stats)

    def get(self, path: str, params: dict[str, Any] | None = None, *, what: str) -> tuple[dict, httpx.Response]:
        """GET a JSON object (scrubbed) and the answer (for its headers); `what` names the call in errors,
        e.g. "page 3 of GET /v2/customers"."""
        attempt = self.retrying.call(lambda: self._http.get(path, params=params),
                                     message=lambda r: _message(self._scrubber.body(r), f"HTTP {r.status_code}"))
        response = attempt.response
        if attempt.outcome != "answered" or response is None:
            raise PullError(f"{what}: {attempt.error} ({attempt.requests} requests)")
        body = self._scrubber.body(response)
        status = response.status_code
        if status in (401, 403):
            raise PullError(f"{what}: the API answered {status} ({_message(body, 'refused')}): check "
                            f"{self.credential_names} and the base URL {self.base_url}")
        if not 200 <= status < 300:
            raise PullError(f"{what}: the API answered {status}: {_message(body, self._scrubber.excerpt(response))}")
        if not isinstance(body, dict):
            excerpt = self._scrubber.excerpt(response)
            raise PullError(f"{what}: the API answered {status} without a JSON object: {excerpt!r}")
        return body, response
