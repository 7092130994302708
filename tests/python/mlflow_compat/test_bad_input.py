"""Bad input, answered as MLflow's server answers it: error_code through the client (which the
client branches on) and, sent raw, the HTTP status and JSON error body. A user error is never 5xx."""

import math
import uuid

import mlflow
import pytest
from compat import FLOAT_MAX, artifact_root_path, assert_error_response, expect_error, unique
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException

UNKNOWN_EXPERIMENT = "987654321"


@pytest.fixture
def run_id(client, experiment_id):
    rid = client.create_run(experiment_id).info.run_id
    client.log_param(rid, "p", "1")
    client.set_tag(rid, "t", "1")
    return rid


@pytest.fixture
def unknown_run():
    return uuid.uuid4().hex


# --- unknown ids -------------------------------------------------------------------------------


def test_unknown_run_id(client, unknown_run):
    for call in (
        lambda: client.get_run(unknown_run),
        lambda: client.log_param(unknown_run, "p", "1"),
        lambda: client.log_metric(unknown_run, "m", 1.0),
        lambda: client.set_tag(unknown_run, "t", "1"),
        lambda: client.log_batch(unknown_run, metrics=[Metric("m", 1.0, 1, 0)]),
        lambda: client.set_terminated(unknown_run),
        lambda: client.delete_run(unknown_run),
        lambda: client.restore_run(unknown_run),
    ):
        expect_error("RESOURCE_DOES_NOT_EXIST", call)
    # MLflow answers a history of an unknown run with an empty list, not an error.
    assert client.get_metric_history(unknown_run, "m") == []


def test_unknown_experiment_id(client):
    expect_error("RESOURCE_DOES_NOT_EXIST", client.get_experiment, UNKNOWN_EXPERIMENT)
    expect_error("RESOURCE_DOES_NOT_EXIST", client.create_run, UNKNOWN_EXPERIMENT)
    expect_error("RESOURCE_DOES_NOT_EXIST", client.delete_experiment, UNKNOWN_EXPERIMENT)
    expect_error("RESOURCE_DOES_NOT_EXIST", client.rename_experiment, UNKNOWN_EXPERIMENT, unique("x"))
    assert client.get_experiment_by_name(unique("never-made")) is None
    # Searching an unknown experiment finds nothing; it is not an error.
    assert list(client.search_runs([UNKNOWN_EXPERIMENT])) == []
    with pytest.raises(MlflowException):
        mlflow.start_run(experiment_id=UNKNOWN_EXPERIMENT)


def test_unknown_registry_objects(client, run_id):
    name = unique("reg-errors")
    client.create_registered_model(name)
    client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)
    expect_error("RESOURCE_DOES_NOT_EXIST", client.get_registered_model, unique("nope"))
    expect_error("RESOURCE_DOES_NOT_EXIST", client.get_model_version, name, "99")
    expect_error("RESOURCE_DOES_NOT_EXIST", client.set_registered_model_alias, name, "champion", "99")
    expect_error("RESOURCE_DOES_NOT_EXIST", client.rename_registered_model, unique("nope"), unique("x"))
    expect_error("RESOURCE_DOES_NOT_EXIST", client.delete_registered_model, unique("nope"))
    # A missing alias is a bad parameter, not a missing resource, in MLflow.
    expect_error("INVALID_PARAMETER_VALUE", client.get_model_version_by_alias, name, "nope")
    expect_error("RESOURCE_ALREADY_EXISTS", client.create_registered_model, name)
    expect_error("INVALID_PARAMETER_VALUE", client.set_registered_model_alias, name, "latest", "1")
    expect_error("INVALID_PARAMETER_VALUE", client.set_registered_model_alias, name, "v3", "1")


# --- params, metrics, keys ---------------------------------------------------------------------


def test_param_relogged_with_a_different_value(client, run_id):
    expect_error("INVALID_PARAMETER_VALUE", client.log_param, run_id, "p", "2")
    expect_error("INVALID_PARAMETER_VALUE", client.log_batch, run_id, params=[Param("p", "3")])
    client.log_param(run_id, "p", "1")  # the same value is fine
    client.log_batch(run_id, params=[Param("p", "1")])
    assert client.get_run(run_id).data.params == {"p": "1"}


