-- One activities file as raw_activities rows, parsed in the pass that reads it, like typed_accounts.sql:
-- the records hold the canonical columns as text (and `source_line` when the reader numbers them); ids
-- and reasons stay as written, points and times are parsed, and `problems` lists what the row is refused
-- for with the values as written (NULL: nothing).
WITH parsed AS (
    SELECT *,
           norm_text(customer_id)      AS c_customer_id,
           parse_timestamp(occurred_at) AS c_occurred_at,
           parse_int(points)           AS c_points
    FROM ({records})
), found AS (
    SELECT *,
           id_problem(customer_id, c_customer_id) AS p1,
           CASE WHEN c_points IS NULL THEN problem('points', points, 'invalid_integer') END AS p2,
           -- A timestamp out of 1900-2099 is no movement's time (and may not fit a consumer's type).
           CASE WHEN (c_occurred_at IS NULL OR is_sentinel_date(CAST(c_occurred_at AS DATE)))
                     AND NOT is_blank(occurred_at)
                THEN problem('occurred_at', occurred_at, 'invalid_timestamp') END AS p3
    FROM parsed
)
SELECT * EXCLUDE (absent, c_customer_id, c_occurred_at, c_points, p1, p2, p3)
         REPLACE (c_occurred_at AS occurred_at, c_points AS points),
       CASE WHEN coalesce(p1, p2, p3) IS NOT NULL
            THEN list_filter([p1, p2, p3], lambda p: p IS NOT NULL) END AS problems
FROM found
