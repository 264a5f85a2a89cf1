"""One run of one kind of delivery (ShopiMind's upserts, deletions or triggers), chunk by chunk.

For each chunk of candidate rows (candidates.stream): once the run must stop or its deadline has
passed, the rest is only counted as not attempted (and recorded `failed` if the destination's
selection needs that to retry them); otherwise the bootstrap is made ready, the rows are marked in
flight first when their requests are not idempotent, `send(rows, target)` sends them (usually through
sending.Batches), and their outcomes are recorded in one transaction. When the destination says its
bootstrap is gone (`SetupGone`), the refusals are recorded, setup is re-run once per run and the
refused rows are sent once more. A `StopRun`, or a `SetupGone` left after that, stops the run once
its chunk is recorded: `stopped` says why, and the destination raises its own error with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from .bootstrap import Bootstrap
from .ledger import Ledger
from .outcomes import Outcome, Row, SetupGone

R = TypeVar("R", bound=Row)
HEALING = "setup gone: setup re-run, then retried once"


class Delivery(Generic[R]):
    """One run's delivery of one kind of row; `time_left` is the run's deadline (the client's)."""

    def __init__(self, ledger: Ledger, time_left: Callable[[], float], bootstrap: Bootstrap | None = None, *,
                 in_flight: bool = False, record_unattempted: bool = False) -> None:
        self.ledger, self.time_left, self.bootstrap = ledger, time_left, bootstrap or Bootstrap()
        self.in_flight, self.record_unattempted = in_flight, record_unattempted
        self.not_attempted = 0
        self.stopped: str | None = None

    def send(self, chunks: Iterable[list[R]], send: Callable[[list[R], Any], list[Outcome]],
             observe: Callable[[list[Outcome]], None] | None = None) -> None:
        """Send every chunk; `observe` sees each chunk's final outcomes once they are recorded."""
        for rows in chunks:
            if self.stopped or self.time_left() <= 0:
                self._skip(rows)
                continue
            outcomes = self._send(rows, send)
            self.stopped = next((o.error for o in outcomes if o.stops_the_run), None)
            if observe:
                observe(outcomes)

    def _skip(self, rows: list[R]) -> None:
        self.not_attempted += len(rows)
        if self.record_unattempted:
            reason = self.stopped or "not attempted: run deadline reached"
            self.ledger.record([row.subject.outcome("failed", error=reason) for row in rows])

    def _send(self, rows: list[R], send: Callable[[list[R], Any], list[Outcome]]) -> list[Outcome]:
        target = self.bootstrap.ready()
        if self.in_flight:
            self.ledger.mark_in_flight([row.subject for row in rows])
        outcomes = self._explained(send(rows, target))
        gone = {o.key for o in outcomes if isinstance(o.cause, SetupGone)}
        if not gone or not self.bootstrap.can_heal():
            self.ledger.record(outcomes)
            return outcomes
        # A refusal: the destination recorded none of these rows, so sending them again duplicates nothing.
        self.ledger.record([dataclasses.replace(o, note=HEALING) if isinstance(o.cause, SetupGone) else o
                            for o in outcomes])
        target = self.bootstrap.heal()
        retry = [row for row in rows if row.subject.key in gone]
        if self.in_flight:
            self.ledger.mark_in_flight([row.subject for row in retry])
        retried = self._explained(send(retry, target))
        self.ledger.record(retried)
        return [o for o in outcomes if o.key not in gone] + retried

    def _explained(self, outcomes: list[Outcome]) -> list[Outcome]:
        """A gone bootstrap's refusals, with what it means at this point of the run."""
        hint = self.bootstrap.gone_hint()
        return [dataclasses.replace(o, error=f"{o.error}: {hint}") if isinstance(o.cause, SetupGone) else o
                for o in outcomes]
