-- The rows of temp table {records} (insertion-ordered: rowid = the record's index in the file) with
-- the physical line each starts on: $first_line + its index + the lines before it that start no
-- record. {skipped} holds those as runs (line, lines); a run shifts every record after it, so the
-- ASOF join takes, for each record, the last run that precedes it.
SELECT r.record + $first_line + coalesce(s.shift, 0) AS source_line, r.* EXCLUDE (record)
FROM (SELECT rowid AS record, * FROM {records}) r
ASOF LEFT JOIN (
    -- from_record: the first record after the run (the lines before it, less the skipped ones)
    SELECT line - $first_line - (skipped - lines) AS from_record, max(skipped) AS shift
    FROM (SELECT line, lines, sum(lines) OVER (ORDER BY line ROWS UNBOUNDED PRECEDING) AS skipped
          FROM {skipped})
    GROUP BY ALL
) s ON r.record >= s.from_record
