SELECT snapshot_date, c_customer_id AS customer_id, c_occurred_at AS occurred_at, c_points AS points,
       coalesce(c_reason, $default_reason) AS reason, source_line
FROM checked_activities
WHERE len(problems) = 0
