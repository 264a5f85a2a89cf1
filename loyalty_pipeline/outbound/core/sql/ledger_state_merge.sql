-- Outcomes (relation `outcomes`) into delivery_state: one row per key, updated in place.
MERGE INTO delivery_state d
USING outcomes o ON d.destination = $destination AND d.kind = o.kind AND d.key = o.key
WHEN MATCHED THEN UPDATE SET
    status = o.status, snapshot_date = o.snapshot_date, http_status = o.http_status, error = o.error,
    attempts = d.attempts + o.attempt_inc, payload_hash = coalesce(o.payload_hash, d.payload_hash),
    first_attempt_at = CASE WHEN o.attempt_inc > 0 THEN coalesce(d.first_attempt_at, now())
                            ELSE d.first_attempt_at END,
    last_attempt_at = CASE WHEN o.attempt_inc > 0 THEN now() ELSE d.last_attempt_at END,
    sent_at = CASE WHEN o.status = 'sent' THEN now() ELSE d.sent_at END,
    updated_at = now()
WHEN NOT MATCHED THEN INSERT (destination, kind, key, snapshot_date, customer_id, code_name, status, http_status,
                              error, attempts, payload_hash, first_attempt_at, last_attempt_at, sent_at,
                              updated_at)
    VALUES ($destination, o.kind, o.key, o.snapshot_date, o.customer_id, o.code_name, o.status, o.http_status,
            o.error, o.attempt_inc, o.payload_hash,
            CASE WHEN o.attempt_inc > 0 THEN now() END, CASE WHEN o.attempt_inc > 0 THEN now() END,
            CASE WHEN o.status = 'sent' THEN now() END, now())
