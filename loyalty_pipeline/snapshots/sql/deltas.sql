-- Each member's change on $day against the latest earlier snapshot P ($previous, which may be days back).
-- With no earlier snapshot this is the baseline: every member is `new`, previous_snapshot_date NULL.
-- Quarantine is not a membership change (DESIGN invariant 14): a member whose row was rejected on $day
-- is not `removed` (no delta); one rejected on P is compared with their last valid row before P, and
-- has no delta at all when they never had one (that day's row is their baseline). Quarantine keeps the
-- id as written: it is matched through validation's normalisation (norm_text).
-- The members compared in full are first narrowed to those on one side only or whose compared values
-- (delta_values) hash differently on $day and P: a join of (id, hash) fits in memory at 10 M members,
-- where the join of whole rows spills to disk and takes twice as long. A change is missed only when the
-- new values hash exactly as the old ones (a 64-bit collision, about 1 in 10^19 per changed member);
-- the comparison of the narrowed members at the end is exact.
WITH changed AS MATERIALIZED (
    SELECT coalesce(c.customer_id, p.customer_id) AS customer_id
    FROM (SELECT s.customer_id, hash(delta_values(s)) AS h FROM snapshots s WHERE s.snapshot_date = $day) c
    FULL OUTER JOIN (SELECT s.customer_id, hash(delta_values(s)) AS h FROM snapshots s
                     WHERE s.snapshot_date = $previous) p ON c.customer_id = p.customer_id
    WHERE c.h IS DISTINCT FROM p.h
), rejected AS (
    -- Members with a rejected row and no valid one, on $day or on P.
    SELECT $day AS snapshot_date, customer_id FROM rejected_members($day)
    UNION ALL
    SELECT $previous, customer_id FROM rejected_members($previous)
), back AS (
    -- Valid on $day, rejected on P: their last valid row before P stands in for P.
    SELECT s.* FROM snapshots s
    WHERE s.snapshot_date < $previous
      AND s.customer_id IN (SELECT r.customer_id FROM rejected r
                            JOIN snapshots c ON c.snapshot_date = $day AND c.customer_id = r.customer_id
                            WHERE r.snapshot_date = $previous)
    QUALIFY row_number() OVER (PARTITION BY s.customer_id ORDER BY s.snapshot_date DESC) = 1
), prev AS (
    SELECT * FROM snapshots WHERE snapshot_date = $previous AND customer_id IN (SELECT customer_id FROM changed)
    UNION ALL SELECT * FROM back
)
SELECT
    $day AS snapshot_date,
    $previous AS previous_snapshot_date,
    date_diff('day', $previous, $day) AS gap_days,
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
FROM (SELECT * FROM snapshots WHERE snapshot_date = $day AND customer_id IN (SELECT customer_id FROM changed)) c
FULL OUTER JOIN prev p ON c.customer_id = p.customer_id
-- Gone from $day but rejected on it: not removed. New on $day but rejected on P, with no valid row
-- before: their first valid row is their baseline.
LEFT JOIN rejected r ON r.customer_id = coalesce(c.customer_id, p.customer_id)
                    AND r.snapshot_date = CASE WHEN c.customer_id IS NULL THEN $day ELSE $previous END
WHERE (r.customer_id IS NULL OR (c.customer_id IS NOT NULL AND p.customer_id IS NOT NULL))
  AND (p.customer_id IS NULL
   OR c.customer_id IS NULL
   OR delta_values(c) IS DISTINCT FROM delta_values(p))
