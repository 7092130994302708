-- The registry: MLflow's data model (so the MLflow REST API is served from these same tables),
-- plus refit's content-addressed artifacts, API tokens and audit log.
-- Times are milliseconds since the Unix epoch. Booleans are 0/1 integers.
-- migrations/sqlite/0001_registry.sql is the same schema in SQLite's types; keep them in step.

CREATE TABLE experiments (
    experiment_id     BIGSERIAL PRIMARY KEY,
    name              TEXT    NOT NULL UNIQUE,
    artifact_location TEXT,
    lifecycle_stage   TEXT    NOT NULL DEFAULT 'active',
    creation_time     BIGINT NOT NULL,
    last_update_time  BIGINT NOT NULL
);
INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
VALUES (0, 'Default', NULL, 'active', CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT), CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT));

CREATE TABLE experiment_tags (
    experiment_id BIGINT NOT NULL REFERENCES experiments (experiment_id) ON DELETE CASCADE,
    key           TEXT    NOT NULL,
    value         TEXT    NOT NULL,
    PRIMARY KEY (experiment_id, key)
);

-- Runs are known outside by run_uuid; params, tags and metrics refer to the integer id, which keeps
-- their keys short: smaller pages to write per logged batch, faster probes per searched run.
CREATE TABLE runs (
    id              BIGSERIAL PRIMARY KEY,
    run_uuid        TEXT    NOT NULL UNIQUE,
    experiment_id   BIGINT NOT NULL REFERENCES experiments (experiment_id),
    name            TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    start_time      BIGINT NOT NULL,
    end_time        BIGINT,
    deleted_time    BIGINT,
    lifecycle_stage TEXT    NOT NULL DEFAULT 'active',
    artifact_uri    TEXT    NOT NULL
);
CREATE INDEX runs_by_experiment ON runs (experiment_id, lifecycle_stage, start_time);

CREATE TABLE params (
    run_id   BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);

CREATE TABLE tags (
    run_id   BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);

-- Full metric history. Logging the very same point twice is a no-op, as in MLflow.
-- NaN is stored as value 0 with is_nan = 1 (kept the same as on SQLite, which turns a NaN REAL into NULL).
CREATE TABLE metrics (
    run_id   BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key       TEXT    NOT NULL,
    step      BIGINT NOT NULL,
    timestamp BIGINT NOT NULL,
    value     DOUBLE PRECISION    NOT NULL,
    is_nan    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, key, step, timestamp, value, is_nan)
);

-- The latest point per (run, key), by (step, timestamp, value): what search filters and orders on.
-- Searches probe this table, params and tags by primary key, run by run. There is deliberately no
-- (key, value) index: with stale statistics (a table that just grew from empty) PostgreSQL would
-- pick it for every probe and turn a 50 ms search into seconds.
CREATE TABLE latest_metrics (
    run_id   BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key       TEXT    NOT NULL,
    step      BIGINT NOT NULL,
    timestamp BIGINT NOT NULL,
    value     DOUBLE PRECISION    NOT NULL,
    is_nan    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, key)
);

-- Every inserted point may be the new latest one; keeping latest_metrics in step here, rather than
-- in the store's code, holds for every writer and saves a statement per logging call. One
-- statement-level upsert per insert: the newest new point per (run, key) against the stored one.
CREATE FUNCTION metrics_keep_latest() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO latest_metrics (run_id, key, step, timestamp, value, is_nan)
    SELECT DISTINCT ON (run_id, key) run_id, key, step, timestamp, value, is_nan
    FROM inserted
    ORDER BY run_id, key, step DESC, timestamp DESC, value DESC
    ON CONFLICT (run_id, key) DO UPDATE
        SET step = excluded.step, timestamp = excluded.timestamp, value = excluded.value,
            is_nan = excluded.is_nan
        WHERE (excluded.step, excluded.timestamp, excluded.value)
            > (latest_metrics.step, latest_metrics.timestamp, latest_metrics.value);
    RETURN NULL;
END;
$$;

CREATE TRIGGER metrics_keep_latest AFTER INSERT ON metrics
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION metrics_keep_latest();

-- Datasets known to an experiment as MLflow describes them (name, digest, source), and the edges
-- that make them a run's inputs (MLflow's shape). refit's own machine-data datasets are elsewhere.
CREATE TABLE input_datasets (
    dataset_uuid  TEXT    PRIMARY KEY,
    experiment_id BIGINT NOT NULL REFERENCES experiments (experiment_id),
    name          TEXT    NOT NULL,
    digest        TEXT    NOT NULL,
    source_type   TEXT    NOT NULL,
    source        TEXT    NOT NULL,
    schema        TEXT,
    profile       TEXT,
    UNIQUE (experiment_id, name, digest)
);

