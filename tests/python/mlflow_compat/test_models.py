"""Models: mlflow.sklearn.log_model then mlflow.pyfunc.load_model("models:/<name>@champion");
MLflow 3 logged models (create, get, finalize, tags, search, runs/outputs); MLflow 2's
runs/log-model."""

import json

import mlflow
import numpy as np
import pytest
from compat import expect_error, only_mlflow2, only_mlflow3, unique

PIP = ["scikit-learn", "numpy"]  # given, so that the client does not infer requirements (slow)


@pytest.fixture(scope="module")
def sk_model():
    from sklearn.linear_model import LinearRegression

    X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 3.0], [3.0, 5.0], [4.0, 4.0], [5.0, 1.0]])
    y = X @ np.array([1.5, -2.0]) + 0.5
    return LinearRegression().fit(X, y), X


def _assert_same_predictions(loaded, model, X):
    np.testing.assert_allclose(np.asarray(loaded.predict(X)).ravel(), model.predict(X), rtol=1e-12)


@only_mlflow3
def test_sklearn_log_model_registers_and_loads_by_alias(client, experiment_id, sk_model):
    from mlflow.entities import LoggedModelStatus

    model, X = sk_model
    name = unique("pump-failure")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = mlflow.sklearn.log_model(
            model, name="model", registered_model_name=name, pip_requirements=PIP
        )
    rid = run.info.run_id
    assert info.model_id and info.run_id == rid
    assert str(info.registered_model_version) == "1"

    logged = client.get_logged_model(info.model_id)
    assert logged.model_id == info.model_id
    assert logged.name == "model"
    assert logged.experiment_id == experiment_id
    assert logged.source_run_id == rid
    assert logged.status == LoggedModelStatus.READY
    assert "MLmodel" in {f.path for f in client.list_logged_model_artifacts(info.model_id)}

    outputs = client.get_run(rid).outputs.model_outputs
    assert [o.model_id for o in outputs] == [info.model_id]

    client.set_registered_model_alias(name, "champion", "1")
    mv = client.get_model_version_by_alias(name, "champion")
    assert mv.version == "1" and mv.run_id == rid
    # MLflow's server records the logged model as the version's source (and leaves model_id out).
    assert mv.source == f"models:/{info.model_id}"
    assert mv.model_id in (None, info.model_id)
    assert "champion" in mv.aliases

    _assert_same_predictions(mlflow.pyfunc.load_model(f"models:/{name}@champion"), model, X)
    _assert_same_predictions(mlflow.pyfunc.load_model(f"models:/{name}/1"), model, X)
    _assert_same_predictions(mlflow.sklearn.load_model(f"models:/{info.model_id}"), model, X)
    _assert_same_predictions(mlflow.pyfunc.load_model(info.model_uri), model, X)


@only_mlflow3
def test_champion_moves_to_a_new_version(client, experiment_id, sk_model):
    from sklearn.linear_model import LinearRegression

    model, X = sk_model
    other = LinearRegression().fit(X, X[:, 0] * 3.0 - 1.0)
    name = unique("mover")
    with mlflow.start_run(experiment_id=experiment_id):
        mlflow.sklearn.log_model(model, name="m1", registered_model_name=name, pip_requirements=PIP)
        mlflow.sklearn.log_model(other, name="m2", registered_model_name=name, pip_requirements=PIP)
    client.set_registered_model_alias(name, "champion", "1")
    _assert_same_predictions(mlflow.pyfunc.load_model(f"models:/{name}@champion"), model, X)
    client.set_registered_model_alias(name, "champion", "2")
    _assert_same_predictions(mlflow.pyfunc.load_model(f"models:/{name}@champion"), other, X)


