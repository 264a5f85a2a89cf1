"""The ShopiMind resource: where to deliver, with which key, how fast, how patiently."""

from __future__ import annotations

import os
import re

import dagster as dg
from pydantic import Field

from ...httpapi.urls import api_root_problem
from .client import ShopiMindClient
from .delivery import DeliverySettings

DEFAULT_BASE_URL = "https://core.shopimind.com"
KEY_ENV, URL_ENV = "SHOPIMIND_API_KEY", "SHOPIMIND_BASE_URL"
_KEY_PATTERN = re.compile(r"[a-zA-Z0-9-]{20,64}")  # documented on every API page (fullmatch: no "\n")

MISSING_KEY = (
    f"{KEY_ENV} is not set, so nothing can be delivered to ShopiMind (and nothing was). Set {KEY_ENV} "
    f"(and {URL_ENV} if not {DEFAULT_BASE_URL}) in the environment of the Dagster process; or use the "
    f"bundled emulator: run `loyalty-devtools emulator` and set {URL_ENV}=http://127.0.0.1:8765 and the "
    f"{KEY_ENV} it prints. To preview without sending, run with op config `dry_run: true`."
)


class ShopiMindConfigError(ValueError):
    pass


class ShopiMindResource(dg.ConfigurableResource):
    """ShopiMind API v1. The key and the URL are read from SHOPIMIND_API_KEY and SHOPIMIND_BASE_URL when
    the run uses them, unless given here: they are never part of the run config, so setting any other
    field in the launchpad keeps them, and the run storage and the UI never hold the key."""

    api_key: str | None = Field(default=None, repr=False,
                                description=f"API key; leave unset: it is read from {KEY_ENV}")
    base_url: str | None = Field(default=None, description=f"API root without /v1; default: {URL_ENV}, "
                                                          f"else {DEFAULT_BASE_URL}")
    batch_size: int = Field(default=20, ge=1, le=50, description="records per save call (API: 20, maybe 50)")
    concurrency: int = Field(default=8, ge=1, le=64, description="requests in flight")
    requests_per_second: float = Field(default=100.0, ge=0, description="client-side rate limit; 0 = none")
    timeout_s: float = Field(default=30.0, gt=0, description="read/write timeout per request")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    max_retries: int = Field(default=4, ge=0, description="retry budget per request (429s not counted)")
    backoff_base_s: float = Field(default=0.5, ge=0, description="first retry delay; doubles, with jitter")
    backoff_max_s: float = Field(default=30.0, ge=0)
    deadline_s: float = Field(default=3600.0, gt=0, description="total time one asset run may spend delivering")
    history_visibility_s: float = Field(default=5.0, ge=0, description="delay before an event is listed")
    resend_rounds: int = Field(default=3, ge=0, description="in-run reconcile/resend rounds for lost answers")
    slice_members: int = Field(default=DeliverySettings.slice_members, ge=1,
                               description="members per slice of the account and departure selections "
                                           "(their memory follows it; one scan of the tables per slice)")

    @classmethod
    def from_env(cls, **overrides) -> ShopiMindResource:
        """The deployed resource: key and URL from the environment (read at run time, see the class)."""
        return cls(**overrides)

    def __repr__(self) -> str:
        return f"ShopiMindResource(base_url={self.destination!r}, api_key={'***' if self.key else None})"

    __str__ = __repr__

    @property
    def key(self) -> str | None:
        """The API key: the one given, else SHOPIMIND_API_KEY."""
        return self.api_key or os.environ.get(KEY_ENV) or None

    @property
    def destination(self) -> str:
        """The normalised API root: what delivery state is keyed by (a shop's "sent" is not another's)."""
        url = (self.base_url or os.environ.get(URL_ENV) or DEFAULT_BASE_URL).strip().rstrip("/")
        return url[: -len("/v1")] if url.endswith("/v1") else url

    def settings(self, program_carry_days: int) -> DeliverySettings:
        return DeliverySettings(batch_size=self.batch_size, concurrency=self.concurrency,
                                history_visibility_s=self.history_visibility_s,
                                resend_rounds=self.resend_rounds, carry_days=program_carry_days,
                                slice_members=self.slice_members)

    def check(self) -> None:
        """Fail early and clearly on a missing or malformed key, or a key about to travel in clear text."""
        if not self.key:
            raise ShopiMindConfigError(MISSING_KEY)
        if not _KEY_PATTERN.fullmatch(self.key):
            raise ShopiMindConfigError(f"{KEY_ENV} does not look like a ShopiMind API key (20 to 64 letters, "
                                       "digits or dashes); check the value, it is not shown here")
        if problem := api_root_problem(self.destination, URL_ENV):
            raise ShopiMindConfigError(problem)

    def client(self) -> ShopiMindClient:
        self.check()
        return ShopiMindClient(
            self.destination, self.key, timeout_s=self.timeout_s, connect_timeout_s=self.connect_timeout_s,
            max_retries=self.max_retries, backoff_base_s=self.backoff_base_s, backoff_max_s=self.backoff_max_s,
            requests_per_second=self.requests_per_second, concurrency=self.concurrency,
            deadline_s=self.deadline_s)
