-- Enrolled members of $day in the slice [$lo, $hi) of customer_id (core/candidates.py; NULL: open), and
-- what shopimind_accounts does with each at $destination:
--   unchanged          the mapped values equal the last acknowledged push, and no push since is unsettled
--   suppressed_stale   $day is not the newest snapshot (or older than what was pushed): never regress
--   rejected_unchanged the same values were rejected before: not retried blindly (docs/shopimind.md: replaying problems)
--   send               everything else: new, changed, or the last push failed / is uncertain. Such a push
--                      may have been applied (answer lost, or a 2xx that did not add up), so ShopiMind may
--                      hold other values than the acknowledged ones even when the member's are back to them.
WITH members AS (
    SELECT customer_id, snapshot_date, points_balance, coalesce(tier, '') AS tier, tier_since, next_expiry_date,
           next_expiry_amount,
           md5(to_json({b: points_balance, t: coalesce(tier, ''), s: tier_since, d: next_expiry_date,
                        a: next_expiry_amount})::VARCHAR) AS payload_hash
    FROM snapshots
    WHERE snapshot_date = $day AND enrolled AND ($lo IS NULL OR customer_id >= $lo) AND ($hi IS NULL OR customer_id < $hi)
)
SELECT m.*,
       CASE
           WHEN a.customer_id IS NOT NULL
                AND coalesce(d.status, 'sent') NOT IN ('failed', 'uncertain')
                AND m.points_balance IS NOT DISTINCT FROM a.points_balance
                AND m.tier IS NOT DISTINCT FROM a.tier
                AND m.tier_since IS NOT DISTINCT FROM a.tier_since
                AND m.next_expiry_date IS NOT DISTINCT FROM a.next_expiry_date
                AND m.next_expiry_amount IS NOT DISTINCT FROM a.next_expiry_amount THEN 'unchanged'
           WHEN $day < (SELECT max(snapshot_date) FROM snapshots) OR a.snapshot_date > $day THEN 'suppressed_stale'
           WHEN d.status = 'rejected' AND d.payload_hash = m.payload_hash THEN 'rejected_unchanged'
           ELSE 'send'
       END AS action
FROM members m
LEFT JOIN (SELECT * FROM account_sync_state
           WHERE destination = $destination AND ($lo IS NULL OR customer_id >= $lo) AND ($hi IS NULL OR customer_id < $hi)
) a ON a.customer_id = m.customer_id
LEFT JOIN (SELECT * FROM delivery_state
           WHERE destination = $destination AND kind = 'account' AND ($lo IS NULL OR key >= $lo) AND ($hi IS NULL OR key < $hi)
) d ON d.key = m.customer_id