def test_nan_and_infinite_metrics_are_accepted(client, run_id):
    client.log_metric(run_id, "nan", float("nan"), timestamp=1, step=0)
    client.log_metric(run_id, "pinf", float("inf"), timestamp=1, step=0)
    client.log_metric(run_id, "ninf", float("-inf"), timestamp=1, step=0)
    client.log_batch(run_id, metrics=[Metric("batch_nan", float("nan"), 1, 0), Metric("batch_inf", float("inf"), 1, 0)])
    metrics = client.get_run(run_id).data.metrics
    assert math.isnan(metrics["nan"]) and math.isnan(metrics["batch_nan"])
    # MLflow's SQL store keeps ±inf as ±DBL_MAX (its file store as ±inf): either way the client
    # reads back the largest value there is, with the right sign.
    assert metrics["pinf"] in (math.inf, FLOAT_MAX) and metrics["batch_inf"] in (math.inf, FLOAT_MAX)
    assert metrics["ninf"] in (-math.inf, -FLOAT_MAX)
    (h,) = client.get_metric_history(run_id, "nan")
    assert math.isnan(h.value) and (h.step, h.timestamp) == (0, 1)
    (h,) = client.get_metric_history(run_id, "ninf")
    assert h.value in (-math.inf, -FLOAT_MAX)


def test_nan_on_the_wire(raw, run_id):
    """The client sends NaN and ±inf as protobuf JSON strings ("NaN", "Infinity", "-Infinity");
    MLflow's server sends NaN back as "NaN", and ±inf as ±DBL_MAX (SQL store)."""
    for key, value in (("w_nan", "NaN"), ("w_pinf", "Infinity"), ("w_ninf", "-Infinity")):
        resp = raw.post("/api/2.0/mlflow/runs/log-metric", {"run_id": run_id, "key": key, "value": value, "timestamp": 5, "step": 0})
        assert resp.status_code == 200, resp.text

    def read(key):
        hist = raw.get("/api/2.0/mlflow/metrics/get-history", {"run_id": run_id, "metric_key": key})
        assert hist.status_code == 200, hist.text
        (m,) = hist.json()["metrics"]
        assert (m["key"], m["timestamp"]) == (key, 5) and m.get("step", 0) == 0
        return m["value"]

    assert read("w_nan") == "NaN"
    assert read("w_pinf") in ("Infinity", FLOAT_MAX)
    assert read("w_ninf") in ("-Infinity", -FLOAT_MAX)


ILLEGAL_KEYS = ["bad key!", "semi;colon", "pipe|key", "../escape", "/absolute", "a/../b", "tab\tkey", ""]


@pytest.mark.parametrize("key", ILLEGAL_KEYS, ids=repr)
def test_illegal_key_characters(client, raw, run_id, key):
    expect_error("INVALID_PARAMETER_VALUE", client.log_param, run_id, key, "1")
    expect_error("INVALID_PARAMETER_VALUE", client.log_metric, run_id, key, 1.0)
    expect_error("INVALID_PARAMETER_VALUE", client.set_tag, run_id, key, "1")
    # What a client that does not check would send:
    for path, body in (
        ("runs/log-parameter", {"key": key, "value": "1"}),
        ("runs/log-metric", {"key": key, "value": 1.0, "timestamp": 1, "step": 0}),
        ("runs/set-tag", {"key": key, "value": "1"}),
        ("runs/log-batch", {"params": [{"key": key, "value": "1"}]}),
    ):
        resp = raw.post(f"/api/2.0/mlflow/{path}", {"run_id": run_id, **body})
        assert_error_response(resp, 400, "INVALID_PARAMETER_VALUE")
    run = client.get_run(run_id)
    assert key not in run.data.params and key not in run.data.metrics and key not in run.data.tags


