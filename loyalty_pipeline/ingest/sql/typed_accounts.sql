-- One accounts file as raw_accounts rows, parsed in the pass that reads it. The records are the
-- adapter's canonical columns as text (with `absent`, and `source_line` when the reader numbers them).
-- Text columns stay as written; each typed value is parsed (warehouse/sql/macros.sql), NULL when blank
-- or refused. What the row alone is refused for goes to `problems`, in column order, each with the
-- value as written: the only copy of a refused value's text, so quarantine names file, line, field and
-- value. A clean row (nearly all of them) has no list at all. The program's tier names and duplicates
-- across rows are judged by the snapshot (snapshots/sql/rejected.sql).
WITH parsed AS (
    SELECT *,
           norm_text(customer_id)         AS c_customer_id,
           parse_bool(enrolled)           AS c_enrolled,
           parse_int(points_balance)      AS c_points_balance,
           parse_int(lifetime_points)     AS c_lifetime_points,
           parse_date(tier_since)         AS c_tier_since,
           parse_date(member_since)       AS c_member_since,
           parse_date(next_expiry_date)   AS c_next_expiry_date,
           parse_int(next_expiry_amount)  AS c_next_expiry_amount
    FROM ({records})
), found AS (
    SELECT *,
           id_problem(customer_id, c_customer_id) AS p1,
           -- A spreadsheet turned a long numeric id into a float: the real id is lost.
           CASE WHEN regexp_full_match(c_customer_id, '[0-9.]+[eE][+-]?[0-9]+')
                THEN problem('customer_id', customer_id, 'id_in_scientific_notation') END AS p2,
           CASE WHEN c_enrolled IS NULL THEN problem('enrolled', enrolled, 'invalid_boolean') END AS p3,
           CASE WHEN c_points_balance IS NULL THEN problem('points_balance', points_balance, 'invalid_integer')
           END AS p4,
           CASE WHEN c_lifetime_points IS NULL THEN problem('lifetime_points', lifetime_points, 'invalid_integer')
                WHEN c_lifetime_points < 0 THEN problem('lifetime_points', lifetime_points, 'negative_lifetime')
           END AS p5,
           CASE WHEN c_tier_since IS NULL AND NOT is_blank(tier_since)
                THEN problem('tier_since', tier_since, 'invalid_date') END AS p6,
           CASE WHEN c_member_since IS NULL AND NOT is_blank(member_since)
                THEN problem('member_since', member_since, 'invalid_date') END AS p7,
           CASE WHEN c_next_expiry_date IS NULL AND NOT is_blank(next_expiry_date)
                THEN problem('next_expiry_date', next_expiry_date, 'invalid_date') END AS p8,
           CASE WHEN (c_next_expiry_amount IS NULL OR c_next_expiry_amount < 0) AND NOT is_blank(next_expiry_amount)
                THEN problem('next_expiry_amount', next_expiry_amount, 'invalid_integer') END AS p9
    FROM parsed
)
SELECT * EXCLUDE (absent, c_customer_id, c_enrolled, c_points_balance, c_lifetime_points, c_tier_since,
                  c_member_since, c_next_expiry_date, c_next_expiry_amount, p1, p2, p3, p4, p5, p6, p7, p8, p9)
         REPLACE (c_enrolled AS enrolled, c_points_balance AS points_balance, c_lifetime_points AS lifetime_points,
                  c_tier_since AS tier_since, c_member_since AS member_since, c_next_expiry_date AS next_expiry_date,
                  c_next_expiry_amount AS next_expiry_amount),
       CASE
           -- A required field the record lacks (`absent`: JSON Lines platforms) is the row's first problem;
           -- what its missing value also trips (the invalid_boolean of a NULL…) is not listed again.
           WHEN absent IS NOT NULL
           THEN list_concat([problem(f, NULL, 'missing_field') FOR f IN string_split(absent, ',')],
                            list_filter([p1, p2, p3, p4, p5, p6, p7, p8, p9],
                                        lambda p: p IS NOT NULL AND NOT list_contains(string_split(absent, ','), p.field)))
           WHEN coalesce(p1, p2, p3, p4, p5, p6, p7, p8, p9) IS NOT NULL
           THEN list_filter([p1, p2, p3, p4, p5, p6, p7, p8, p9], lambda p: p IS NOT NULL)
       END AS problems
FROM found
