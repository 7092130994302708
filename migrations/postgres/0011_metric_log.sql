-- New metric points are appended to a log and moved into `metrics` in bulk, once the log holds
-- 10,000 of them, by the write that takes it there. `metrics` is keyed by run, key and step, so a
-- batch of many keys at one step (a training loop's usual logging) wrote an index leaf per key;
-- appended to the log, the same batch fills a page or two, and a move writes each leaf once for
-- many batches. A metric's history is read from both tables.
CREATE TABLE metric_log (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id    BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key       TEXT    NOT NULL,
    step      BIGINT NOT NULL,
    timestamp BIGINT NOT NULL,
    value     DOUBLE PRECISION NOT NULL,
    is_nan    BIGINT NOT NULL DEFAULT 0
);

-- latest_metrics is kept in step as points arrive, now in the log (the same statement-level
-- function, over the log's new rows).
DROP TRIGGER metrics_keep_latest ON metrics;
CREATE TRIGGER metric_log_keep_latest AFTER INSERT ON metric_log
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION metrics_keep_latest();