def test_keys_over_the_length_limit(client, raw, run_id):
    long_key = "k" * 251
    ok_key = "k" * 250
    client.log_param(run_id, ok_key, "1")
    client.log_metric(run_id, ok_key, 1.0)
    client.set_tag(run_id, ok_key, "1")
    run = client.get_run(run_id)
    assert run.data.params[ok_key] == "1" and run.data.metrics[ok_key] == 1.0 and run.data.tags[ok_key] == "1"

    expect_error("INVALID_PARAMETER_VALUE", client.log_param, run_id, long_key, "1")
    expect_error("INVALID_PARAMETER_VALUE", client.set_tag, run_id, long_key, "1")
    for path, body in (
        ("runs/log-parameter", {"key": long_key, "value": "1"}),
        ("runs/log-metric", {"key": long_key, "value": 1.0, "timestamp": 1, "step": 0}),
        ("runs/set-tag", {"key": long_key, "value": "1"}),
        ("runs/log-batch", {"params": [{"key": long_key, "value": "1"}]}),
        ("runs/log-batch", {"metrics": [{"key": long_key, "value": 1.0, "timestamp": 1, "step": 0}]}),
        ("runs/log-batch", {"tags": [{"key": long_key, "value": "1"}]}),
    ):
        resp = raw.post(f"/api/2.0/mlflow/{path}", {"run_id": run_id, **body})
        assert_error_response(resp, 400, "INVALID_PARAMETER_VALUE")

    resp = raw.post("/api/2.0/mlflow/experiments/create", {"name": "x" * 501})
    assert_error_response(resp, 400, "INVALID_PARAMETER_VALUE")
    at_limit = unique("e").ljust(500, "x")
    assert client.get_experiment(client.create_experiment(at_limit)).name == at_limit


@pytest.mark.mlflow3_server
def test_values_over_the_length_limit_are_truncated(client, raw, run_id):
    """MLflow 3 (client and server, MLFLOW_TRUNCATE_LONG_VALUES on by default) truncates param
    values to 6,000 and run tag values to 8,000 characters instead of failing. (MLflow 2.22's
    server refused tag values over 5,000 with INVALID_PARAMETER_VALUE.)"""
    client.log_param(run_id, "exact", "v" * 6000)
    client.set_tag(run_id, "exact", "t" * 8000)
    resp = raw.post("/api/2.0/mlflow/runs/log-parameter", {"run_id": run_id, "key": "long", "value": "x" * 6001 + "y"})
    assert resp.status_code == 200, resp.text
    resp = raw.post("/api/2.0/mlflow/runs/set-tag", {"run_id": run_id, "key": "long", "value": "x" * 8001 + "y"})
    assert resp.status_code == 200, resp.text
    client.log_param(run_id, "client-long", "z" * 7000)
    run = client.get_run(run_id)
    assert run.data.params["exact"] == "v" * 6000 and run.data.tags["exact"] == "t" * 8000
    assert run.data.params["long"] == "x" * 6000
    assert run.data.tags["long"] == "x" * 8000
    assert run.data.params["client-long"] == "z" * 6000
    # Experiment tag values are not truncated: over 20,000 characters is an error.
    exp = client.get_run(run_id).info.experiment_id
    client.set_experiment_tag(exp, "ok", "e" * 20000)
    assert client.get_experiment(exp).tags["ok"] == "e" * 20000
    resp = raw.post("/api/2.0/mlflow/experiments/set-experiment-tag", {"experiment_id": exp, "key": "k", "value": "e" * 20001})
    assert_error_response(resp, 400, "INVALID_PARAMETER_VALUE")


def test_malformed_requests(raw, run_id):
    for path, body in (
        ("runs/log-metric", {"run_id": run_id, "key": "m", "value": "abc", "timestamp": 1}),
        ("runs/log-metric", {"run_id": run_id, "key": "m", "value": 1.0}),  # no timestamp
        ("runs/log-metric", {"run_id": run_id, "key": "m", "timestamp": 1}),  # no value
        ("experiments/create", {}),
        ("experiments/create", {"name": ""}),
        ("registered-models/create", {"name": ""}),
        ("runs/log-batch", {"run_id": run_id, "params": [{"key": "d", "value": "1"}, {"key": "d", "value": "2"}]}),
        ("runs/log-model", {"run_id": run_id, "model_json": "not json"}),
    ):
        assert_error_response(raw.post(f"/api/2.0/mlflow/{path}", body), 400, "INVALID_PARAMETER_VALUE")
    assert_error_response(raw.get("/api/2.0/mlflow/runs/get"), 400, "INVALID_PARAMETER_VALUE")


# --- errors as plain HTTP --------------------------------------------------------------------


