-- The score log in blocks: one row per model version per ingest, holding that version's scores
-- of every record the ingest stored (see registry/src/scores.rs for the blob's layout). A row per
-- score cost more to write than the record it scored: two B-tree entries and JSON text each.
-- A record's scores are found through its sequence number: an ingest reserves one range of them
-- for its records, and each of its blocks carries that range. The rows of the old `scores` table
-- are carried over by the store when it migrates (`scores::convert_legacy_log`), which then drops
-- the table. migrations/sqlite/0010_score_blocks.sql is the same change in SQLite's types.
CREATE TABLE score_blocks (
    dataset_id     BIGINT  NOT NULL,  -- no REFERENCES: like records (see 0002_history.sql)
    last_position  BIGINT  NOT NULL,
    first_position BIGINT  NOT NULL,
    count          BIGINT  NOT NULL,  -- scores in the block
    first_seq      BIGINT  NOT NULL,  -- the sequence numbers the ingest reserved
    last_seq       BIGINT  NOT NULL,
    ts_min         BIGINT  NOT NULL,  -- the event times of the records scored
    ts_max         BIGINT  NOT NULL,
    model          TEXT    NOT NULL,
    version        BIGINT  NOT NULL,
    role           TEXT    NOT NULL,  -- 'champion' or 'challenger'
    received_at    BIGINT  NOT NULL,
    classes        TEXT,              -- JSON array of class labels, classifiers only
    scores         BYTEA   NOT NULL,
    PRIMARY KEY (dataset_id, last_position)
);

CREATE INDEX score_blocks_by_seq ON score_blocks (dataset_id, first_seq);