@only_mlflow3
def test_logged_models_api(client, experiment_id):
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus

    rid = client.create_run(experiment_id).info.run_id
    lm = client.create_logged_model(
        experiment_id,
        name="hand-made",
        source_run_id=rid,
        tags={"owner": "ada", "drop": "me"},
        params={"alpha": "0.5", "depth": "3"},
        model_type="regressor",
    )
    assert lm.model_id and lm.status == LoggedModelStatus.PENDING
    assert lm.experiment_id == experiment_id and lm.name == "hand-made"
    assert lm.artifact_location

    client.set_logged_model_tags(lm.model_id, {"stage": "dev", "owner": "grace"})
    client.delete_logged_model_tag(lm.model_id, "drop")
    got = client.get_logged_model(lm.model_id)
    user_tags = {k: v for k, v in got.tags.items() if not k.startswith("mlflow.")}
    assert user_tags == {"owner": "grace", "stage": "dev"}
    assert got.params == {"alpha": "0.5", "depth": "3"}
    assert got.source_run_id == rid and got.model_type == "regressor"

    final = client.finalize_logged_model(lm.model_id, LoggedModelStatus.READY)
    assert final.status == LoggedModelStatus.READY
    assert client.get_logged_model(lm.model_id).status == LoggedModelStatus.READY

    # Metrics logged against the model, and the run's outputs.
    client.log_metric(rid, "rmse", 1.25, step=2, model_id=lm.model_id)
    client.log_outputs(rid, [LoggedModelOutput(lm.model_id, step=2)])
    assert [(m.key, m.value, m.step) for m in client.get_logged_model(lm.model_id).metrics] == [("rmse", 1.25, 2)]
    assert [(o.model_id, o.step) for o in client.get_run(rid).outputs.model_outputs] == [(lm.model_id, 2)]

    failed = client.create_logged_model(experiment_id, name="broken")
    client.finalize_logged_model(failed.model_id, LoggedModelStatus.FAILED)

    found = client.search_logged_models([experiment_id], filter_string="name = 'hand-made'")
    assert [m.model_id for m in found] == [lm.model_id]
    both = client.search_logged_models([experiment_id], order_by=[{"field_name": "name", "ascending": True}])
    assert [m.name for m in both] == ["broken", "hand-made"]
    for flt in ("tags.stage = 'dev'", "params.alpha = '0.5'", "name LIKE 'hand%'", f"model_id = '{lm.model_id}'"):
        assert [m.model_id for m in client.search_logged_models([experiment_id], filter_string=flt)] == [lm.model_id], flt
    page = client.search_logged_models([experiment_id], max_results=1, order_by=[{"field_name": "name", "ascending": True}])
    assert [m.name for m in page] == ["broken"] and page.token
    page2 = client.search_logged_models(
        [experiment_id], max_results=1, order_by=[{"field_name": "name", "ascending": True}], page_token=page.token
    )
    assert [m.name for m in page2] == ["hand-made"]
    by_metric = client.search_logged_models([experiment_id], filter_string="metrics.rmse < 2")
    assert [m.model_id for m in by_metric] == [lm.model_id]

    client.delete_logged_model(failed.model_id)
    expect_error("RESOURCE_DOES_NOT_EXIST", client.get_logged_model, failed.model_id)
    expect_error("RESOURCE_DOES_NOT_EXIST", client.get_logged_model, "m-00000000000000000000000000000000")


@only_mlflow2
def test_mlflow2_sklearn_log_model_and_load_by_alias(client, experiment_id, sk_model):
    model, X = sk_model
    name = unique("pump-failure")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = mlflow.sklearn.log_model(
            model, artifact_path="model", registered_model_name=name, pip_requirements=PIP
        )
    rid = run.info.run_id
    assert info.model_uri == f"runs:/{rid}/model"
    assert str(info.registered_model_version) == "1"
    # runs/log-model left its record on the run.
    history = json.loads(client.get_run(rid).data.tags["mlflow.log-model.history"])
    assert [h["artifact_path"] for h in history] == ["model"]
    assert history[0]["run_id"] == rid and "sklearn" in history[0]["flavors"]
    assert "model/MLmodel" in {f.path for f in client.list_artifacts(rid, "model")}

    client.set_registered_model_alias(name, "champion", "1")
    mv = client.get_model_version_by_alias(name, "champion")
    assert mv.version == "1" and mv.run_id == rid
    _assert_same_predictions(mlflow.pyfunc.load_model(f"models:/{name}@champion"), model, X)
    _assert_same_predictions(mlflow.pyfunc.load_model(f"runs:/{rid}/model"), model, X)
    _assert_same_predictions(mlflow.sklearn.load_model(f"models:/{name}/1"), model, X)


def test_runs_log_model_is_accepted(client, raw, experiment_id):
    """MLflow 2's POST runs/log-model (still served by MLflow 3's server)."""
    rid = client.create_run(experiment_id).info.run_id
    model_json = {
        "artifact_path": "onnx-model",
        "run_id": rid,
        "utc_time_created": "2025-01-01 00:00:00.000000",
        "flavors": {"onnx": {"onnx_version": "1.17.0"}, "python_function": {"loader_module": "mlflow.onnx"}},
    }
    resp = raw.post("/api/2.0/mlflow/runs/log-model", {"run_id": rid, "model_json": json.dumps(model_json)})
    assert resp.status_code == 200, resp.text
    history = json.loads(client.get_run(rid).data.tags["mlflow.log-model.history"])
    assert len(history) == 1
    assert history[0]["artifact_path"] == "onnx-model" and history[0]["run_id"] == rid
    assert history[0]["flavors"]["onnx"] == {"onnx_version": "1.17.0"}
