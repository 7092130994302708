-- The history in blocks: one row per ingest (per schema version), holding every reading it
-- stored in (ts, machine_id) order (see registry/src/datasets/history.rs for the blob's layout).
-- A row per reading cost a B-tree insert and its key check each: most of a stream batch's time
-- under the writer. A reading's key stays unique: a reading newer than its machine's newest
-- stored one (`machine_marks`) is new; an older one is checked against the blocks that overlap
-- its time. The rows of the old `records` table are carried over by the store when it migrates
-- (`history::convert_legacy_records`), which then drops the table.
-- migrations/postgres/0012_record_blocks.sql is the same change in PostgreSQL's types.
CREATE TABLE record_blocks (
    dataset_id     INTEGER NOT NULL,  -- no REFERENCES: like records (see 0002_history.sql)
    first_seq      INTEGER NOT NULL,  -- the lowest and highest sequence number of its readings
    last_seq       INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    ts_min         INTEGER NOT NULL,  -- the event times of its first and last reading
    ts_max         INTEGER NOT NULL,
    count          INTEGER NOT NULL,  -- readings in the block
    readings       BLOB    NOT NULL,
    PRIMARY KEY (dataset_id, first_seq)
);

CREATE INDEX record_blocks_by_time ON record_blocks (dataset_id, ts_max);

-- The newest event time stored for each machine of a dataset.
CREATE TABLE machine_marks (
    dataset_id INTEGER NOT NULL,
    machine_id TEXT    NOT NULL,
    last_ts    INTEGER NOT NULL,
    PRIMARY KEY (dataset_id, machine_id)
) WITHOUT ROWID;
