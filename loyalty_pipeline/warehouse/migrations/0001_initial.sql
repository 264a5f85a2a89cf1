-- Migration 0001: the warehouse as it stood before numbered migrations (it was warehouse/sql/schema.sql,
-- run on every connection). Every statement is IF NOT EXISTS, so on a warehouse made by that schema it
-- changes nothing and is only recorded in schema_migrations (schema.py). Applied files are never edited:
-- a change to the schema is the next numbered file.
--
-- The warehouse. One row per member per business date; every table carries snapshot_date,
-- the partition key, so a re-run replaces exactly its own day (DELETE + INSERT in one transaction).

-- Lineage of each ingested file: which bytes made a day.
CREATE TABLE IF NOT EXISTS export_files (
    snapshot_date DATE NOT NULL,
    kind          VARCHAR NOT NULL,      -- accounts | activities
    path          VARCHAR NOT NULL,
    format        VARCHAR NOT NULL,      -- csv | parquet | jsonl
    sha256        VARCHAR NOT NULL,
    bytes         BIGINT NOT NULL,
    rows          BIGINT NOT NULL
);

-- The export as read, mapped to canonical column names but still text: validation happens later,
-- so a bad value is quarantined with its original spelling.
CREATE TABLE IF NOT EXISTS raw_accounts (
    snapshot_date      DATE NOT NULL,
    source_file        VARCHAR NOT NULL,
    source_line        BIGINT NOT NULL,  -- 1-based line of the record in a CSV (header = line 1)
    customer_id        VARCHAR,
    email              VARCHAR,
    enrolled           VARCHAR,
    points_balance     VARCHAR,
    lifetime_points    VARCHAR,
    tier               VARCHAR,
    tier_since         VARCHAR,
    member_since       VARCHAR,
    next_expiry_date   VARCHAR,
    next_expiry_amount VARCHAR,
    absent             VARCHAR           -- JSON Lines: canonical columns whose source keys the record lacks
);
ALTER TABLE raw_accounts ADD COLUMN IF NOT EXISTS absent VARCHAR;

CREATE TABLE IF NOT EXISTS raw_activities (
    snapshot_date DATE NOT NULL,
    source_file   VARCHAR NOT NULL,
    source_line   BIGINT NOT NULL,
    customer_id   VARCHAR,
    occurred_at   VARCHAR,
    points        VARCHAR,
    reason        VARCHAR
);

-- One validated row per member per day.
CREATE TABLE IF NOT EXISTS snapshots (
    snapshot_date      DATE NOT NULL,
    customer_id        VARCHAR NOT NULL,
    email              VARCHAR,          -- trimmed, lower-cased, NFC; NULL when invalid (flagged)
    enrolled           BOOLEAN NOT NULL,
    points_balance     BIGINT NOT NULL,  -- signed: refunds after redemptions go negative
    lifetime_points    BIGINT NOT NULL,
    tier               VARCHAR,          -- canonical tier name from program.yaml; NULL = no tier
    tier_rank          INTEGER,
    tier_since         DATE,
    member_since       DATE,
    next_expiry_date   DATE,
    next_expiry_amount BIGINT,
    dq_flags           VARCHAR[] NOT NULL,
    source_file        VARCHAR NOT NULL,
    source_line        BIGINT NOT NULL
);

-- Every input row that did not make it into snapshots, with the first reason and all of them.
CREATE TABLE IF NOT EXISTS quarantine (
    snapshot_date DATE NOT NULL,
    kind          VARCHAR NOT NULL,      -- accounts | activities
    source_file   VARCHAR NOT NULL,
    source_line   BIGINT NOT NULL,
    customer_id   VARCHAR,
    field         VARCHAR NOT NULL,
    value         VARCHAR,
    reason        VARCHAR NOT NULL,
    problems      JSON NOT NULL
);

-- Validated point movements of the day (optional input).
CREATE TABLE IF NOT EXISTS activities (
    snapshot_date DATE NOT NULL,
    customer_id   VARCHAR NOT NULL,
    occurred_at   TIMESTAMPTZ,
    points        BIGINT NOT NULL,
    reason        VARCHAR NOT NULL,
    source_line   BIGINT NOT NULL
);

-- Each member's change between snapshot_date and the latest earlier snapshot.
CREATE TABLE IF NOT EXISTS account_deltas (
    snapshot_date          DATE NOT NULL,
    previous_snapshot_date DATE,         -- NULL on the baseline (first snapshot ever)
    gap_days               INTEGER,
    customer_id            VARCHAR NOT NULL,
    change_kind            VARCHAR NOT NULL,  -- new | removed | changed
    email                  VARCHAR,
    enrolled_before        BOOLEAN,
    enrolled_after         BOOLEAN,
    balance_before         BIGINT,
    balance_after          BIGINT,
    balance_delta          BIGINT,
    lifetime_before        BIGINT,
    lifetime_after         BIGINT,
    lifetime_delta         BIGINT,
    tier_before            VARCHAR,
    tier_after             VARCHAR,
    tier_rank_before       INTEGER,
    tier_rank_after        INTEGER,
    tier_direction         VARCHAR,           -- up | down | joined | left | NULL
    expiry_date_before     DATE,
    expiry_date_after      DATE,
    expiry_amount_before   BIGINT,
    expiry_amount_after    BIGINT
);

