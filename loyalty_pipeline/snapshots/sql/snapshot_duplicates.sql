-- Of several snapshot rows of one member, the first line wins; the others go to `rejected` as
-- `duplicate_member` (build_snapshot then removes them from the snapshot). Where the platform keys
-- members by email ($email_is_key), a second row with the same (valid) email is a duplicate too. Run
-- only when the day's counts show duplicates (build_snapshot): they are rare, and only the ids and
-- emails seen twice are ranked (a window over every row would sort the whole day). The value reported
-- is the id or email as written (raw_accounts).
INSERT INTO rejected
WITH day AS (
    SELECT source_line, customer_id, email FROM snapshots WHERE snapshot_date = $day
), by_id AS (
    SELECT source_line, row_number() OVER (PARTITION BY customer_id ORDER BY source_line) AS n
    FROM day
    WHERE customer_id IN (SELECT customer_id FROM day GROUP BY ALL HAVING count(*) > 1)
), by_email AS (
    SELECT source_line, row_number() OVER (PARTITION BY email ORDER BY source_line) AS n
    FROM day
    WHERE $email_is_key AND email IN (SELECT email FROM day WHERE email IS NOT NULL GROUP BY ALL HAVING count(*) > 1)
), duplicates AS (
    SELECT source_line, 'customer_id' AS field FROM by_id WHERE n > 1
    UNION ALL
    SELECT source_line, 'email' FROM by_email
    WHERE n > 1 AND source_line NOT IN (SELECT source_line FROM by_id WHERE n > 1)
)
SELECT r.source_file, r.source_line, r.customer_id,
       [problem(d.field, CASE d.field WHEN 'email' THEN r.email ELSE r.customer_id END, 'duplicate_member')]
FROM duplicates d
JOIN raw_accounts r ON r.snapshot_date = $day AND r.source_line = d.source_line
