-- Members of $day (D) by their tier on $previous (P) and on D, `(new)` when P does not hold them:
-- (before, after, members). Not a join of the two days (a million rows each): D's members by tier,
-- less those that moved, which D's deltas name (new members, tier changes), and the members rejected
-- on P, whom the deltas compare with an older row (deltas.sql) but whom P does not hold.
WITH rejected_on_p AS (
    SELECT customer_id FROM rejected_members($previous)
), moved AS (
    SELECT CASE WHEN change_kind = 'new' OR customer_id IN (SELECT customer_id FROM rejected_on_p) THEN '(new)'
                ELSE coalesce(tier_before, '(none)') END AS before,
           coalesce(tier_after, '(none)') AS after
    FROM account_deltas
    WHERE snapshot_date = $day AND change_kind <> 'removed'
      AND (change_kind = 'new' OR tier_before IS DISTINCT FROM tier_after
           OR customer_id IN (SELECT customer_id FROM rejected_on_p))
    UNION ALL
    -- Rejected on P and unchanged since their older row: no delta, but new to P.
    SELECT '(new)', coalesce(s.tier, '(none)')
    FROM snapshots s
    WHERE s.snapshot_date = $day AND s.customer_id IN (SELECT customer_id FROM rejected_on_p)
      AND NOT EXISTS (SELECT 1 FROM account_deltas d WHERE d.snapshot_date = $day AND d.customer_id = s.customer_id)
), on_d AS (
    SELECT coalesce(tier, '(none)') AS after, count(*) AS members FROM snapshots WHERE snapshot_date = $day GROUP BY ALL
)
SELECT before, after, count(*) FROM moved GROUP BY ALL
UNION ALL
-- The others kept their tier.
SELECT d.after, d.after, d.members - count(m.after) FROM on_d d LEFT JOIN moved m USING (after)
GROUP BY d.after, d.members HAVING d.members > count(m.after)
