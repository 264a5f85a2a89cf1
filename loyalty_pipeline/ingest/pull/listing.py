"""What a platform's pull is made of: the listings it pages through (`Phase`), one page at a time.

A platform module of ingest/pull/ (loyaltylion.py, voucherify.py) provides `NAME`, `headers(credentials)`,
`phases(settings)` and `build(staging, settings)` (the whole export file from the staged listings, and
its row count). run.py drives them: each phase's pages in order, each page committed to the staging
before the next is asked for (staging.py), so that a pull can resume where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .client import PullClient, PullError
from .staging import Staging


@dataclass(frozen=True)
class Settings:
    """`source.pull` with the platform's defaults filled in (run.py `resolve`)."""

    platform: str
    base_url: str
    api_version: str
    page_size: int
    requests_per_second: float
    deadline_s: float
    campaign_id: str | None = None


@dataclass(frozen=True)
class Page:
    objects: list  # what to keep, one line each, as served (scrubbed)
    cursor: Any  # where the next page starts (JSON-serialisable); None: this was the last page


# fetch(client, cursor, page number, staging) → the page at `cursor` (None: the first one)
Fetch = Callable[[PullClient, Any, int, Staging], Page]


@dataclass(frozen=True)
class Phase:
    name: str  # the staged file's name, and the listing's in messages
    fetch: Fetch


def objects(body: dict, key: str, what: str) -> list:
    """The list of objects a page carries under `key`, or a clear failure."""
    found = body.get(key)
    if not isinstance(found, list) or not all(isinstance(o, dict) for o in found):
        raise PullError(f"{what}: the answer has no `{key}` list of objects (keys: {', '.join(map(str, body))})")
    return found
