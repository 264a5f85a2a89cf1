-- The rows of $day's raw_accounts that do not become snapshot rows, into temp table `rejected` with every
-- problem: those the ingest refused (raw_accounts.problems, in column order) and those whose tier the
-- program does not know (temp table tier_aliases), the tier's problem in its column's place: after the
-- missing fields and the columns before `tier`. The duplicates are added next (snapshot_duplicates.sql).
-- A handful of rows: the snapshot is everything else.
CREATE OR REPLACE TEMP TABLE rejected AS
WITH judged AS (
    SELECT r.source_file, r.source_line, r.customer_id, coalesce(r.problems, []) AS problems,
           CASE WHEN norm_text(r.tier) IS NOT NULL AND t.tier IS NULL
                THEN problem('tier', r.tier, 'unknown_tier') END AS tier_problem
    FROM raw_accounts r
    LEFT JOIN tier_aliases t ON t.alias = lower(norm_text(r.tier))
    WHERE r.snapshot_date = $day AND (r.problems IS NOT NULL OR t.tier IS NULL)
)
SELECT source_file, source_line, customer_id,
       CASE WHEN tier_problem IS NULL THEN problems
            ELSE list_concat(
                list_filter(problems, lambda p: p.reason = 'missing_field'
                            OR p.field IN ('customer_id', 'enrolled', 'points_balance', 'lifetime_points')),
                [tier_problem],
                list_filter(problems, lambda p: NOT (p.reason = 'missing_field'
                            OR p.field IN ('customer_id', 'enrolled', 'points_balance', 'lifetime_points'))))
       END AS problems
FROM judged
WHERE len(problems) > 0 OR tier_problem IS NOT NULL
