-- The history is keyed by time first: (dataset_id, ts, machine_id) instead of
-- (dataset_id, machine_id, ts). A fleet's readings arrive in time order across machines, so a
-- batch now lands on a few adjacent pages at the right edge of the key instead of one page per
-- machine; training windows, snapshots and retention all select by time. Snapshot digests are
-- computed in this order (ts, then machine_id bytewise: the column's "C" collation), see
-- registry/src/datasets/snapshots.rs.
ALTER TABLE records DROP CONSTRAINT records_pkey,
    ADD CONSTRAINT records_pkey PRIMARY KEY (dataset_id, ts, machine_id);
ALTER TABLE record_labels DROP CONSTRAINT record_labels_pkey,
    ADD CONSTRAINT record_labels_pkey PRIMARY KEY (dataset_id, ts, machine_id);
