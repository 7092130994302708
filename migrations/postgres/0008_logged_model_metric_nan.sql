-- Metrics of MLflow 3 logged models keep NaN as the run metrics do: value 0 with is_nan = 1
-- (kept the same as on SQLite, which turns a NaN REAL into NULL).
ALTER TABLE logged_model_metrics ADD COLUMN is_nan BIGINT NOT NULL DEFAULT 0;
