-- Validate one day's raw_activities ($day) into temp table `checked_activities`.
CREATE OR REPLACE TEMP TABLE checked_activities AS
SELECT
    r.*,
    norm_text(r.customer_id) AS c_customer_id,
    TRY_CAST(trim(r.occurred_at) AS TIMESTAMPTZ) AS c_occurred_at,
    parse_int(r.points) AS c_points,
    lower(norm_text(r.reason)) AS c_reason,
    list_filter([
        CASE WHEN norm_text(r.customer_id) IS NULL THEN problem('customer_id', r.customer_id, 'missing_id') END,
        CASE WHEN parse_int(r.points) IS NULL THEN problem('points', r.points, 'invalid_integer') END,
        CASE WHEN NOT is_blank(r.occurred_at) AND TRY_CAST(trim(r.occurred_at) AS TIMESTAMPTZ) IS NULL
             THEN problem('occurred_at', r.occurred_at, 'invalid_timestamp') END
    ], lambda p: p IS NOT NULL) AS problems
FROM raw_activities r
WHERE r.snapshot_date = $day;
