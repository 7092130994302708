-- The score log's record index keyed time first, as the history's own key is (see
-- 0004_history_time_first.sql): a fleet's batch of readings spans many machines at a few
-- adjacent times, so keyed machine first each batch's scores landed on a leaf page per machine
-- scattered through the index, where keyed time first they land on a few pages at its end.
-- Lookups by (machine_id, ts) use it as well, both being given.
DROP INDEX scores_by_record;
CREATE INDEX scores_by_record ON scores (dataset_id, ts, machine_id);
