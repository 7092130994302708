-- Realized metrics: once labels arrive for records the stream scored, the champion's metrics on
-- them, per window of labelled scores, beside the drift reports.
CREATE TABLE realized_metrics (
    id           BIGSERIAL PRIMARY KEY,
    created_at   BIGINT NOT NULL,
    dataset      TEXT   NOT NULL,
    model_name   TEXT   NOT NULL,
    version      BIGINT NOT NULL,
    window_start BIGINT NOT NULL,  -- event time of the window's earliest labelled record, ms
    window_end   BIGINT NOT NULL,  -- event time of its latest, ms (inclusive)
    row_count    BIGINT NOT NULL,
    metrics      TEXT   NOT NULL   -- JSON: {metric: value}, as the trainer computes them
);
CREATE INDEX realized_metrics_by_model ON realized_metrics (model_name, id);
