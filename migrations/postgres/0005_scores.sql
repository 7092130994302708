-- The score log: every score the stream scorer stored, per dataset in one increasing position
-- (the offset a subscriber resumes from with Last-Event-ID). A record's scores are written in the
-- same transaction as the record itself, so a stored record has its scores and a duplicate never
-- gets a second one. Challenger (shadow) scores share the log with role 'challenger'.
CREATE TABLE scores (
    dataset_id    BIGINT  NOT NULL,  -- no REFERENCES: like records (see 0002_history.sql)
    position      BIGINT  NOT NULL,
    machine_id    TEXT    NOT NULL,
    ts            BIGINT  NOT NULL,
    model         TEXT    NOT NULL,
    version       BIGINT  NOT NULL,
    role          TEXT    NOT NULL,  -- 'champion' or 'challenger'
    prediction    TEXT    NOT NULL,  -- JSON: the number (regression) or the class label
    probabilities TEXT,              -- JSON object {class label: probability}, classifiers only
    received_at   BIGINT  NOT NULL,
    PRIMARY KEY (dataset_id, position)
);

-- "Which model scored this record?"
CREATE INDEX scores_by_record ON scores (dataset_id, machine_id, ts);

-- The next position of each dataset's score log, reserved under the dataset's row lock.
ALTER TABLE datasets ADD COLUMN next_score_position BIGINT NOT NULL DEFAULT 1;
