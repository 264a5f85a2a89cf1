-- Members whose LoyaltyAccount ShopiMind may hold at $destination although they are no longer in the
-- program on $day (the seed: "one row per enrolled customer"), and what shopimind_accounts does about each;
-- those in the slice [$lo, $hi) of customer_id (core/candidates.py; NULL: open), which every table read keeps to.
--
-- Left: the $day row says enrolled = false (`opted_out`), or the member has no row at all, valid or
-- quarantined, in the last $grace_days exports up to $day (`absent`; a quarantined row is no departure,
-- DESIGN invariant 14; fewer exports than that so far: nobody is absent yet).
-- Held: an acknowledged upsert not deleted since (account_sync_state), or an upsert whose outcome is
-- unknown (failed, uncertain) made after the member's last acknowledged delete.
--
-- action:
--   delete               list the record by its customer_id field, bulk-delete it
--   rekey                the record predates the customer_id field: upserted with it first, then deleted
--   kept                 program.yaml says on_leave: keep
--   previously_rejected  ShopiMind refused this delete since the member's last write: not retried blindly
--   suppressed_stale     $day is not the newest snapshot: ShopiMind mirrors the newest state only
WITH recent AS (
    SELECT DISTINCT snapshot_date FROM snapshots WHERE snapshot_date <= $day
    ORDER BY snapshot_date DESC LIMIT $grace_days
),
acknowledged AS (
    SELECT customer_id, coalesce(keyed, false) AS keyed, acknowledged_at AS written_at
    FROM account_sync_state WHERE destination = $destination AND ($lo IS NULL OR customer_id >= $lo) AND ($hi IS NULL OR customer_id < $hi)
),
held AS (
    SELECT * FROM acknowledged
    UNION ALL
    SELECT w.key, true, w.last_attempt_at   -- written since the field exists: keyed if it landed
    FROM delivery_state w
    LEFT JOIN delivery_state x ON x.destination = $destination AND x.kind = 'account_delete' AND x.key = w.key
                                  AND ($lo IS NULL OR x.key >= $lo) AND ($hi IS NULL OR x.key < $hi)
    WHERE w.destination = $destination AND w.kind = 'account' AND w.status NOT IN ('sent', 'rejected')
      AND ($lo IS NULL OR w.key >= $lo) AND ($hi IS NULL OR w.key < $hi)
      AND (x.sent_at IS NULL OR w.last_attempt_at > x.sent_at)
      AND w.key NOT IN (SELECT customer_id FROM acknowledged)
),
today AS (
    SELECT customer_id, enrolled FROM snapshots
    WHERE snapshot_date = $day AND ($lo IS NULL OR customer_id >= $lo) AND ($hi IS NULL OR customer_id < $hi)
),
missing AS (
    SELECT h.* FROM held h ANTI JOIN today t ON t.customer_id = h.customer_id
),
seen AS (   -- missing today, but with a row (valid or quarantined) on one of the recent exports
    SELECT customer_id FROM snapshots
    WHERE snapshot_date IN (SELECT snapshot_date FROM recent) AND ($lo IS NULL OR customer_id >= $lo) AND ($hi IS NULL OR customer_id < $hi)
      AND customer_id IN (SELECT customer_id FROM missing)
    UNION
    SELECT customer_id FROM quarantine
    WHERE snapshot_date IN (SELECT snapshot_date FROM recent) AND ($lo IS NULL OR customer_id >= $lo) AND ($hi IS NULL OR customer_id < $hi)
      AND customer_id IN (SELECT customer_id FROM missing)
),
departed AS (
    SELECT h.*, 'opted_out' AS reason FROM held h JOIN today t ON t.customer_id = h.customer_id AND NOT t.enrolled
    UNION ALL
    SELECT m.*, 'absent' FROM missing m
    WHERE (SELECT count(*) FROM recent) = $grace_days AND m.customer_id NOT IN (SELECT customer_id FROM seen)
)
SELECT d.customer_id, $day::DATE AS snapshot_date, d.reason,
       a.snapshot_date AS held_date, a.points_balance, a.tier, a.tier_since, a.next_expiry_date,
       a.next_expiry_amount,   -- what ShopiMind last acknowledged (re-keyed with these values)
       epoch(now()) - epoch(d.written_at) AS written_s_ago,
       CASE
           WHEN $day < (SELECT max(snapshot_date) FROM snapshots) THEN 'suppressed_stale'
           WHEN $on_leave = 'keep' THEN 'kept'
           WHEN x.status = 'rejected' AND x.last_attempt_at > d.written_at THEN 'previously_rejected'
           WHEN NOT d.keyed THEN 'rekey'
           ELSE 'delete'
       END AS action
FROM departed d
LEFT JOIN account_sync_state a ON a.destination = $destination AND a.customer_id = d.customer_id
                               AND ($lo IS NULL OR a.customer_id >= $lo) AND ($hi IS NULL OR a.customer_id < $hi)
LEFT JOIN delivery_state x ON x.destination = $destination AND x.kind = 'account_delete' AND x.key = d.customer_id
                           AND ($lo IS NULL OR x.key >= $lo) AND ($hi IS NULL OR x.key < $hi)
