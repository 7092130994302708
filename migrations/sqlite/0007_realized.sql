-- Realized metrics: once labels arrive for records the stream scored, the champion's metrics on
-- them, per window of labelled scores, beside the drift reports.
-- migrations/postgres/0007_realized.sql is the same schema in PostgreSQL's types.
CREATE TABLE realized_metrics (
    id           INTEGER PRIMARY KEY,
    created_at   INTEGER NOT NULL,
    dataset      TEXT    NOT NULL,
    model_name   TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    window_start INTEGER NOT NULL,  -- event time of the window's earliest labelled record, ms
    window_end   INTEGER NOT NULL,  -- event time of its latest, ms (inclusive)
    row_count    INTEGER NOT NULL,
    metrics      TEXT    NOT NULL   -- JSON: {metric: value}, as the trainer computes them
);
CREATE INDEX realized_metrics_by_model ON realized_metrics (model_name, id);
