-- Drift: the reports the drift monitor writes per window of live records (and on-demand checks
-- that were asked to be kept), one row per judged column for "a feature over time", and each
-- dataset's window settings.
-- migrations/postgres/0006_drift.sql is the same schema in PostgreSQL's types.

CREATE TABLE drift_reports (
    id              INTEGER PRIMARY KEY,
    created_at      INTEGER NOT NULL,
    dataset         TEXT    NOT NULL,
    model_name      TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    source          TEXT    NOT NULL,  -- 'stream' (a monitor's window) or 'check' (on demand)
    window_start    INTEGER NOT NULL,  -- event time of the window's first row, ms
    window_end      INTEGER NOT NULL,  -- event time of its last row, ms (inclusive)
    row_count       INTEGER NOT NULL,
    column_count    INTEGER NOT NULL,  -- input features judged
    drifted_columns INTEGER NOT NULL,
    share           REAL    NOT NULL,
    drift_share     REAL    NOT NULL,  -- the threshold the share was compared with
    dataset_drift   INTEGER NOT NULL,
    features        TEXT    NOT NULL,  -- JSON: [{feature, kind, test, value, threshold, drifted, note}]
    prediction      TEXT,              -- JSON: the prediction column's verdict, same shape
    machines        TEXT    NOT NULL   -- JSON: [{machine_id, rows, columns, drifted_columns, share, drifted_features}]
);
CREATE INDEX drift_reports_by_model ON drift_reports (model_name, id);
CREATE INDEX drift_reports_by_dataset ON drift_reports (dataset, id);

-- One row per judged column of a report (features and the prediction), for a column over time.
CREATE TABLE drift_columns (
    report_id  INTEGER NOT NULL REFERENCES drift_reports (id) ON DELETE CASCADE,
    feature    TEXT    NOT NULL,
    model_name TEXT    NOT NULL,
    test       TEXT,
    value      REAL,
    threshold  REAL,
    drifted    INTEGER NOT NULL,
    PRIMARY KEY (report_id, feature)
);
CREATE INDEX drift_columns_by_feature ON drift_columns (feature, model_name, report_id);

-- How a dataset's live records are cut into drift windows: by count or by event time.
CREATE TABLE drift_settings (
    dataset_id       INTEGER PRIMARY KEY REFERENCES datasets (id) ON DELETE CASCADE,
    window_rows      INTEGER,           -- close a window every N rows, or
    window_ms        INTEGER,           -- every span of event time (epoch-aligned)
    drift_share      REAL    NOT NULL,
    min_machine_rows INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    updated_by       TEXT    NOT NULL
);
