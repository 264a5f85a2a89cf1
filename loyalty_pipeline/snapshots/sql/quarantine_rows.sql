-- The `rejected` rows as quarantine rows: the first problem names the field, all of them are kept.
SELECT
    $day AS snapshot_date,
    'accounts' AS kind,
    source_file,
    source_line,
    customer_id,
    problems[1].field AS field,
    problems[1].value AS value,
    problems[1].reason AS reason,
    to_json(problems) AS problems
FROM rejected
