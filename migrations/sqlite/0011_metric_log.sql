-- New metric points are appended to a log and moved into `metrics` in bulk, once the log holds
-- 10,000 of them, by the write that takes it there. `metrics` is keyed by run, key and step, so a
-- batch of many keys at one step (a training loop's usual logging) wrote a leaf page of it per key
-- and the commit had to write them all; appended to the log, the same batch fills a page or two,
-- and a move writes each leaf once for many batches. A metric's history is read from both tables.
CREATE TABLE metric_log (
    id        INTEGER PRIMARY KEY,
    run_id    INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key       TEXT    NOT NULL,
    step      INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    value     REAL    NOT NULL,
    is_nan    INTEGER NOT NULL DEFAULT 0
);

-- latest_metrics is kept in step as points arrive, now in the log.
DROP TRIGGER metrics_keep_latest;
CREATE TRIGGER metric_log_keep_latest AFTER INSERT ON metric_log
BEGIN
    INSERT INTO latest_metrics (run_id, key, step, timestamp, value, is_nan)
    VALUES (NEW.run_id, NEW.key, NEW.step, NEW.timestamp, NEW.value, NEW.is_nan)
    ON CONFLICT (run_id, key) DO UPDATE
        SET step = excluded.step, timestamp = excluded.timestamp, value = excluded.value,
            is_nan = excluded.is_nan
        WHERE (excluded.step, excluded.timestamp, excluded.value)
            > (latest_metrics.step, latest_metrics.timestamp, latest_metrics.value);
END;
