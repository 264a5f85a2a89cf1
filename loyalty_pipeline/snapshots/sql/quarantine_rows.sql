-- The rejected rows of `checked`: the first problem names the field, all of them are kept.
SELECT
    snapshot_date,
    'accounts' AS kind,
    source_file,
    source_line,
    customer_id,
    problems[1].field AS field,
    problems[1].value AS value,
    problems[1].reason AS reason,
    to_json(problems) AS problems
FROM checked
WHERE len(problems) > 0
