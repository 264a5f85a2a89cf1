"""Sending rows: in batches (one request each), a bounded number of requests in flight.

The workers of one thread pool share the destination's client (one connection pool, one rate limit,
one deadline); DuckDB is never touched from them. A batch's `send` returns its rows' outcomes, or
raises the fate of all of them (outcomes.py), which becomes each row's outcome here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from .outcomes import Outcome, Row, StopRun, TooLarge, Unsent

R = TypeVar("R", bound=Row)
Send = Callable[[list[R]], list[Outcome]]


class Batches(Generic[R]):
    """Rows sent `size` at a time through `pool`. The size shrinks for the rest of the run when the
    destination says a batch is too large (the refused batch is halved and sent again)."""

    def __init__(self, pool: ThreadPoolExecutor, size: int = 1, *, attempt_inc: int = 1) -> None:
        self.pool, self.size, self.attempt_inc = pool, size, attempt_inc
        self._lock = threading.Lock()

    def send(self, rows: Sequence[R], send: Send[R]) -> list[Outcome]:
        """Every row's outcome, in the order of `rows`."""
        size = self.size
        batches = [list(rows[i:i + size]) for i in range(0, len(rows), size)]
        return [o for outcomes in self.pool.map(lambda batch: self._attempt(batch, send), batches) for o in outcomes]

    def _attempt(self, batch: list[R], send: Send[R]) -> list[Outcome]:
        try:
            return send(batch)
        except Unsent as exc:
            if isinstance(exc, TooLarge) and len(batch) > 1:
                half = len(batch) // 2
                self._shrink(half)
                return self._attempt(batch[:half], send) + self._attempt(batch[half:], send)
            return [row.subject.fate(exc, self.attempt_inc) for row in batch]
        except StopRun as exc:
            return [row.subject.fate(exc, self.attempt_inc) for row in batch]

    def _shrink(self, size: int) -> None:
        with self._lock:
            self.size = max(1, min(self.size, size))
