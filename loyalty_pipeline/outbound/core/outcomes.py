"""What became of each row sent: the `Outcome` the ledger records, and the exceptions that decide it.

A destination's `send` returns an outcome per row when the answer speaks of each row (a bulk envelope,
one trigger), and raises when the request's fate is every row's: an `Unsent` (`Failed`, `Uncertain`,
`Refused`, and the two the core acts on, `TooLarge`: split the batch; `SetupGone`: set up again once)
or a `StopRun` (bad credentials: the run records what it has and stops). The core routes by these
types only; reading a destination's wording into them is its client's job, done once there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import ClassVar, NamedTuple, Protocol


class StopRun(RuntimeError):
    """The whole run must stop (bad credentials, a bootstrap that cannot be restored); never holds a secret."""


class Unsent(Exception):
    """A request's fate, the same for every row it carried; `status` is what the ledger records."""

    status: ClassVar[str]

    def __init__(self, message: str, *, http_status: int | None = None, requests: int = 0) -> None:
        super().__init__(message)
        self.http_status, self.requests = http_status, requests


class Failed(Unsent):
    """Retryable trouble that outlived the retries (or the deadline): sent again by a later run."""

    status = "failed"


class Uncertain(Unsent):
    """The destination may or may not have acted on it: never taken as sent, never resent blindly."""

    status = "uncertain"


class Refused(Unsent):
    """Permanently refused with the destination's reason: not retried until replayed."""

    status = "rejected"


class TooLarge(Refused):
    """The batch is too large: the core halves it (and the batch size for the rest of the run); one row
    alone too large is refused."""


class SetupGone(Failed):
    """What the destination's bootstrap declared is not there (deleted, a reset shop): not the rows'
    fault, so `failed`; the core sets up again once and retries them once."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One row of the ledger: delivery_state's new state for (kind, key), and its sync_log line."""

    kind: str
    key: str
    snapshot_date: dt.date
    customer_id: str
    code_name: str | None
    status: str  # sent | rejected | failed | uncertain | in_flight | suppressed_stale | unaddressable
    http_status: int | None = None
    error: str | None = None
    requests: int = 0
    attempt_inc: int = 0  # 1 when this outcome is an attempt (in-flight marking counts it otherwise)
    payload_hash: str | None = None
    note: str | None = None
    cause: BaseException | None = dataclasses.field(default=None, compare=False, repr=False)  # not stored

    @property
    def stops_the_run(self) -> bool:
        return isinstance(self.cause, StopRun | SetupGone)


class Subject(NamedTuple):
    """What the ledger keys a row by: (kind, key) in delivery_state, and what it describes."""

    kind: str
    key: str
    snapshot_date: dt.date
    customer_id: str
    code_name: str | None = None
    payload_hash: str | None = None

    def outcome(self, status: str, **details) -> Outcome:
        return Outcome(self.kind, self.key, self.snapshot_date, self.customer_id, self.code_name, status,
                       **{"payload_hash": self.payload_hash, **details})

    def fate(self, exc: Unsent | StopRun, attempt_inc: int) -> Outcome:
        """This row's outcome when its request raised `exc`."""
        if isinstance(exc, Unsent):
            return self.outcome(exc.status, http_status=exc.http_status, error=str(exc), requests=exc.requests,
                                attempt_inc=attempt_inc, cause=exc)
        return self.outcome("failed", error=str(exc), attempt_inc=attempt_inc, cause=exc)


class Row(Protocol):
    """A candidate row, typed by its destination (a NamedTuple of the columns its SQL selects)."""

    @property
    def subject(self) -> Subject: ...
