-- Each tier name of $day's export that the program does not know, as the export wrote it, with its rows
-- (quarantined as unknown_tier): what ops add as an alias in program.yaml. Most rows first.
SELECT r.tier AS raw_tier, count(*) AS rows
FROM quarantine q
JOIN raw_accounts r ON r.snapshot_date = q.snapshot_date AND r.source_line = q.source_line
WHERE q.snapshot_date = $day AND q.kind = 'accounts'
  AND list_contains(json_extract_string(q.problems, '$[*].reason'), 'unknown_tier')
GROUP BY ALL
ORDER BY rows DESC, raw_tier
