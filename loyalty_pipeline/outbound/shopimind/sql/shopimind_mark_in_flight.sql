-- Before an event is sent: commit that it is in flight. A crash after this leaves it in_flight, which the
-- next run reconciles against the event histories instead of resending blindly. Reads relation `batch`.
MERGE INTO delivery_state d
USING batch b ON d.destination = $destination AND d.kind = 'event' AND d.key = b.key
WHEN MATCHED THEN UPDATE SET
    status = 'in_flight', snapshot_date = b.snapshot_date, attempts = d.attempts + 1,
    first_attempt_at = coalesce(d.first_attempt_at, now()), last_attempt_at = now(), updated_at = now()
WHEN NOT MATCHED THEN INSERT (destination, kind, key, snapshot_date, customer_id, code_name, status, attempts,
                              first_attempt_at, last_attempt_at, updated_at)
    VALUES ($destination, 'event', b.key, b.snapshot_date, b.customer_id, b.code_name, 'in_flight', 1,
            now(), now(), now())
