-- Each member's change on $day against the latest earlier snapshot (which may be days back).
-- With no earlier snapshot this is the baseline: every member is `new`, previous_snapshot_date NULL.
WITH previous AS (
    SELECT max(snapshot_date) AS day FROM snapshots WHERE snapshot_date < $day
), cur AS (
    SELECT * FROM snapshots WHERE snapshot_date = $day
), prev AS (
    SELECT * FROM snapshots WHERE snapshot_date = (SELECT day FROM previous)
)
SELECT
    $day AS snapshot_date,
    (SELECT day FROM previous) AS previous_snapshot_date,
    date_diff('day', (SELECT day FROM previous), $day) AS gap_days,
    coalesce(c.customer_id, p.customer_id) AS customer_id,
    CASE WHEN p.customer_id IS NULL THEN 'new'
         WHEN c.customer_id IS NULL THEN 'removed'
         ELSE 'changed' END AS change_kind,
    coalesce(c.email, p.email) AS email,
    p.enrolled AS enrolled_before,
    c.enrolled AS enrolled_after,
    p.points_balance AS balance_before,
    c.points_balance AS balance_after,
    coalesce(c.points_balance, 0) - coalesce(p.points_balance, 0) AS balance_delta,
    p.lifetime_points AS lifetime_before,
    c.lifetime_points AS lifetime_after,
    coalesce(c.lifetime_points, 0) - coalesce(p.lifetime_points, 0) AS lifetime_delta,
    p.tier AS tier_before,
    c.tier AS tier_after,
    p.tier_rank AS tier_rank_before,
    c.tier_rank AS tier_rank_after,
    CASE WHEN p.customer_id IS NULL OR c.customer_id IS NULL THEN NULL
         WHEN c.tier_rank > p.tier_rank THEN 'up'
         WHEN c.tier_rank < p.tier_rank THEN 'down'
         WHEN p.tier_rank IS NULL AND c.tier_rank IS NOT NULL THEN 'joined'
         WHEN p.tier_rank IS NOT NULL AND c.tier_rank IS NULL THEN 'left' END AS tier_direction,
    p.next_expiry_date AS expiry_date_before,
    c.next_expiry_date AS expiry_date_after,
    p.next_expiry_amount AS expiry_amount_before,
    c.next_expiry_amount AS expiry_amount_after
FROM cur c
FULL OUTER JOIN prev p ON c.customer_id = p.customer_id
WHERE p.customer_id IS NULL
   OR c.customer_id IS NULL
   OR (c.email, c.enrolled, c.points_balance, c.lifetime_points, c.tier, c.tier_since, c.member_since,
       c.next_expiry_date, c.next_expiry_amount)
      IS DISTINCT FROM
      (p.email, p.enrolled, p.points_balance, p.lifetime_points, p.tier, p.tier_since, p.member_since,
       p.next_expiry_date, p.next_expiry_amount)
