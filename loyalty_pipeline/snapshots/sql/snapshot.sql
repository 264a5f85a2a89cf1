-- Validate one day's raw_accounts ($day) into the temp table `checked`: parsed values, the list of
-- problems that reject a row, and the flags that only annotate it. Needs temp table tier_aliases.
-- Duplicates are marked afterwards (snapshot_duplicates.sql): a window over every row would sort
-- the whole day with all its columns, when duplicates are a handful.
CREATE OR REPLACE TEMP TABLE checked AS
WITH raw AS (
    SELECT * FROM raw_accounts WHERE snapshot_date = $day
), parsed AS (
    SELECT
        r.*,
        norm_text(r.customer_id)                    AS c_customer_id,
        lower(norm_text(r.email))                   AS c_email,
        parse_bool(r.enrolled)                      AS c_enrolled,
        parse_int(r.points_balance)                 AS c_points_balance,
        parse_int(r.lifetime_points)                AS c_lifetime_points,
        norm_text(r.tier)                           AS c_tier_raw,
        t.tier                                      AS c_tier,
        t.rank                                      AS c_tier_rank,
        parse_date(r.tier_since)                    AS c_tier_since,
        parse_date(r.member_since)                  AS c_member_since,
        parse_date(r.next_expiry_date)              AS c_next_expiry_date,
        parse_int(r.next_expiry_amount)             AS c_next_expiry_amount
    FROM raw r
    LEFT JOIN tier_aliases t ON t.alias = lower(norm_text(r.tier))
), judged AS (
    SELECT
        *,
        list_filter([
            CASE WHEN c_customer_id IS NULL THEN problem('customer_id', customer_id, 'missing_id')
                 WHEN has_control_character(c_customer_id) THEN problem('customer_id', customer_id, 'invalid_id') END,
            -- A spreadsheet turned a long numeric id into a float: the real id is lost.
            CASE WHEN regexp_full_match(c_customer_id, '[0-9.]+[eE][+-]?[0-9]+')
                 THEN problem('customer_id', customer_id, 'id_in_scientific_notation') END,
            CASE WHEN c_enrolled IS NULL THEN problem('enrolled', enrolled, 'invalid_boolean') END,
            CASE WHEN c_points_balance IS NULL
                 THEN problem('points_balance', points_balance, 'invalid_integer') END,
            CASE WHEN c_lifetime_points IS NULL
                 THEN problem('lifetime_points', lifetime_points, 'invalid_integer')
                 WHEN c_lifetime_points < 0
                 THEN problem('lifetime_points', lifetime_points, 'negative_lifetime') END,
            CASE WHEN c_tier_raw IS NOT NULL AND c_tier IS NULL THEN problem('tier', tier, 'unknown_tier') END,
            CASE WHEN NOT is_blank(tier_since) AND c_tier_since IS NULL
                 THEN problem('tier_since', tier_since, 'invalid_date') END,
            CASE WHEN NOT is_blank(member_since) AND c_member_since IS NULL
                 THEN problem('member_since', member_since, 'invalid_date') END,
            CASE WHEN NOT is_blank(next_expiry_date) AND c_next_expiry_date IS NULL
                 THEN problem('next_expiry_date', next_expiry_date, 'invalid_date') END,
            CASE WHEN NOT is_blank(next_expiry_amount)
                      AND (c_next_expiry_amount IS NULL OR c_next_expiry_amount < 0)
                 THEN problem('next_expiry_amount', next_expiry_amount, 'invalid_integer') END
        ], lambda p: p IS NOT NULL) AS found
    FROM parsed
), with_absent AS (
    -- A required field the record lacks (`absent`: JSON Lines platforms) is the row's first problem;
    -- what its missing value also trips (the invalid_boolean of a NULL…) is not listed again.
    SELECT * EXCLUDE (found),
           CASE WHEN absent IS NULL THEN found
                ELSE list_concat([problem(f, NULL, 'missing_field') FOR f IN string_split(absent, ',')],
                                 list_filter(found, lambda p: NOT list_contains(string_split(absent, ','), p.field)))
           END AS problems
    FROM judged
)
SELECT
    * EXCLUDE (enrolled, points_balance, lifetime_points, tier, tier_since, member_since, next_expiry_date,
               next_expiry_amount),  -- the raw text lives on in `problems` (and raw_accounts)
    list_filter([
        CASE WHEN c_email IS NOT NULL AND NOT is_valid_email(c_email)
             THEN 'invalid_email' END,
        CASE WHEN c_points_balance < 0 THEN 'negative_balance' END,
        CASE WHEN c_points_balance < $negative_floor THEN 'balance_below_floor' END,
        CASE WHEN is_sentinel_date(c_tier_since) OR is_sentinel_date(c_member_since)
                  OR is_sentinel_date(c_next_expiry_date) THEN 'sentinel_date' END
    ], lambda f: f IS NOT NULL) AS flags
FROM with_absent;
