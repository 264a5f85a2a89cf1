-- The valid rows of `checked` as snapshot rows (sentinel dates and invalid emails become NULL).
SELECT
    snapshot_date,
    c_customer_id AS customer_id,
    CASE WHEN NOT list_contains(flags, 'invalid_email') THEN c_email END AS email,
    c_enrolled AS enrolled,
    c_points_balance AS points_balance,
    c_lifetime_points AS lifetime_points,
    c_tier AS tier,
    c_tier_rank AS tier_rank,
    CASE WHEN NOT is_sentinel_date(c_tier_since) THEN c_tier_since END AS tier_since,
    CASE WHEN NOT is_sentinel_date(c_member_since) THEN c_member_since END AS member_since,
    CASE WHEN NOT is_sentinel_date(c_next_expiry_date) THEN c_next_expiry_date END AS next_expiry_date,
    c_next_expiry_amount AS next_expiry_amount,
    flags AS dq_flags,
    source_file,
    source_line
FROM checked
WHERE len(problems) = 0