CREATE TABLE inputs (
    input_uuid       TEXT PRIMARY KEY,
    source_type      TEXT NOT NULL,
    source_id        TEXT NOT NULL,
    destination_type TEXT NOT NULL,
    destination_id   TEXT NOT NULL,
    step             BIGINT NOT NULL DEFAULT 0,
    UNIQUE (source_type, source_id, destination_type, destination_id)
);
CREATE INDEX inputs_by_destination ON inputs (destination_type, destination_id);

CREATE TABLE input_tags (
    input_uuid TEXT NOT NULL REFERENCES inputs (input_uuid) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (input_uuid, name)
);

-- MLflow 3 logged models.
CREATE TABLE logged_models (
    model_id          TEXT    PRIMARY KEY,
    experiment_id     BIGINT NOT NULL REFERENCES experiments (experiment_id),
    name              TEXT    NOT NULL,
    artifact_location TEXT    NOT NULL,
    creation_time     BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL,
    status            TEXT    NOT NULL,
    lifecycle_stage   TEXT    NOT NULL DEFAULT 'active',
    model_type        TEXT,
    source_run_id     TEXT,
    status_message    TEXT
);
CREATE INDEX logged_models_by_experiment ON logged_models (experiment_id, creation_time);

CREATE TABLE logged_model_params (
    model_id TEXT NOT NULL REFERENCES logged_models (model_id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);

CREATE TABLE logged_model_tags (
    model_id TEXT NOT NULL REFERENCES logged_models (model_id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);

CREATE TABLE logged_model_metrics (
    model_id       TEXT    NOT NULL REFERENCES logged_models (model_id) ON DELETE CASCADE,
    key            TEXT    NOT NULL,
    value          DOUBLE PRECISION    NOT NULL,
    timestamp      BIGINT NOT NULL,
    step           BIGINT NOT NULL,
    run_id         TEXT    NOT NULL,
    dataset_name   TEXT,
    dataset_digest TEXT,
    PRIMARY KEY (model_id, key, step, timestamp, run_id)
);

CREATE TABLE registered_models (
    name              TEXT    PRIMARY KEY,
    creation_time     BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL,
    description       TEXT,
    -- Version numbers are never reused, even after a version is deleted: the promotion ledger and
    -- scores refer to them.
    next_version      BIGINT NOT NULL DEFAULT 1
);

CREATE TABLE registered_model_tags (
    name  TEXT NOT NULL REFERENCES registered_models (name) ON UPDATE CASCADE ON DELETE CASCADE,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, key)
);

CREATE TABLE model_versions (
    name              TEXT    NOT NULL REFERENCES registered_models (name) ON UPDATE CASCADE ON DELETE CASCADE,
    version           BIGINT NOT NULL,
    creation_time     BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL,
    description       TEXT,
    user_id           TEXT,
    current_stage     TEXT    NOT NULL DEFAULT 'None',
    source            TEXT    NOT NULL,
    run_id            TEXT,
    run_link          TEXT,
    status            TEXT    NOT NULL DEFAULT 'READY',
    status_message    TEXT,
    storage_location  TEXT,
    PRIMARY KEY (name, version)
);
CREATE INDEX model_versions_by_run ON model_versions (run_id);

CREATE TABLE model_version_tags (
    name    TEXT    NOT NULL,
    version BIGINT NOT NULL,
    key     TEXT    NOT NULL,
    value   TEXT    NOT NULL,
    PRIMARY KEY (name, version, key),
    FOREIGN KEY (name, version) REFERENCES model_versions (name, version) ON UPDATE CASCADE ON DELETE CASCADE
);

-- One version per alias per model.
CREATE TABLE registered_model_aliases (
    name    TEXT    NOT NULL,
    alias   TEXT    NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES model_versions (name, version) ON UPDATE CASCADE ON DELETE CASCADE
);

-- Content-addressed artifact bytes, in chunks so that any size streams in bounded memory.
-- Each chunk carries its own sha256 so a read can refuse a corrupt chunk before sending it.
CREATE TABLE blobs (
    sha256      TEXT    PRIMARY KEY,
    size        BIGINT NOT NULL,
    chunk_count BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE blob_chunks (
    sha256       TEXT    NOT NULL REFERENCES blobs (sha256) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    chunk_sha256 TEXT    NOT NULL,
    data         BYTEA    NOT NULL,
    PRIMARY KEY (sha256, seq)
);

-- Artifact paths (relative to the artifact root, e.g. '1/<run>/artifacts/model/model.pkl') to blobs.
CREATE TABLE artifacts (
    path       TEXT    COLLATE "C" PRIMARY KEY, -- byte order, so prefix ranges work as on SQLite
    sha256     TEXT    NOT NULL REFERENCES blobs (sha256),
    size       BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    role       TEXT    NOT NULL,
    token_hash TEXT    NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    created_by TEXT    NOT NULL,
    revoked_at BIGINT
);

-- Append-only record of every state-changing call.
CREATE TABLE audit_log (
    id     BIGSERIAL PRIMARY KEY,
    at     BIGINT NOT NULL,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    target TEXT    NOT NULL,
    detail TEXT
);
CREATE INDEX audit_log_by_target ON audit_log (target);
