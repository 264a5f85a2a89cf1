"""What ShopiMind's three deliveries (accounts.py, departures.py, triggers.py) share on top of the delivery
core (outbound/core): their settings, the ledger with ShopiMind's acknowledgements, the worker pool.

Guarantees (DESIGN.md invariants 5-9, 15, 16):
- a key is `sent` only on a 2xx for its request and its absence from `rejected_items`; a 2xx whose bulk
  envelope does not add up (`models.read_bulk`) makes its batch `uncertain`: sent again by the next run;
- a record or trigger body that cannot be built from a row is `rejected` with the reason, alone;
- an event is committed `in_flight` before its request leaves; an `in_flight` or `uncertain` event is
  looked up in the event histories before anything is resent; `sent`/`rejected` events are never resent;
- an account is sent only when its mapped values differ from the last acknowledged push, and only from
  the newest snapshot, so an old day never overwrites newer state;
- nothing to send, no request: the bootstrap (`setup`) is asked for only before the first record or
  trigger goes out, and histories are searched only for in_flight/uncertain events. When ShopiMind
  answers that the bootstrap is gone (definition or event type not found), setup is re-run once
  (`setup(True)`) and the refused batch or event retried once; refused again, the run stops as failed.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import duckdb

from ...warehouse.connection import sql_files
from ..core.candidates import slices
from ..core.ledger import Ledger

sql = sql_files(__package__)
DEFINITION = "the LoyaltyAccount definition"  # what a gone bootstrap is, in errors (core.bootstrap)


@dataclass(frozen=True)
class DeliverySettings:
    batch_size: int = 20  # records per saveCustomDataRecords call (the API: 20, maybe 50)
    concurrency: int = 8  # requests in flight
    # A chunk = concurrency x chunk_batches requests: marked in flight and recorded in one transaction
    # each (a merge into delivery_state, whose cost grows with the table, so chunks are large).
    chunk_batches: int = 128
    history_visibility_s: float = 5.0  # an event may take this long to show in the histories
    reconcile_margin_s: float = 300.0  # clock skew allowance when searching the histories
    resend_rounds: int = 3  # reconcile-then-resend rounds for events that went uncertain during the run
    carry_days: int = 3  # failed events of this many earlier days are retried by a day's run
    samples: int = 3  # sample payloads in a dry run's metadata
    # Members per slice of the account and departure selections (core/candidates.py): their memory follows
    # this, not the members (a slice's hash tables and sort), for one scan of the tables per slice.
    slice_members: int = 500_000
    # DuckDB's memory_limit while delivering (core.candidates.bounded_memory): what it may cache of the
    # tables the slices scan, which would otherwise follow the members up to the warehouse's limit
    # (4 M members: 503 MB peak RSS at 256MB, 429 MB at 160MB; a slice's joins take ≈ 45 MB).
    memory_limit: str | None = "160MB"

    @property
    def chunk_size(self) -> int:
        return self.concurrency * self.chunk_batches

    def pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self.concurrency, thread_name_prefix="shopimind")


def ledger_for(con: duckdb.DuckDBPyConnection, destination: str, run_id: str | None) -> Ledger:
    """The core's ledger, acknowledging in account_sync_state what ShopiMind now holds (upserts: the
    values; deletions: nothing any more), in the same transaction as each chunk's outcomes."""
    return Ledger(con, destination, run_id, acknowledge=(sql("shopimind_ack_merge"), sql("shopimind_delete_ack")))


def member_slices(con: duckdb.DuckDBPyConnection, day: dt.date, settings: DeliverySettings
                  ) -> tuple[dict[str, str | None], ...]:
    """Slices of `day`'s members (core.candidates.slices) for the account and departure selections."""
    return slices(con, "SELECT customer_id FROM snapshots WHERE snapshot_date = $day", {"day": day},
                  settings.slice_members)
