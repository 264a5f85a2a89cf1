-- Outcomes (relation `outcomes`) appended to sync_log, with the key's attempt number after the merge.
INSERT INTO sync_log
SELECT now(), $run_id, $destination, o.kind, o.key, o.snapshot_date, o.customer_id, o.code_name, o.status,
       o.http_status, o.error, d.attempts, o.requests, o.note
FROM outcomes o
JOIN delivery_state d ON d.destination = $destination AND d.kind = o.kind AND d.key = o.key
