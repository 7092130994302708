-- The history is keyed by time first: (dataset_id, ts, machine_id) instead of
-- (dataset_id, machine_id, ts). A fleet's readings arrive in time order across machines, so a
-- batch now lands on a few adjacent pages at the right edge of the key instead of one page per
-- machine (which made SQLite write ~4x the data to its WAL); training windows, snapshots and
-- retention all select by time. Snapshot digests are computed in this order (see
-- registry/src/datasets/snapshots.rs). SQLite cannot change a primary key: the tables are rebuilt.
CREATE TABLE records_by_time (
    dataset_id     INTEGER NOT NULL,  -- no REFERENCES: see 0002_history.sql
    machine_id     TEXT    NOT NULL,
    ts             INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    features       BLOB    NOT NULL,
    PRIMARY KEY (dataset_id, ts, machine_id)
) WITHOUT ROWID;
INSERT INTO records_by_time (dataset_id, machine_id, ts, seq, schema_version, features)
    SELECT dataset_id, machine_id, ts, seq, schema_version, features FROM records;
DROP TABLE records;
ALTER TABLE records_by_time RENAME TO records;

CREATE TABLE record_labels_by_time (
    dataset_id     INTEGER NOT NULL,  -- no REFERENCES: see 0002_history.sql
    machine_id     TEXT    NOT NULL,
    ts             INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    labels         BLOB    NOT NULL,
    PRIMARY KEY (dataset_id, ts, machine_id)
) WITHOUT ROWID;
INSERT INTO record_labels_by_time (dataset_id, machine_id, ts, seq, schema_version, labels)
    SELECT dataset_id, machine_id, ts, seq, schema_version, labels FROM record_labels;
DROP TABLE record_labels;
ALTER TABLE record_labels_by_time RENAME TO record_labels;
