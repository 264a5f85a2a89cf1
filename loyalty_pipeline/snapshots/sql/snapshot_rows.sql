-- $day's snapshot: the rows of raw_accounts not `rejected`, with the program's tier (temp table
-- tier_aliases) and the flags that only annotate a row; sentinel dates and invalid emails become NULL.
WITH valid AS (
    SELECT r.* EXCLUDE (customer_id, email, tier, problems), norm_text(r.customer_id) AS customer_id,
           lower(norm_text(r.email)) AS email, is_valid_email(lower(norm_text(r.email))) AS email_ok,
           t.tier, t.rank AS tier_rank
    FROM raw_accounts r
    LEFT JOIN tier_aliases t ON t.alias = lower(norm_text(r.tier))
    WHERE r.snapshot_date = $day AND r.source_line NOT IN (SELECT source_line FROM rejected)
)
SELECT
    snapshot_date,
    customer_id,
    CASE WHEN email_ok THEN email END AS email,
    enrolled,
    points_balance,
    lifetime_points,
    tier,
    tier_rank,
    CASE WHEN NOT is_sentinel_date(tier_since) THEN tier_since END AS tier_since,
    CASE WHEN NOT is_sentinel_date(member_since) THEN member_since END AS member_since,
    CASE WHEN NOT is_sentinel_date(next_expiry_date) THEN next_expiry_date END AS next_expiry_date,
    next_expiry_amount,
    list_filter([
        CASE WHEN NOT email_ok THEN 'invalid_email' END,
        CASE WHEN points_balance < 0 THEN 'negative_balance' END,
        CASE WHEN points_balance < $negative_floor THEN 'balance_below_floor' END,
        CASE WHEN is_sentinel_date(tier_since) OR is_sentinel_date(member_since)
                  OR is_sentinel_date(next_expiry_date) THEN 'sentinel_date' END
    ], lambda f: f IS NOT NULL) AS dq_flags,
    source_file,
    source_line
FROM valid
