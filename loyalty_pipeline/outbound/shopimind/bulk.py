"""The answer to a bulk write (saveCustomDataRecords, bulk-delete) as each item's outcome.

Both routes are idempotent (upserts on the unique key; unknown ids skipped), so a lost answer is simply
`failed` and retried, never `uncertain`. A 2xx is acknowledged item by item only when its envelope adds
up (`models.read_bulk`); otherwise ShopiMind may hold any, all or none of them: `uncertain`, sent again by
the next run. A refusal listing items gives each its own reason where it can be told.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core.outcomes import Failed, Outcome, Row, Uncertain
from .client import Result
from .models import read_bulk, rejected_index, rejected_message


def bulk_outcomes(result: Result, batch: Sequence[Row], payloads: list[Any]) -> list[Outcome]:
    """The outcome of each row of `batch` (sent as `payloads`, in order); raises the request's fate when it
    is every row's (core.outcomes: `Failed`, `Uncertain`, `TooLarge`, `SetupGone`, `Refused`)."""
    if result.outcome in ("failed", "uncertain"):
        raise Failed(result.error or result.describe(), http_status=result.status, requests=result.requests)
    if result.ok:
        rejected, problem = read_bulk(result.body, payloads)
        if problem:
            raise Uncertain(f"2xx answer that does not add up ({problem}): {result.describe()}",
                            http_status=result.status, requests=result.requests)
    else:
        items = result.body.get("rejected_items") if isinstance(result.body, dict) else None
        if not isinstance(items, list) or not items:
            raise result.fate()
        reasons = {index: rejected_message(item) for item in items
                   if (index := rejected_index(item, payloads)) is not None}
        rejected = {i: reasons.get(i, result.error) for i in range(len(batch))}
    return [row.subject.outcome("rejected" if i in rejected else "sent", http_status=result.status,
                                error=rejected.get(i), requests=result.requests, attempt_inc=1)
            for i, row in enumerate(batch)]
