"""Runs: start/end, names, params, metrics (steps, timestamps, history), batches at MLflow's limits,
tags, dataset inputs, get_run, delete/restore."""

import time

import mlflow
import numpy as np
from compat import GENERATED_RUN_NAME, assert_error_response, expect_error, metric_history
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunStatus, RunTag


def test_start_run_generates_a_name_and_end_run_finishes_it(client, experiment_id):
    before = int(time.time() * 1000)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        assert mlflow.active_run().info.run_id == run.info.run_id
        live = client.get_run(run.info.run_id)
        assert live.info.status == "RUNNING"
        assert live.info.end_time in (None, 0)
    after = int(time.time() * 1000)
    assert mlflow.active_run() is None

    got = client.get_run(run.info.run_id)
    assert got.info.run_id == run.info.run_id
    assert len(got.info.run_id) == 32 and int(got.info.run_id, 16) >= 0
    assert got.info.experiment_id == experiment_id
    assert GENERATED_RUN_NAME.match(got.info.run_name), got.info.run_name
    assert got.data.tags["mlflow.runName"] == got.info.run_name
    assert got.info.status == "FINISHED"
    assert got.info.lifecycle_stage == "active"
    assert before - 1000 <= got.info.start_time <= after + 1000
    assert got.info.start_time <= got.info.end_time <= after + 1000
    assert got.info.artifact_uri


def test_generated_names_differ(client, experiment_id):
    names = set()
    for _ in range(3):
        run = client.create_run(experiment_id)
        assert GENERATED_RUN_NAME.match(run.info.run_name), run.info.run_name
        names.add(run.info.run_name)
        client.set_terminated(run.info.run_id)
    assert len(names) >= 2


def test_named_run_statuses_and_rename(client, experiment_id):
    with mlflow.start_run(experiment_id=experiment_id, run_name="rf-depth-8") as run:
        pass
    got = client.get_run(run.info.run_id)
    assert got.info.run_name == "rf-depth-8"
    assert got.data.tags["mlflow.runName"] == "rf-depth-8"

    failed = client.create_run(experiment_id, run_name="will-fail", start_time=1_700_000_000_000)
    assert failed.info.start_time == 1_700_000_000_000
    client.set_terminated(failed.info.run_id, status="FAILED", end_time=1_700_000_005_000)
    got = client.get_run(failed.info.run_id)
    assert got.info.status == "FAILED" and got.info.end_time == 1_700_000_005_000

    mlflow.start_run(experiment_id=experiment_id, run_name="killed")
    killed_id = mlflow.active_run().info.run_id
    mlflow.end_run(status=RunStatus.to_string(RunStatus.KILLED))
    assert client.get_run(killed_id).info.status == "KILLED"

    client.update_run(killed_id, name="renamed-run")
    got = client.get_run(killed_id)
    assert got.info.run_name == "renamed-run"
    assert got.data.tags["mlflow.runName"] == "renamed-run"


def test_log_params(client, experiment_id):
    with mlflow.start_run(experiment_id=experiment_id) as run:
        assert mlflow.log_param("model", "random_forest") == "random_forest"
        mlflow.log_params({"max_depth": 8, "lr": 0.1, "features": "temp,vibration", "none": None})
        mlflow.log_param("model", "random_forest")  # the same value again is fine
    params = client.get_run(run.info.run_id).data.params
    assert params == {
        "model": "random_forest",
        "max_depth": "8",
        "lr": "0.1",
        "features": "temp,vibration",
        "none": "None",
    }
    client.log_param(run.info.run_id, "late", "yes")
    assert client.get_run(run.info.run_id).data.params["late"] == "yes"


def test_log_metrics_with_steps_and_timestamps(client, experiment_id):
    run = client.create_run(experiment_id)
    rid = run.info.run_id
    client.log_metric(rid, "f1", 0.5, timestamp=1_000, step=0)
    client.log_metric(rid, "f1", 0.7, timestamp=3_000, step=2)
    client.log_metric(rid, "f1", 0.6, timestamp=2_000, step=1)  # an older step logged last
    client.log_metric(rid, "loss", -1.25, timestamp=5, step=-3)  # negative step and value
    client.log_metric(rid, "big", 1e300, timestamp=7, step=2**40)
    mlflow.set_experiment(experiment_id=experiment_id)  # resuming checks the active experiment
    with mlflow.start_run(run_id=rid):
        mlflow.log_metrics({"rmse": 12.5, "mae": 9.0}, step=4)
        mlflow.log_metric("rmse", 11.0, step=5)

    assert metric_history(client, rid, "f1") == [(0.5, 0, 1_000), (0.6, 1, 2_000), (0.7, 2, 3_000)]
    assert metric_history(client, rid, "loss") == [(-1.25, -3, 5)]
    assert metric_history(client, rid, "big") == [(1e300, 2**40, 7)]
    rmse = client.get_metric_history(rid, "rmse")
    assert sorted((m.value, m.step) for m in rmse) == [(11.0, 5), (12.5, 4)]
    assert all(m.key == "rmse" and m.timestamp > 1_600_000_000_000 for m in rmse)
    assert client.get_metric_history(rid, "never-logged") == []

    metrics = client.get_run(rid).data.metrics
    # The latest value is the one at the highest step, not the one logged last.
    assert metrics == {"f1": 0.7, "loss": -1.25, "big": 1e300, "rmse": 11.0, "mae": 9.0}


