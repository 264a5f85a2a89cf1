-- The valid rows of $day's raw_activities as the day's point movements (ids and reasons normalised).
SELECT snapshot_date, norm_text(customer_id) AS customer_id, occurred_at, points,
       coalesce(lower(norm_text(reason)), $default_reason) AS reason, source_line
FROM raw_activities
WHERE snapshot_date = $day AND problems IS NULL
