-- Training specs, training jobs (with leases, so exactly one process runs a spec at a time), the
-- append-only promotion ledger, and model pins.
-- migrations/sqlite/0003_training.sql is the same schema in SQLite's types.

CREATE TABLE training_specs (
    id               BIGSERIAL PRIMARY KEY,
    name             TEXT    NOT NULL UNIQUE,
    dataset          TEXT    NOT NULL,
    model_name       TEXT    NOT NULL,
    definition       TEXT    NOT NULL,  -- JSON, validated by the trainer
    schedule         TEXT,              -- 6-field cron (UTC), or NULL
    enabled          BIGINT NOT NULL DEFAULT 1,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    created_by       TEXT    NOT NULL,
    -- The dataset's sequence number when this spec last trained: the data-volume trigger counts
    -- rows stored since.
    last_trained_seq BIGINT NOT NULL DEFAULT 0,
    -- The last schedule occurrence some process started, so that of several processes firing
    -- the same cron tick exactly one queues the job.
    last_scheduled_at BIGINT
);

CREATE TABLE training_jobs (
    id               BIGSERIAL PRIMARY KEY,
    spec_id          BIGINT NOT NULL REFERENCES training_specs (id) ON DELETE CASCADE,
    trigger          TEXT    NOT NULL,  -- manual, cron, data_volume, drift
    trigger_detail   TEXT,
    status           TEXT    NOT NULL,  -- queued, running, succeeded, failed
    stage            TEXT,
    progress_done    BIGINT NOT NULL DEFAULT 0,
    progress_total   BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    created_by       TEXT    NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
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
    spec_id    BIGINT PRIMARY KEY REFERENCES training_specs (id) ON DELETE CASCADE,
    owner      TEXT    NOT NULL,
    job_id     BIGINT,
    expires_at BIGINT NOT NULL
);

-- Every promotion decision, in order. Append-only: triggers refuse updates and deletes.
CREATE TABLE promotion_ledger (
    id                BIGSERIAL PRIMARY KEY,
    at                BIGINT NOT NULL,
    model_name        TEXT    NOT NULL,
    decision          TEXT    NOT NULL,  -- promoted, rejected, pending_approval, approved,
                                         -- rejected_by_operator, rolled_back
    trigger           TEXT    NOT NULL,
    actor             TEXT    NOT NULL,
    spec_id           BIGINT,
    job_id            BIGINT,
    candidate_version BIGINT,
    champion_version  BIGINT,
    candidate_metrics TEXT,              -- JSON: metric -> value, on the holdout
    champion_metrics  TEXT,              -- JSON, the champion on the same holdout
    checks            TEXT,              -- JSON: [{check, passed, detail}]
    reason            TEXT,
    cause             TEXT,              -- JSON: what started it (e.g. a drift report)
    resolves          BIGINT            -- for approved / rejected_by_operator: the pending entry
);
CREATE INDEX promotion_ledger_by_model ON promotion_ledger (model_name, id);

CREATE FUNCTION promotion_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the promotion ledger is append-only';
END;
$$;

CREATE TRIGGER promotion_ledger_append_only BEFORE UPDATE OR DELETE ON promotion_ledger
    FOR EACH ROW EXECUTE FUNCTION promotion_ledger_append_only();

-- A pinned model's champion is not moved by automatic promotion.
CREATE TABLE model_pins (
    model_name TEXT    PRIMARY KEY,
    pinned_by  TEXT    NOT NULL,
    pinned_at  BIGINT NOT NULL,
    reason     TEXT
);
