-- Strict parsers shared by every validation step. TRY_CAST is too lenient for exports
-- (TRY_CAST('1.5' AS BIGINT) = 2), so integers must look like integers.
CREATE OR REPLACE TEMP MACRO is_blank(x) AS x IS NULL OR trim(x) IN ('', 'null', 'NULL', 'None', 'N/A', 'n/a');
CREATE OR REPLACE TEMP MACRO parse_int(x) AS
    CASE WHEN regexp_full_match(trim(x), '[+-]?[0-9]{1,18}') THEN CAST(trim(x) AS BIGINT) END;
CREATE OR REPLACE TEMP MACRO parse_bool(x) AS
    CASE WHEN lower(trim(x)) IN ('true', 't', '1', 'yes', 'y') THEN true
         WHEN lower(trim(x)) IN ('false', 'f', '0', 'no', 'n') THEN false END;
-- A timestamp keeps the date it was written with (its own offset); epoch milliseconds (13 digits,
-- as Yotpo webhooks send them) have no offset: their UTC date.
CREATE OR REPLACE TEMP MACRO parse_date(x) AS
    coalesce(TRY_CAST(trim(x) AS DATE), TRY_CAST(TRY_CAST(trim(x) AS TIMESTAMPTZ) AS DATE),
             CASE WHEN regexp_full_match(trim(x), '[0-9]{13}') THEN CAST(epoch_ms(CAST(trim(x) AS BIGINT)) AS DATE) END);
-- Platforms write "no date" as a sentinel (Yotpo 0001-01-01, Smile year 1004).
CREATE OR REPLACE TEMP MACRO is_sentinel_date(d) AS d IS NOT NULL AND year(d) < 1900;
CREATE OR REPLACE TEMP MACRO is_valid_email(x) AS regexp_full_match(x, '[^@\s]+@[^@\s]+\.[^@\s]+');
CREATE OR REPLACE TEMP MACRO norm_text(x) AS nullif(trim(nfc_normalize(x)), '');
CREATE OR REPLACE TEMP MACRO problem(field, value, reason) AS {'field': field, 'value': value, 'reason': reason};
