-- Strict parsers shared by every validation step. TRY_CAST is too lenient for exports
-- (TRY_CAST('1.5' AS BIGINT) = 2), so integers must look like integers. Each parser tries first the
-- spelling nearly every value of an export has (no padding, lower case), which costs a fraction of
-- trimming and lower-casing a million values, then the general rule, which gives the same result.
CREATE OR REPLACE TEMP MACRO is_blank(x) AS x IS NULL OR trim(x) IN ('', 'null', 'NULL', 'None', 'N/A', 'n/a');
CREATE OR REPLACE TEMP MACRO parse_int(x) AS
    CASE WHEN regexp_full_match(x, '[+-]?[0-9]{1,18}') THEN CAST(x AS BIGINT)
         WHEN regexp_full_match(trim(x), '[+-]?[0-9]{1,18}') THEN CAST(trim(x) AS BIGINT) END;
CREATE OR REPLACE TEMP MACRO parse_bool(x) AS
    CASE x WHEN 'true' THEN true WHEN 'false' THEN false
        ELSE CASE WHEN lower(trim(x)) IN ('true', 't', '1', 'yes', 'y') THEN true
                  WHEN lower(trim(x)) IN ('false', 'f', '0', 'no', 'n') THEN false END END;
-- A date or timestamp an export means starts with its year: DuckDB's casts also read words ('epoch' =
-- 1970-01-01, 'infinity', '-infinity'), which are invalid here. (A year out of any sane range, or a
-- "(BC)" suffix, parses: is_sentinel_date below turns it into NULL + flag.)
CREATE OR REPLACE TEMP MACRO starts_with_digit(x) AS ascii(ltrim(x)) BETWEEN 48 AND 57;
-- A timestamp keeps the date it was written with (its own offset); epoch milliseconds (13 digits,
-- as Yotpo webhooks send them) have no offset: their UTC date.
-- (A date DuckDB reads from the untrimmed text is the one it reads from the trimmed text.)
CREATE OR REPLACE TEMP MACRO parse_date(x) AS
    coalesce(CASE WHEN ascii(x) BETWEEN 48 AND 57 THEN TRY_CAST(x AS DATE) END,
             CASE WHEN starts_with_digit(x) THEN
                 coalesce(TRY_CAST(trim(x) AS DATE), TRY_CAST(TRY_CAST(trim(x) AS TIMESTAMPTZ) AS DATE),
                          CASE WHEN regexp_full_match(trim(x), '[0-9]{13}')
                               THEN CAST(epoch_ms(CAST(trim(x) AS BIGINT)) AS DATE) END)
             END);
CREATE OR REPLACE TEMP MACRO parse_timestamp(x) AS
    CASE WHEN starts_with_digit(x) THEN TRY_CAST(trim(x) AS TIMESTAMPTZ) END;
-- Platforms write "no date" as a sentinel (Yotpo 0001-01-01, Smile year 1004, "never" 9999-12-31): any date
-- outside 1900-2099 is taken as one (99999-01-01 too). It becomes NULL + flag, so no consumer meets a date
-- it cannot hold (Python's end at year 9999).
CREATE OR REPLACE TEMP MACRO is_sentinel_date(d) AS
    d IS NOT NULL AND (d < DATE '1900-01-01' OR d >= DATE '2100-01-01');
-- A control character (NUL, tab, newline, DEL, C1…) in an id is a broken export, never a shop's id.
CREATE OR REPLACE TEMP MACRO has_control_character(x) AS regexp_matches(x, '\p{Cc}');
CREATE OR REPLACE TEMP MACRO is_valid_email(x) AS regexp_full_match(x, '[^@\s]+@[^@\s]+\.[^@\s]+');
CREATE OR REPLACE TEMP MACRO norm_text(x) AS nullif(trim(nfc_normalize(x)), '');
CREATE OR REPLACE TEMP MACRO problem(field, value, reason) AS {'field': field, 'value': value, 'reason': reason};
-- The id rule every file's rows share: `raw` as written, `parsed` = norm_text(raw).
CREATE OR REPLACE TEMP MACRO id_problem(raw, parsed) AS
    CASE WHEN parsed IS NULL THEN problem('customer_id', raw, 'missing_id')
         WHEN has_control_character(parsed) THEN problem('customer_id', raw, 'invalid_id') END;
-- The members rejected on `day`: a quarantined accounts row and no valid one that day (quarantine keeps
-- the id as written: matched as validation normalises it). Deltas compare a member rejected on their
-- previous day with their last valid row before it (snapshots/sql/deltas.sql); the events and the tier
-- matrix take that into account.
CREATE OR REPLACE TEMP MACRO rejected_members(day) AS TABLE
    SELECT DISTINCT norm_text(q.customer_id) AS customer_id
    FROM quarantine q
    WHERE q.snapshot_date = day AND q.kind = 'accounts' AND norm_text(q.customer_id) IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.snapshot_date = day
                        AND s.customer_id = norm_text(q.customer_id));
-- What a delta compares (snapshots/sql/deltas.sql): a member whose values all equal the previous
-- snapshot's has no delta. `s`: a snapshots row.
CREATE OR REPLACE TEMP MACRO delta_values(s) AS
    (s.email, s.enrolled, s.points_balance, s.lifetime_points, s.tier, s.tier_since, s.member_since,
     s.next_expiry_date, s.next_expiry_amount);
