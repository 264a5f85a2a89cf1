-- Of several rows of one member that are otherwise valid (not in `rejected`), the first line wins; the
-- others are rejected as `duplicate_member`. Where the platform keys members by email ($email_is_key),
-- a second valid row with the same (valid) email is a duplicate too. Only the ids and emails seen
-- twice are ranked: a window over every row would sort the whole day.
INSERT INTO rejected
WITH valid AS (
    SELECT r.source_file, r.source_line, r.customer_id, r.email, norm_text(r.customer_id) AS c_customer_id,
           CASE WHEN $email_is_key THEN lower(norm_text(r.email)) END AS c_email
    FROM raw_accounts r
    WHERE r.snapshot_date = $day AND r.source_line NOT IN (SELECT source_line FROM rejected)
), by_id AS (
    SELECT source_line, row_number() OVER (PARTITION BY c_customer_id ORDER BY source_line) AS n
    FROM valid
    WHERE c_customer_id IN (SELECT c_customer_id FROM valid GROUP BY ALL HAVING count(*) > 1)
), by_email AS (
    SELECT source_line, row_number() OVER (PARTITION BY c_email ORDER BY source_line) AS n
    FROM valid
    WHERE $email_is_key
      AND c_email IN (SELECT c_email FROM valid WHERE is_valid_email(c_email) GROUP BY ALL HAVING count(*) > 1)
), duplicates AS (
    SELECT source_line, 'customer_id' AS field FROM by_id WHERE n > 1
    UNION ALL
    SELECT source_line, 'email' FROM by_email
    WHERE n > 1 AND source_line NOT IN (SELECT source_line FROM by_id WHERE n > 1)
)
SELECT v.source_file, v.source_line, v.customer_id,
       [problem(d.field, CASE d.field WHEN 'email' THEN v.email ELSE v.customer_id END, 'duplicate_member')]
FROM duplicates d JOIN valid v USING (source_line)
