-- The score log: every score the stream scorer stored, per dataset in one increasing position
-- (the offset a subscriber resumes from with Last-Event-ID). A record's scores are written in the
-- same transaction as the record itself, so a stored record has its scores and a duplicate never
-- gets a second one. Challenger (shadow) scores share the log with role 'challenger'.
CREATE TABLE scores (
    dataset_id    INTEGER NOT NULL,  -- no REFERENCES: like records (see 0002_history.sql)
    position      INTEGER NOT NULL,
    machine_id    TEXT    NOT NULL,
    ts            INTEGER NOT NULL,
    model         TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    role          TEXT    NOT NULL,  -- 'champion' or 'challenger'
    prediction    TEXT    NOT NULL,  -- JSON: the number (regression) or the class label
    probabilities TEXT,              -- JSON object {class label: probability}, classifiers only
    received_at   INTEGER NOT NULL,
    PRIMARY KEY (dataset_id, position)
) WITHOUT ROWID;

-- "Which model scored this record?"
CREATE INDEX scores_by_record ON scores (dataset_id, machine_id, ts);

-- The next position of each dataset's score log, reserved under the dataset's row lock.
ALTER TABLE datasets ADD COLUMN next_score_position INTEGER NOT NULL DEFAULT 1;
