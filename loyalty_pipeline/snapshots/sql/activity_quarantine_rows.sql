-- The rows of $day's raw_activities the ingest refused: the first problem names the field, all are kept.
SELECT snapshot_date, 'activities' AS kind, source_file, source_line, customer_id,
       problems[1].field AS field, problems[1].value AS value, problems[1].reason AS reason,
       to_json(problems) AS problems
FROM raw_activities
WHERE snapshot_date = $day AND problems IS NOT NULL
