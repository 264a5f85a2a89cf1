-- Reelevant "Loyalty Programme" datasource: one row per member of the $day snapshot (enrolled or
-- not: `member` says which). The columns are exactly the fields of
-- loyalty_pipeline.reelevant.feed.LoyaltyProgrammeRecord, in order (a test holds them together);
-- feed.py turns each row into its JSON object and orders them by customer_id.
-- Needs temp table `tiers` (warehouse.connection.prepare). $basis = program.tier_basis.
WITH steps AS (
    -- Each tier with the tier that follows it (NULL after the top tier).
    SELECT name, benefits,
           lead(name) OVER (ORDER BY rank)      AS next_name,
           lead(threshold) OVER (ORDER BY rank) AS next_threshold
    FROM tiers
), lowest AS (
    -- A member with no tier is heading for the lowest tier.
    SELECT name, threshold FROM tiers ORDER BY rank LIMIT 1
), members AS (
    SELECT
        s.*,
        CASE WHEN $basis = 'lifetime_points' THEN s.lifetime_points ELSE s.points_balance END AS basis_value,
        CASE WHEN s.tier IS NULL THEN l.name ELSE st.next_name END                             AS next_tier,
        CASE WHEN s.tier IS NULL THEN l.threshold ELSE st.next_threshold END                   AS next_threshold,
        coalesce(st.benefits, []::VARCHAR[])                                                    AS tier_benefits,
        -- The next expiry only: a date before the snapshot day is stale, not upcoming.
        s.next_expiry_date IS NOT NULL AND s.next_expiry_date >= $day                           AS has_expiry
    FROM snapshots s
    LEFT JOIN steps st ON st.name = s.tier
    CROSS JOIN lowest l
    WHERE s.snapshot_date = $day
)
SELECT
    customer_id,
    enrolled                                                                              AS member,
    tier,
    points_balance,
    CASE WHEN next_tier IS NOT NULL THEN greatest(next_threshold - basis_value, 0) END   AS points_to_next_tier,
    next_tier,
    tier_benefits,
    CASE WHEN has_expiry THEN next_expiry_date END                                        AS points_expiration_date,
    CASE WHEN has_expiry THEN next_expiry_amount END                                      AS points_expiring,
    member_since,
    lifetime_points
FROM members