-- Marketing events implied by the day (see loyalty_pipeline/events/). Recomputing a day replaces
-- these rows; delivery state lives elsewhere (keyed by event_key) so it survives recomputation.
CREATE TABLE IF NOT EXISTS loyalty_events (
    event_key     VARCHAR NOT NULL,      -- sha256(code_name | customer_id | snapshot_date | discriminator)
    snapshot_date DATE NOT NULL,
    customer_id   VARCHAR NOT NULL,
    email         VARCHAR,
    code_name     VARCHAR NOT NULL,
    discriminator VARCHAR NOT NULL,
    metadata      JSON NOT NULL,         -- the event's metaData, valid against its catalogue model
    status        VARCHAR NOT NULL       -- pending | suppressed_stale
);

-- ShopiMind delivery (loyalty_pipeline/outbound/shopimind/). `destination` is the API base URL (never the key):
-- "sent" means acknowledged by that destination, so pointing the pipeline elsewhere starts afresh.
-- None of these tables is partitioned: re-running a day never deletes delivery history.

-- The bootstrap, one row per destination: the LoyaltyAccount definition id and the declared event types,
-- with a sha256 of what was declared. It is the setup cache: a run whose hashes match makes no setup
-- request; a changed program, or ShopiMind saying the definition or an event type is gone, re-runs it.
CREATE TABLE IF NOT EXISTS shopimind_setup (
    destination     VARCHAR NOT NULL,
    definition_name VARCHAR NOT NULL,
    definition_id   BIGINT NOT NULL,
    event_types     VARCHAR[] NOT NULL,
    checked_at      TIMESTAMPTZ NOT NULL,  -- when setup last ran (requests made), not when the cache was read
    definition_hash VARCHAR,               -- sha256 of the definition body; NULL: re-check it
    event_hashes    VARCHAR                -- JSON {code_name: sha256 of its properties}
);
-- Warehouses created before the cache: the same columns (NULL until setup next runs).
ALTER TABLE shopimind_setup ADD COLUMN IF NOT EXISTS definition_hash VARCHAR;
ALTER TABLE shopimind_setup ADD COLUMN IF NOT EXISTS event_hashes VARCHAR;

-- Current delivery state, one row per destination, kind and key (never deleted by re-runs).
CREATE TABLE IF NOT EXISTS delivery_state (
    destination      VARCHAR NOT NULL,
    kind             VARCHAR NOT NULL,   -- account | account_delete (key = customer_id) | event (key = event_key)
    key              VARCHAR NOT NULL,
    snapshot_date    DATE NOT NULL,      -- partition of the latest attempt
    customer_id      VARCHAR NOT NULL,
    code_name        VARCHAR,            -- events only
    status           VARCHAR NOT NULL,   -- in_flight | sent | rejected | failed | uncertain | suppressed_stale
                                         -- | unaddressable (events: no email or phone, not sent)
    http_status      INTEGER,
    error            VARCHAR,            -- the API's message (rejected) or the transport error (failed)
    attempts         INTEGER NOT NULL,   -- delivery attempts so far (each may span several HTTP retries)
    payload_hash     VARCHAR,            -- accounts: md5 of the mapped values of the latest attempt
    first_attempt_at TIMESTAMPTZ,
    last_attempt_at  TIMESTAMPTZ,
    sent_at          TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL
);

-- Append-only: one row per record or event and delivery attempt (and per reconciliation).
CREATE TABLE IF NOT EXISTS sync_log (
    logged_at     TIMESTAMPTZ NOT NULL,
    run_id        VARCHAR,
    destination   VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,
    key           VARCHAR NOT NULL,
    snapshot_date DATE NOT NULL,
    customer_id   VARCHAR NOT NULL,
    code_name     VARCHAR,
    status        VARCHAR NOT NULL,      -- sent | rejected | failed | uncertain | suppressed_stale | unaddressable
    http_status   INTEGER,
    error         VARCHAR,
    attempt       INTEGER NOT NULL,      -- delivery_state.attempts after this attempt
    requests      INTEGER NOT NULL,      -- HTTP requests this attempt took (retries, 429s included)
    note          VARCHAR                -- e.g. "reconciled: found in event histories"
);

-- What ShopiMind holds for each member, as last ACKNOWLEDGED (2xx and not rejected); an acknowledged
-- delete (kind account_delete) removes the member's row: ShopiMind holds nothing for it any more.
CREATE TABLE IF NOT EXISTS account_sync_state (
    destination        VARCHAR NOT NULL,
    customer_id        VARCHAR NOT NULL,
    snapshot_date      DATE NOT NULL,    -- the snapshot these values came from
    points_balance     BIGINT NOT NULL,
    tier               VARCHAR NOT NULL, -- '' = no tier (the definition requires a text)
    tier_since         DATE,
    next_expiry_date   DATE,
    next_expiry_amount BIGINT,
    acknowledged_at    TIMESTAMPTZ NOT NULL,
    keyed              BOOLEAN           -- the record carries our customer_id field (NULL: written before it existed)
);
-- Warehouses from before the customer_id field: their records are re-keyed before a deletion finds them.
ALTER TABLE account_sync_state ADD COLUMN IF NOT EXISTS keyed BOOLEAN;

-- What each daily step last built for a day and from which inputs (warehouse/fingerprints.py):
-- re-running a day whose inputs are unchanged reuses it.
CREATE TABLE IF NOT EXISTS step_fingerprints (
    step          VARCHAR NOT NULL,      -- ingest | snapshot | deltas | events
    snapshot_date DATE NOT NULL,
    fingerprint   VARCHAR NOT NULL,
    rows          BIGINT NOT NULL,       -- rows the step wrote for the day (a reuse checks they are there)
    stats         JSON NOT NULL,         -- what the step reported (returned again on reuse)
    built_at      TIMESTAMPTZ NOT NULL
);
