SELECT snapshot_date, 'activities' AS kind, source_file, source_line, customer_id,
       problems[1].field AS field, problems[1].value AS value, problems[1].reason AS reason,
       to_json(problems) AS problems
FROM checked_activities
WHERE len(problems) > 0
