"""The delivery core: what every outbound destination's delivery is made of, bound to none of them
(test_layout.py checks that it imports no destination).

    candidates.py  what to send: the destination's SQL (an `action` per row) counted, and streamed out
                   of DuckDB in chunks of typed rows, in slices of the members when it diffs them all
    sending.py     `Batches`: rows sent `size` per request, as many requests in flight as the pool has
                   workers; a batch the destination finds too large is halved, and so is the size
    outcomes.py    `Outcome` (one ledger row), `Subject` (what a row is keyed by), and the exceptions
                   by which a send says what became of a whole request
    ledger.py      delivery_state (current) + sync_log (append-only) + the destination's
                   acknowledgements, one transaction per chunk; `replay`, `pending_problems`
    bootstrap.py   the destination's setup, asked for lazily, re-run once per run when it is gone
    delivery.py    `Delivery`: the chunk loop (deadline, in-flight marks, heal once, record, stop)

A destination plugs in with four things (ShopiMind's accounts.py is the smallest example):
1. a row type: a NamedTuple of the columns its candidate SQL selects (`candidates.select` names them
   from its fields), with a `subject` property: kind, key, snapshot_date, customer_id, and optionally
   code_name and payload_hash;
2. its candidate SQL, in its own sql/: one row per candidate, an `action` column (`send` for what goes
   out), reading delivery_state to leave out what was acknowledged;
3. `send(batch) -> list[Outcome]`: one request; it returns each row's outcome when the answer speaks
   of each row, and raises `Failed`, `Uncertain`, `Refused`, `TooLarge` or `SetupGone` when it speaks
   of the whole request, a `StopRun` when the run must stop. Reading the destination's answers into
   these types is the destination's own (ShopiMind: client.Result.fate, models.refusal), done once;
4. optionally: acknowledgement SQL for `Ledger(acknowledge=...)`, a `Setup` for `Bootstrap`, and
   `Delivery(in_flight=True)` when its requests are not idempotent.

The Reelevant push (docs/reelevant.md) is to be such a destination once the Datasources API is
documented: its rows the feed's records (sql/reelevant_feed.sql) with the md5 of each as payload_hash,
`send` one POST of a batch to the configured endpoint, idempotent (no in-flight marks), no setup:

    delivery = Delivery(Ledger(con, endpoint, run_id), client.time_left)
    with ThreadPoolExecutor(concurrency) as pool:
        batches = Batches(pool, batch_size)
        delivery.send(stream(con, FeedRow, select(FeedRow, query, "action = 'send'"), params, chunk),
                      lambda rows, _: batches.send(rows, lambda batch: push(client, batch)))

Its HTTP client would build on the shared retry policy, rate limiter and deadline (httpapi/retrying.py),
as ShopiMindClient does, adding its own error bodies and key header.
"""
