-- Metrics of MLflow 3 logged models keep NaN as the run metrics do: value 0 with is_nan = 1
-- (SQLite turns a NaN REAL into NULL, which the NOT NULL value column refuses).
-- migrations/postgres/0008_logged_model_metric_nan.sql is the same change in PostgreSQL's types.
ALTER TABLE logged_model_metrics ADD COLUMN is_nan INTEGER NOT NULL DEFAULT 0;
