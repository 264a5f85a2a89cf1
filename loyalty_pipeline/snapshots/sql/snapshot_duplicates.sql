-- Of several valid rows of `checked` for one member, the first line wins; the others get the problem
-- `duplicate_member`. Where the platform keys members by email ($email_is_key), a second valid row
-- with the same (valid) email is a duplicate too. Only the ids and emails seen twice are ranked.
UPDATE checked SET problems = [problem(d.field, CASE d.field WHEN 'email' THEN checked.email
                                                              ELSE checked.customer_id END, 'duplicate_member')]
FROM (
    WITH valid AS (
        SELECT source_line, c_customer_id, c_email FROM checked WHERE len(problems) = 0
    ), by_id AS (
        SELECT source_line, row_number() OVER (PARTITION BY c_customer_id ORDER BY source_line) AS n
        FROM valid
        WHERE c_customer_id IN (SELECT c_customer_id FROM valid GROUP BY ALL HAVING count(*) > 1)
    ), by_email AS (
        SELECT source_line, row_number() OVER (PARTITION BY c_email ORDER BY source_line) AS n
        FROM valid
        WHERE $email_is_key
          AND c_email IN (SELECT c_email FROM valid WHERE is_valid_email(c_email) GROUP BY ALL HAVING count(*) > 1)
    )
    SELECT source_line, 'customer_id' AS field FROM by_id WHERE n > 1
    UNION ALL
    SELECT source_line, 'email' FROM by_email
    WHERE n > 1 AND source_line NOT IN (SELECT source_line FROM by_id WHERE n > 1)
) d
WHERE checked.source_line = d.source_line
