-- Machine-data history: datasets with versioned schemas, their records (idempotent on
-- (dataset, machine_id, ts): first write wins), late labels, rejected records, and snapshots.
-- migrations/postgres/0002_history.sql is the same schema in PostgreSQL's types.

CREATE TABLE datasets (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    created_at     INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    retention_days INTEGER,
    -- Every accepted record and label gets the next sequence number, so a snapshot can name the
    -- exact rows it saw even when late readings with old timestamps arrive afterwards.
    next_seq       INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE dataset_schemas (
    dataset_id INTEGER NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    definition TEXT    NOT NULL,  -- JSON: {"features": [...], "labels": [...]}
    created_at INTEGER NOT NULL,
    PRIMARY KEY (dataset_id, version)
) WITHOUT ROWID;

-- The two hot tables carry no foreign key to datasets: a per-row check costs a third of
-- PostgreSQL's ingest throughput, datasets are never deleted, and every insert takes its
-- dataset_id from the datasets row it has just locked (to reserve sequence numbers).
--
-- One reading per machine and time. `features` is the canonical encoding of the feature values in
-- the order of the row's schema version (see registry/src/datasets/record.rs).
CREATE TABLE records (
    dataset_id     INTEGER NOT NULL,  -- no REFERENCES: see the note above
    machine_id     TEXT    NOT NULL,
    ts             INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    features       BLOB    NOT NULL,
    PRIMARY KEY (dataset_id, machine_id, ts)
) WITHOUT ROWID;

-- Labels, which may arrive after their reading; first write wins.
CREATE TABLE record_labels (
    dataset_id     INTEGER NOT NULL,  -- no REFERENCES: see records
    machine_id     TEXT    NOT NULL,
    ts             INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    labels         BLOB    NOT NULL,
    PRIMARY KEY (dataset_id, machine_id, ts)
) WITHOUT ROWID;

-- Records and labels that failed validation, with the reason; nothing is dropped silently.
CREATE TABLE dead_letters (
    id           INTEGER PRIMARY KEY,
    dataset_id   INTEGER NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    received_at  INTEGER NOT NULL,
    source       TEXT    NOT NULL,
    record_index INTEGER NOT NULL,
    field        TEXT,
    reason       TEXT    NOT NULL,
    raw          TEXT    NOT NULL
);
CREATE INDEX dead_letters_by_dataset ON dead_letters (dataset_id, id);

-- A snapshot names exact content: the rows of one schema version in [ts_from, ts_to) with
-- seq <= max_seq (labels: label seq <= max_seq), optionally only some machines; its digest is
-- sha256 over the canonical encoding of every row in (machine_id, ts) order.
CREATE TABLE snapshots (
    id             INTEGER PRIMARY KEY,
    dataset_id     INTEGER NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    schema_version INTEGER NOT NULL,
    ts_from        INTEGER NOT NULL,
    ts_to          INTEGER NOT NULL,
    machines       TEXT,              -- JSON array, or NULL for every machine
    max_seq        INTEGER NOT NULL,
    row_count      INTEGER NOT NULL,
    digest         TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    created_by     TEXT    NOT NULL,
    -- A kept snapshot's rows are never removed by retention (unless forced).
    kept           INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX snapshots_by_dataset ON snapshots (dataset_id, id);
