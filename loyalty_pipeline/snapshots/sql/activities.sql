-- Validate one day's raw_activities ($day) into temp table `checked_activities`.
CREATE OR REPLACE TEMP TABLE checked_activities AS
SELECT
    r.*,
    norm_text(r.customer_id) AS c_customer_id,
    parse_timestamp(r.occurred_at) AS c_occurred_at,
    parse_int(r.points) AS c_points,
    lower(norm_text(r.reason)) AS c_reason,
    list_filter([
        CASE WHEN norm_text(r.customer_id) IS NULL THEN problem('customer_id', r.customer_id, 'missing_id')
             WHEN has_control_character(r.customer_id) THEN problem('customer_id', r.customer_id, 'invalid_id') END,
        CASE WHEN parse_int(r.points) IS NULL THEN problem('points', r.points, 'invalid_integer') END,
        -- A timestamp out of 1900-2099 is no movement's time (and may not fit a consumer's type).
        CASE WHEN NOT is_blank(r.occurred_at) AND (parse_timestamp(r.occurred_at) IS NULL
                  OR is_sentinel_date(CAST(parse_timestamp(r.occurred_at) AS DATE)))
             THEN problem('occurred_at', r.occurred_at, 'invalid_timestamp') END
    ], lambda p: p IS NOT NULL) AS problems
FROM raw_activities r
WHERE r.snapshot_date = $day;
