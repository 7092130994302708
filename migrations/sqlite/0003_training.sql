-- Training specs, training jobs (with leases, so exactly one process runs a spec at a time), the
-- append-only promotion ledger, and model pins.
-- migrations/postgres/0003_training.sql is the same schema in PostgreSQL's types.

CREATE TABLE training_specs (
    id               INTEGER PRIMARY KEY,
    name             TEXT    NOT NULL UNIQUE,
    dataset          TEXT    NOT NULL,
    model_name       TEXT    NOT NULL,
    definition       TEXT    NOT NULL,  -- JSON, validated by the trainer
    schedule         TEXT,              -- 6-field cron (UTC), or NULL
    enabled          INTEGER NOT NULL DEFAULT 1,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    created_by       TEXT    NOT NULL,
    -- The dataset's sequence number when this spec last trained: the data-volume trigger counts
    -- rows stored since.
    last_trained_seq INTEGER NOT NULL DEFAULT 0,
    -- The last schedule occurrence some process started, so that of several processes firing
    -- the same cron tick exactly one queues the job.
    last_scheduled_at INTEGER
);

CREATE TABLE training_jobs (
    id               INTEGER PRIMARY KEY,
    spec_id          INTEGER NOT NULL REFERENCES training_specs (id) ON DELETE CASCADE,
    trigger          TEXT    NOT NULL,  -- manual, cron, data_volume, drift
    trigger_detail   TEXT,
    status           TEXT    NOT NULL,  -- queued, running, succeeded, failed
    stage            TEXT,
    progress_done    INTEGER NOT NULL DEFAULT 0,
    progress_total   INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    created_by       TEXT    NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    owner            TEXT,
    run_id           TEXT,              -- the job's parent run, once created
    error            TEXT,
    result           TEXT               -- JSON summary
);
CREATE INDEX training_jobs_by_spec ON training_jobs (spec_id, id);
CREATE INDEX training_jobs_by_status ON training_jobs (status, id);

-- Who runs a spec now. A holder renews its lease while it trains; a crashed holder's lease
-- expires and another process may take the spec.
CREATE TABLE spec_leases (
    spec_id    INTEGER PRIMARY KEY REFERENCES training_specs (id) ON DELETE CASCADE,
    owner      TEXT    NOT NULL,
    job_id     INTEGER,
    expires_at INTEGER NOT NULL
);

-- Every promotion decision, in order. Append-only: triggers refuse updates and deletes.
CREATE TABLE promotion_ledger (
    id                INTEGER PRIMARY KEY,
    at                INTEGER NOT NULL,
    model_name        TEXT    NOT NULL,
    decision          TEXT    NOT NULL,  -- promoted, rejected, pending_approval, approved,
                                         -- rejected_by_operator, rolled_back
    trigger           TEXT    NOT NULL,
    actor             TEXT    NOT NULL,
    spec_id           INTEGER,
    job_id            INTEGER,
    candidate_version INTEGER,
    champion_version  INTEGER,
    candidate_metrics TEXT,              -- JSON: metric -> value, on the holdout
    champion_metrics  TEXT,              -- JSON, the champion on the same holdout
    checks            TEXT,              -- JSON: [{check, passed, detail}]
    reason            TEXT,
    cause             TEXT,              -- JSON: what started it (e.g. a drift report)
    resolves          INTEGER            -- for approved / rejected_by_operator: the pending entry
);
CREATE INDEX promotion_ledger_by_model ON promotion_ledger (model_name, id);

CREATE TRIGGER promotion_ledger_no_update BEFORE UPDATE ON promotion_ledger
BEGIN
    SELECT RAISE(ABORT, 'the promotion ledger is append-only');
END;

CREATE TRIGGER promotion_ledger_no_delete BEFORE DELETE ON promotion_ledger
BEGIN
    SELECT RAISE(ABORT, 'the promotion ledger is append-only');
END;

-- A pinned model's champion is not moved by automatic promotion.
CREATE TABLE model_pins (
    model_name TEXT    PRIMARY KEY,
    pinned_by  TEXT    NOT NULL,
    pinned_at  INTEGER NOT NULL,
    reason     TEXT
);
