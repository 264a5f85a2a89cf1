-- Migration 0002: the ingest parses each value while it reads the file (issue 17). raw_accounts and
-- raw_activities hold typed values; the text of a typed value is kept, in `problems`, only where its
-- column refused it (with the field and the reason), so quarantine still names file, line, field and
-- value. Text columns (ids, emails, tier names, reasons) are kept as written.
--
-- Rows written before this migration are text only, which the steps no longer read: they are dropped
-- with the ingest's records of their days. Re-running such a day reads its export again, as any code
-- change already makes it do; its snapshots, quarantine, deltas and events are kept as they are.

DROP TABLE raw_accounts;
CREATE TABLE raw_accounts (
    snapshot_date      DATE NOT NULL,
    source_file        VARCHAR NOT NULL,
    source_line        BIGINT NOT NULL,  -- where the record starts (CSV: header = line 1; Parquet: row)
    customer_id        VARCHAR,          -- as written
    email              VARCHAR,          -- as written
    enrolled           BOOLEAN,          -- parsed: NULL when blank or refused (then a problem says why)
    points_balance     BIGINT,
    lifetime_points    BIGINT,
    tier               VARCHAR,          -- as written (the program's names are matched by the snapshot)
    tier_since         DATE,
    member_since       DATE,
    next_expiry_date   DATE,
    next_expiry_amount BIGINT,
    -- What the row alone is refused for, in column order, each with the value as written
    -- (ingest/sql/typed_accounts.sql); NULL: nothing.
    problems           STRUCT(field VARCHAR, value VARCHAR, reason VARCHAR)[]
);

DROP TABLE raw_activities;
CREATE TABLE raw_activities (
    snapshot_date DATE NOT NULL,
    source_file   VARCHAR NOT NULL,
    source_line   BIGINT NOT NULL,
    customer_id   VARCHAR,               -- as written
    occurred_at   TIMESTAMPTZ,           -- parsed
    points        BIGINT,                -- parsed
    reason        VARCHAR,               -- as written
    problems      STRUCT(field VARCHAR, value VARCHAR, reason VARCHAR)[]
);

DELETE FROM step_fingerprints WHERE step = 'ingest';
