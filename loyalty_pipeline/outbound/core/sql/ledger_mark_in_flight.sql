-- Before a non-idempotent request leaves (an event trigger): commit that its rows are in flight. A crash
-- after this leaves them in_flight, which the destination's next run settles (e.g. looked up in ShopiMind's
-- event histories) instead of resending blindly. Counts the attempt. Reads relation `batch`.
MERGE INTO delivery_state d
USING batch b ON d.destination = $destination AND d.kind = b.kind AND d.key = b.key
WHEN MATCHED THEN UPDATE SET
    status = 'in_flight', snapshot_date = b.snapshot_date, attempts = d.attempts + 1,
    first_attempt_at = coalesce(d.first_attempt_at, now()), last_attempt_at = now(), updated_at = now()
WHEN NOT MATCHED THEN INSERT (destination, kind, key, snapshot_date, customer_id, code_name, status, attempts,
                              first_attempt_at, last_attempt_at, updated_at)
    VALUES ($destination, b.kind, b.key, b.snapshot_date, b.customer_id, b.code_name, 'in_flight', 1,
            now(), now(), now())