def test_latest_metric_ties_broken_by_timestamp(client, experiment_id):
    rid = client.create_run(experiment_id).info.run_id
    client.log_metric(rid, "m", 3.0, timestamp=2_000, step=1)
    client.log_metric(rid, "m", 2.0, timestamp=1_000, step=1)
    client.log_metric(rid, "m", 1.0, timestamp=500, step=0)
    assert client.get_run(rid).data.metrics["m"] == 3.0
    assert len(client.get_metric_history(rid, "m")) == 3


def test_log_batch(client, experiment_id):
    rid = client.create_run(experiment_id).info.run_id
    client.log_batch(
        rid,
        metrics=[Metric("acc", 0.9, 1_000, 1), Metric("acc", 0.95, 2_000, 2)],
        params=[Param("algo", "gbt"), Param("n", "100")],
        tags=[RunTag("team", "pumps"), RunTag("stage", "dev")],
    )
    got = client.get_run(rid)
    assert got.data.metrics["acc"] == 0.95
    assert got.data.params == {"algo": "gbt", "n": "100"}
    assert got.data.tags["team"] == "pumps" and got.data.tags["stage"] == "dev"
    assert metric_history(client, rid, "acc") == [(0.9, 1, 1_000), (0.95, 2, 2_000)]


def test_log_batch_at_mlflows_limits(client, raw, experiment_id):
    rid = client.create_run(experiment_id).info.run_id
    # One request with 1,000 metrics; then one with 100 params + 100 tags + 800 metrics (the
    # 1,000-entities-per-request total). Sent raw so that the client cannot split them.
    resp = raw.post(
        "/api/2.0/mlflow/runs/log-batch",
        {
            "run_id": rid,
            "metrics": [{"key": "m", "value": float(i), "timestamp": i, "step": i} for i in range(1000)],
        },
    )
    assert resp.status_code == 200, resp.text
    resp = raw.post(
        "/api/2.0/mlflow/runs/log-batch",
        {
            "run_id": rid,
            "params": [{"key": f"p{i:03}", "value": str(i)} for i in range(100)],
            "tags": [{"key": f"t{i:03}", "value": str(i)} for i in range(100)],
            "metrics": [{"key": f"k{i:03}", "value": 1.0, "timestamp": 1, "step": 0} for i in range(800)],
        },
    )
    assert resp.status_code == 200, resp.text
    got = client.get_run(rid)
    assert len(got.data.params) == 100 and got.data.params["p099"] == "99"
    assert sum(k.startswith("t") for k in got.data.tags) >= 100 and got.data.tags["t042"] == "42"
    assert len(got.data.metrics) == 801 and got.data.metrics["m"] == 999.0
    assert len(client.get_metric_history(rid, "m")) == 1000

    # The client splits what exceeds the limits into several requests.
    rid2 = client.create_run(experiment_id).info.run_id
    client.log_batch(
        rid2,
        metrics=[Metric("x", float(i), i, i) for i in range(2500)],
        params=[Param(f"p{i}", "v") for i in range(250)],
        tags=[RunTag(f"t{i}", "v") for i in range(150)],
    )
    got = client.get_run(rid2)
    assert len(got.data.params) == 250
    assert all(f"t{i}" in got.data.tags for i in range(150))
    assert got.data.metrics["x"] == 2499.0
    assert len(client.get_metric_history(rid2, "x")) == 2500


def test_log_batch_beyond_limits_is_rejected(client, raw, experiment_id):
    rid = client.create_run(experiment_id).info.run_id
    too_many = {
        "metrics": {"metrics": [{"key": f"m{i}", "value": 1.0, "timestamp": 1, "step": 0} for i in range(1001)]},
        "params": {"params": [{"key": f"p{i}", "value": "1"} for i in range(101)]},
        "tags": {"tags": [{"key": f"t{i}", "value": "1"} for i in range(101)]},
        "total": {
            "params": [{"key": f"p{i}", "value": "1"} for i in range(100)],
            "tags": [{"key": f"t{i}", "value": "1"} for i in range(100)],
            "metrics": [{"key": f"m{i}", "value": 1.0, "timestamp": 1, "step": 0} for i in range(801)],
        },
    }
    for what, body in too_many.items():
        resp = raw.post("/api/2.0/mlflow/runs/log-batch", {"run_id": rid, **body})
        assert_error_response(resp, 400, "INVALID_PARAMETER_VALUE")
    got = client.get_run(rid)
    assert got.data.metrics == {} and got.data.params == {}
    assert not any(k.startswith("t") and k[1:].isdigit() for k in got.data.tags)


