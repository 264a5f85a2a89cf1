-- Each tier name of $day's export that the program does not know, as the export wrote it, with its rows
-- (quarantined as unknown_tier): what ops add as an alias in program.yaml. Most rows first.
SELECT p.value AS raw_tier, count(*) AS rows
FROM (SELECT unnest(from_json(problems, '[{"field": "VARCHAR", "value": "VARCHAR", "reason": "VARCHAR"}]')) AS p
      FROM quarantine WHERE snapshot_date = $day AND kind = 'accounts')
WHERE p.reason = 'unknown_tier'
GROUP BY ALL
ORDER BY rows DESC, raw_tier
