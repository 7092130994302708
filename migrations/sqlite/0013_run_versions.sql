-- A run's version moves on every write to what MLflow's answer for the run shows: its row, params,
-- tags, latest metrics, dataset inputs and their tags, and its links to logged models. A search
-- keeps each run's rendered answer with the version it was rendered at (see `RenderedRuns`) and
-- renders a run again only when its version has moved. Triggers, not the code's write paths, move
-- it, so that no write can be missed (also the CLI's, or a future path's); metric points, below,
-- are the one exception. PostgreSQL's searches render every run afresh, so it has no such column.
ALTER TABLE runs ADD COLUMN data_version INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER runs_version_row AFTER UPDATE OF
    run_uuid, experiment_id, name, user_id, status, start_time, end_time, deleted_time,
    lifecycle_stage, artifact_uri ON runs
BEGIN
    UPDATE runs SET data_version = data_version + 1 WHERE id = NEW.id;
END;

CREATE TRIGGER runs_version_param_insert AFTER INSERT ON params
BEGIN
    UPDATE runs SET data_version = data_version + 1 WHERE id = NEW.run_id;
END;
CREATE TRIGGER runs_version_param_update AFTER UPDATE ON params
BEGIN
    UPDATE runs SET data_version = data_version + 1 WHERE id IN (OLD.run_id, NEW.run_id);
END;
CREATE TRIGGER runs_version_param_delete AFTER DELETE ON params
BEGIN
    UPDATE runs SET data_version = data_version + 1 WHERE id = OLD.run_id;
END;

CREATE TRIGGER runs_version_tag_insert AFTER INSERT ON tags
BEGIN
    UPDATE runs SET data_version = data_version + 1 WHERE id = NEW.run_id;
END;
CREATE TRIGGER runs_version_tag_update AFTER UPDATE ON tags
BEGIN
    UPDATE runs SET data_version = data_version + 1 WHERE id IN (OLD.run_id, NEW.run_id);
END;
CREATE TRIGGER runs_version_tag_delete AFTER DELETE ON tags
BEGIN
    UPDATE runs SET data_version = data_version + 1 WHERE id = OLD.run_id;
END;

-- Latest metrics: not here. A trigger on latest_metrics would move the version once per point,
-- which made a batch of 100 points cost about a third more; the one statement that writes metric
-- points (`insert_metrics` in runs.rs) is followed by one move of the version per batch instead.

-- Dataset inputs name the run as their destination; links to logged models as their source.
CREATE TRIGGER runs_version_input_insert AFTER INSERT ON inputs
BEGIN
    UPDATE runs SET data_version = data_version + 1
    WHERE run_uuid IN (NEW.source_id, NEW.destination_id);
END;
CREATE TRIGGER runs_version_input_update AFTER UPDATE ON inputs
BEGIN
    UPDATE runs SET data_version = data_version + 1
    WHERE run_uuid IN (OLD.source_id, OLD.destination_id, NEW.source_id, NEW.destination_id);
END;
CREATE TRIGGER runs_version_input_delete AFTER DELETE ON inputs
BEGIN
    UPDATE runs SET data_version = data_version + 1
    WHERE run_uuid IN (OLD.source_id, OLD.destination_id);
END;

CREATE TRIGGER runs_version_input_tag_insert AFTER INSERT ON input_tags
BEGIN
    UPDATE runs SET data_version = data_version + 1
    WHERE run_uuid = (SELECT destination_id FROM inputs WHERE input_uuid = NEW.input_uuid);
END;
CREATE TRIGGER runs_version_input_tag_update AFTER UPDATE ON input_tags
BEGIN
    UPDATE runs SET data_version = data_version + 1
    WHERE run_uuid IN (SELECT destination_id FROM inputs
                       WHERE input_uuid IN (OLD.input_uuid, NEW.input_uuid));
END;
CREATE TRIGGER runs_version_input_tag_delete AFTER DELETE ON input_tags
BEGIN
    UPDATE runs SET data_version = data_version + 1
    WHERE run_uuid = (SELECT destination_id FROM inputs WHERE input_uuid = OLD.input_uuid);
END;

-- A dataset's row is shown inside every input that uses it.
CREATE TRIGGER runs_version_dataset_update AFTER UPDATE ON input_datasets
BEGIN
    UPDATE runs SET data_version = data_version + 1
    WHERE run_uuid IN (SELECT destination_id FROM inputs
                       WHERE source_type = 'DATASET' AND source_id = NEW.dataset_uuid);
END;