def test_tags_set_and_delete(client, experiment_id):
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.set_tag("team", "pumps")
        mlflow.set_tags({"site": "north", "shift": 2, "empty": ""})
    rid = run.info.run_id
    client.set_tag(rid, "team", "valves")  # tags can be overwritten
    client.set_tag(rid, "note", "multi\nline ünïcode ✓")
    tags = client.get_run(rid).data.tags
    assert tags["team"] == "valves"
    assert tags["site"] == "north" and tags["shift"] == "2" and tags["empty"] == ""
    assert tags["note"] == "multi\nline ünïcode ✓"
    client.delete_tag(rid, "site")
    mlflow.set_experiment(experiment_id=experiment_id)
    with mlflow.start_run(run_id=rid):
        mlflow.delete_tag("shift")
    tags = client.get_run(rid).data.tags
    assert "site" not in tags and "shift" not in tags and tags["team"] == "valves"
    expect_error("RESOURCE_DOES_NOT_EXIST", client.delete_tag, rid, "site")


def test_log_input_dataset_lineage(client, experiment_id):
    rid = client.create_run(experiment_id).info.run_id
    train = Dataset(
        name="pumps-train",
        digest="3f2a9c1d",
        source_type="refit-snapshot",
        source='{"snapshot": "snap-1", "dataset": "pumps"}',
        schema='{"mlflow_colspec": [{"name": "temp", "type": "double"}]}',
        profile='{"num_rows": 1200}',
    )
    holdout = Dataset(name="pumps-holdout", digest="77aa", source_type="refit-snapshot", source="{}")
    client.log_inputs(
        rid,
        datasets=[
            DatasetInput(train, tags=[InputTag("mlflow.data.context", "training")]),
            DatasetInput(holdout, tags=[InputTag("mlflow.data.context", "evaluation")]),
        ],
    )
    inputs = {d.dataset.name: d for d in client.get_run(rid).inputs.dataset_inputs}
    assert set(inputs) == {"pumps-train", "pumps-holdout"}
    got = inputs["pumps-train"].dataset
    assert (got.digest, got.source_type, got.source) == (train.digest, train.source_type, train.source)
    assert got.schema == train.schema and got.profile == train.profile
    assert {t.key: t.value for t in inputs["pumps-train"].tags} == {"mlflow.data.context": "training"}
    assert {t.key: t.value for t in inputs["pumps-holdout"].tags} == {"mlflow.data.context": "evaluation"}

    # The fluent form with a dataset the client builds itself.
    features = np.arange(12, dtype=np.float64).reshape(4, 3)
    ds = mlflow.data.from_numpy(features, targets=np.array([0, 1, 0, 1]), name="tiny")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_input(ds, context="validation")
    (only,) = client.get_run(run.info.run_id).inputs.dataset_inputs
    assert only.dataset.name == "tiny"
    assert only.dataset.digest == ds.digest
    assert only.dataset.source_type == ds.source._get_source_type()
    assert {t.key: t.value for t in only.tags}["mlflow.data.context"] == "validation"


def test_get_run_reads_everything_back(client, experiment_id):
    rid = client.create_run(experiment_id, run_name="full", tags={"k": "v"}).info.run_id
    client.log_param(rid, "p", "1")
    client.log_metric(rid, "m", 2.5, timestamp=10, step=3)
    run = client.get_run(rid)
    assert run.info.run_id == rid and run.info.experiment_id == experiment_id
    assert run.info.run_name == "full" and run.info.status == "RUNNING"
    assert run.data.params == {"p": "1"} and run.data.metrics == {"m": 2.5}
    assert run.data.tags["k"] == "v"
    assert [(m.key, m.value, m.timestamp, m.step) for m in client.get_metric_history(rid, "m")] == [("m", 2.5, 10, 3)]


def test_delete_and_restore_run(client, experiment_id):
    keep = client.create_run(experiment_id, run_name="keep").info.run_id
    gone = client.create_run(experiment_id, run_name="gone").info.run_id
    client.delete_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "deleted"

    from mlflow.entities import ViewType

    def ids(view):
        return {r.info.run_id for r in client.search_runs([experiment_id], run_view_type=view)}

    assert ids(ViewType.ACTIVE_ONLY) == {keep}
    assert ids(ViewType.DELETED_ONLY) == {gone}
    assert ids(ViewType.ALL) == {keep, gone}

    client.restore_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "active"
    assert ids(ViewType.ACTIVE_ONLY) == {keep, gone}
    assert ids(ViewType.DELETED_ONLY) == set()