def test_error_statuses_on_the_wire(raw, client, run_id, unknown_run):
    name = unique("wire")
    client.create_registered_model(name)
    client.create_model_version(name, f"runs:/{run_id}/m", run_id=run_id)
    cases = [
        ("GET", "runs/get", {"run_id": unknown_run}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("POST", "runs/log-parameter", {"run_id": unknown_run, "key": "p", "value": "1"}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("POST", "runs/log-metric", {"run_id": unknown_run, "key": "m", "value": 1, "timestamp": 1}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("POST", "runs/log-batch", {"run_id": unknown_run, "tags": [{"key": "a", "value": "b"}]}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("POST", "runs/update", {"run_id": unknown_run, "status": "FINISHED"}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("POST", "runs/delete", {"run_id": unknown_run}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("POST", "runs/log-inputs", {"run_id": unknown_run, "datasets": []}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("POST", "runs/delete-tag", {"run_id": run_id, "key": "never-set"}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("POST", "runs/log-parameter", {"run_id": run_id, "key": "p", "value": "2"}, 400, "INVALID_PARAMETER_VALUE"),
        ("POST", "runs/log-batch", {"run_id": run_id, "params": [{"key": "p", "value": "2"}]}, 400, "INVALID_PARAMETER_VALUE"),
        ("POST", "runs/create", {"experiment_id": UNKNOWN_EXPERIMENT}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("GET", "experiments/get", {"experiment_id": UNKNOWN_EXPERIMENT}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("GET", "experiments/get-by-name", {"experiment_name": unique("nope")}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("POST", "experiments/delete", {"experiment_id": UNKNOWN_EXPERIMENT}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("POST", "experiments/create", {"name": "Default"}, 400, "RESOURCE_ALREADY_EXISTS"),
        ("GET", "registered-models/get", {"name": unique("nope")}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("POST", "registered-models/create", {"name": name}, 400, "RESOURCE_ALREADY_EXISTS"),
        ("GET", "model-versions/get", {"name": name, "version": "99"}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("GET", "registered-models/alias", {"name": name, "alias": "nope"}, 400, "INVALID_PARAMETER_VALUE"),
        ("POST", "registered-models/alias", {"name": name, "alias": "champion", "version": "99"}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("POST", "registered-models/alias", {"name": name, "alias": "latest", "version": "1"}, 400, "INVALID_PARAMETER_VALUE"),
        ("POST", "registered-models/rename", {"name": unique("nope"), "new_name": unique("x")}, 404, "RESOURCE_DOES_NOT_EXIST"),
        ("POST", "model-versions/transition-stage", {"name": name, "version": "1", "stage": "Limbo", "archive_existing_versions": False}, 400, "INVALID_PARAMETER_VALUE"),
    ]
    for method, path, body, status, code in cases:
        resp = raw.get(f"/api/2.0/mlflow/{path}", body) if method == "GET" else raw.post(f"/api/2.0/mlflow/{path}", body)
        try:
            assert_error_response(resp, status, code)
        except AssertionError as e:
            raise AssertionError(f"{method} {path} {body}: {e}") from None
    # The registry's DELETE routes take their arguments as a JSON body, as the client sends them.
    resp = raw.request("DELETE", "/api/2.0/mlflow/registered-models/delete", json_body={"name": unique("nope")})
    assert_error_response(resp, 404, "RESOURCE_DOES_NOT_EXIST")


# --- searches: filters, order_by, page tokens ------------------------------------------------


UNPARSABLE_RUN_FILTERS = [
    "metrics.f1 >",
    "metrics.f1 > 'abc'",
    "foo = 1",
    "params.p IN ('1')",
    "params.p = 'a' OR params.p = 'b'",
    "nonsense.x = 'y'",
    "params.p = unquoted",
    "metrics.f1 === 1",
    "((",
]


@pytest.mark.parametrize("flt", UNPARSABLE_RUN_FILTERS)
def test_unparsable_run_filter(client, raw, experiment_id, flt):
    expect_error("INVALID_PARAMETER_VALUE", client.search_runs, [experiment_id], flt)
    resp = raw.post("/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id], "filter": flt})
    assert_error_response(resp, 400, "INVALID_PARAMETER_VALUE")


def test_unparsable_filters_elsewhere(client, experiment_id):
    expect_error("INVALID_PARAMETER_VALUE", client.search_experiments, filter_string="name >> 1")
    expect_error("INVALID_PARAMETER_VALUE", client.search_registered_models, "name = = 'x'")
    expect_error("INVALID_PARAMETER_VALUE", client.search_model_versions, "bogus_field = 'x'")
    expect_error("INVALID_PARAMETER_VALUE", client.search_runs, [experiment_id], order_by=["metrics.m SIDEWAYS"])
    expect_error("INVALID_PARAMETER_VALUE", client.search_runs, [experiment_id], order_by=["nonsense.x"])
    expect_error("INVALID_PARAMETER_VALUE", client.search_runs, [experiment_id], max_results=50001)


BOGUS_TOKENS = [
    "not-a-token!!",  # not base64
    "bm90IGpzb24=",  # base64 of "not json"
    "eyJmb28iOiAxfQ==",  # base64 of {"foo": 1}
]


@pytest.mark.parametrize("token", BOGUS_TOKENS)
def test_bogus_page_token(client, raw, experiment_id, token):
    client.create_run(experiment_id)
    expect_error("INVALID_PARAMETER_VALUE", client.search_runs, [experiment_id], page_token=token)
    resp = raw.post("/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id], "page_token": token})
    assert_error_response(resp, 400, "INVALID_PARAMETER_VALUE")


def test_bogus_page_token_elsewhere(client):
    token = "not-a-token!!"
    expect_error("INVALID_PARAMETER_VALUE", client.search_experiments, page_token=token)
    expect_error("INVALID_PARAMETER_VALUE", client.search_registered_models, page_token=token)
    expect_error("INVALID_PARAMETER_VALUE", client.search_model_versions, page_token=token)


# --- artifact paths escaping the run's root -----------------------------------------------------


ESCAPES = ["../x.txt", "%2E%2E/x.txt", "..%2Fx.txt", "sub/../../x.txt", "sub/%2E%2E/%2E%2E/x.txt"]


@pytest.mark.parametrize("escape", ESCAPES)
def test_artifact_paths_escaping_the_run_root(client, raw, experiment_id, escape):
    run = client.create_run(experiment_id)
    root = artifact_root_path(run.info.artifact_uri)
    base = "/api/2.0/mlflow-artifacts/artifacts/"
    resp = raw.request("PUT", f"{base}{root}/{escape}", data=b"evil")
    assert_error_response(resp, 400, "INVALID_PARAMETER_VALUE")
    resp = raw.get(f"{base}{root}/{escape}")
    assert_error_response(resp, 400, "INVALID_PARAMETER_VALUE")
    resp = raw.get(base.rstrip("/"), {"path": f"{root}/{escape}".replace("/", "%2F")})
    assert_error_response(resp, 400, "INVALID_PARAMETER_VALUE")
    assert client.list_artifacts(run.info.run_id) == []


@pytest.mark.mlflow3_server  # MLflow 2.22's server answered a GET of these with a 500
@pytest.mark.parametrize("absolute", ["/etc/passwd", "%2Fetc%2Fpasswd", "//etc/passwd"])
def test_absolute_artifact_paths(raw, absolute):
    base = "/api/2.0/mlflow-artifacts/artifacts"
    assert_error_response(raw.get(f"{base}/{absolute}"), 400, "INVALID_PARAMETER_VALUE")
    assert_error_response(raw.request("PUT", f"{base}/{absolute}", data=b"x"), 400, "INVALID_PARAMETER_VALUE")
    assert_error_response(raw.get(base, {"path": absolute.replace("/", "%2F")}), 400, "INVALID_PARAMETER_VALUE")


def test_client_refuses_escaping_artifact_paths(client, experiment_id, tmp_path):
    import requests

    rid = client.create_run(experiment_id).info.run_id
    f = tmp_path / "a.txt"
    f.write_text("a")
    for bad in ("../up", "/abs"):
        with pytest.raises(MlflowException):  # refused by the client before it sends anything
            client.log_artifact(rid, str(f), bad)
    for bad in ("..", "../..", "/etc"):
        with pytest.raises(requests.HTTPError) as info:  # sent, and refused by the server
            client.list_artifacts(rid, bad)
        assert info.value.response.status_code == 400
    assert client.list_artifacts(rid) == []
