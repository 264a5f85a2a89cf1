-- Events shopimind_events considers for $day at $destination, and what it does with each:
--   sent / rejected    already acknowledged or permanently refused: never sent again
--   uncertain          outcome unknown and not reconciled yet (histories unreachable): never resent blindly
--   suppressed_stale   too old when derived (loyalty_events.status): recorded, not sent
--   unaddressable      no email (nor phone: the exports have none), the only contact fields a trigger takes
--                      besides ShopiMind's own id: recorded, not sent (sent if a recomputed day has an email)
--   send               pending and never delivered, or failed before (retryable)
-- Failed events of the previous $carry_days days are retried too, so "retried on the next run" holds
-- under the daily schedule without re-running their own day.
SELECT e.event_key, e.snapshot_date, e.customer_id, e.email, e.code_name, e.metadata,
       CASE
           WHEN d.status IN ('sent', 'rejected') THEN d.status
           WHEN d.status IN ('in_flight', 'uncertain') THEN 'uncertain'
           WHEN e.status = 'suppressed_stale' THEN 'suppressed_stale'
           WHEN coalesce(e.email, '') = '' THEN 'unaddressable'
           ELSE 'send'
       END AS action,
       e.snapshot_date < $day AS carried_over,
       d.status IS NOT DISTINCT FROM 'suppressed_stale' AS already_suppressed,
       d.status IS NOT DISTINCT FROM 'unaddressable' AS already_unaddressable
FROM loyalty_events e
LEFT JOIN delivery_state d ON d.destination = $destination AND d.kind = 'event' AND d.key = e.event_key
WHERE e.snapshot_date = $day
   OR (e.snapshot_date < $day AND e.snapshot_date >= $day::DATE - $carry_days::INTEGER
       AND d.status = 'failed' AND e.status = 'pending')
