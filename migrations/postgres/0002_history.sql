-- Machine-data history: datasets with versioned schemas, their records (idempotent on
-- (dataset, machine_id, ts): first write wins), late labels, rejected records, and snapshots.
-- migrations/sqlite/0002_history.sql is the same schema in SQLite's types.

CREATE TABLE datasets (
    id             BIGSERIAL PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    created_at     BIGINT NOT NULL,
    schema_version BIGINT NOT NULL,
    retention_days BIGINT,
    -- Every accepted record and label gets the next sequence number, so a snapshot can name the
    -- exact rows it saw even when late readings with old timestamps arrive afterwards.
    next_seq       BIGINT NOT NULL DEFAULT 1
);

CREATE TABLE dataset_schemas (
    dataset_id BIGINT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    version    BIGINT NOT NULL,
    definition TEXT    NOT NULL,  -- JSON: {"features": [...], "labels": [...]}
    created_at BIGINT NOT NULL,
    PRIMARY KEY (dataset_id, version)
);

-- The two hot tables carry no foreign key to datasets: a per-row check costs a third of
-- PostgreSQL's ingest throughput, datasets are never deleted, and every insert takes its
-- dataset_id from the datasets row it has just locked (to reserve sequence numbers).
--
-- One reading per machine and time. machine_id compares bytewise ("C"), as on SQLite, so the
-- (machine_id, ts) order a snapshot digest is computed in is the same on both databases. `features` is the canonical encoding of the feature values in
-- the order of the row's schema version (see registry/src/datasets/record.rs).
CREATE TABLE records (
    dataset_id     BIGINT NOT NULL,  -- no REFERENCES: see the note above
    machine_id     TEXT    COLLATE "C" NOT NULL,
    ts             BIGINT NOT NULL,
    seq            BIGINT NOT NULL,
    schema_version BIGINT NOT NULL,
    features       BYTEA    NOT NULL,
    PRIMARY KEY (dataset_id, machine_id, ts)
);

-- Labels, which may arrive after their reading; first write wins.
CREATE TABLE record_labels (
    dataset_id     BIGINT NOT NULL,  -- no REFERENCES: see records
    machine_id     TEXT    COLLATE "C" NOT NULL,
    ts             BIGINT NOT NULL,
    seq            BIGINT NOT NULL,
    schema_version BIGINT NOT NULL,
    labels         BYTEA    NOT NULL,
    PRIMARY KEY (dataset_id, machine_id, ts)
);

-- Records and labels that failed validation, with the reason; nothing is dropped silently.
CREATE TABLE dead_letters (
    id           BIGSERIAL PRIMARY KEY,
    dataset_id   BIGINT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    received_at  BIGINT NOT NULL,
    source       TEXT    NOT NULL,
    record_index BIGINT NOT NULL,
    field        TEXT,
    reason       TEXT    NOT NULL,
    raw          TEXT    NOT NULL
);
CREATE INDEX dead_letters_by_dataset ON dead_letters (dataset_id, id);

-- A snapshot names exact content: the rows of one schema version in [ts_from, ts_to) with
-- seq <= max_seq (labels: label seq <= max_seq), optionally only some machines; its digest is
-- sha256 over the canonical encoding of every row in (machine_id, ts) order.
CREATE TABLE snapshots (
    id             BIGSERIAL PRIMARY KEY,
    dataset_id     BIGINT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    schema_version BIGINT NOT NULL,
    ts_from        BIGINT NOT NULL,
    ts_to          BIGINT NOT NULL,
    machines       TEXT,              -- JSON array, or NULL for every machine
    max_seq        BIGINT NOT NULL,
    row_count      BIGINT NOT NULL,
    digest         TEXT    NOT NULL,
    created_at     BIGINT NOT NULL,
    created_by     TEXT    NOT NULL,
    -- A kept snapshot's rows are never removed by retention (unless forced).
    kept           BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX snapshots_by_dataset ON snapshots (dataset_id, id);
