"""refit's own work seen through MLflow (refit only): what refit's native API and its trainer
write is what the MLflow client reads, from the same registry tables."""

import json
import time

import mlflow
import numpy as np
import pytest
from compat import unique

pytestmark = pytest.mark.refit_only


def _ok(resp, status=(200, 201, 202, 204)):
    assert resp.status_code in status, f"HTTP {resp.status_code}: {resp.text[:500]}"
    return resp.json() if resp.content else None


def test_native_api_writes_are_visible_through_mlflow(client, raw):
    exp_name = unique("native")
    exp = _ok(raw.post("/api/v1/experiments", {"name": exp_name}))["experiment_id"]
    run = _ok(raw.post("/api/v1/runs", {"experiment_id": exp, "run_name": "rf-depth-8"}))
    rid = run["info"]["run_id"]
    _ok(
        raw.post(
            f"/api/v1/runs/{rid}/log-batch",
            {
                "params": [{"key": "model", "value": "random_forest"}, {"key": "max_depth", "value": "8"}],
                "metrics": [{"key": "f1", "value": 0.71, "step": 1}, {"key": "f1", "value": 0.78, "step": 2}],
            },
        )
    )
    model = unique("native-model")
    _ok(raw.post("/api/v1/models", {"name": model}))
    _ok(raw.post(f"/api/v1/models/{model}/versions", {"source": f"runs:/{rid}/model", "run_id": rid}))
    _ok(raw.request("PUT", f"/api/v1/models/{model}/aliases/champion", json_body={"version": 1}))

    assert client.get_experiment_by_name(exp_name).experiment_id == exp
    got = client.get_run(rid)
    assert got.info.run_name == "rf-depth-8" and got.info.experiment_id == exp
    assert got.data.params == {"model": "random_forest", "max_depth": "8"}
    assert got.data.metrics == {"f1": 0.78}
    assert sorted((m.step, m.value) for m in client.get_metric_history(rid, "f1")) == [(1, 0.71), (2, 0.78)]
    found = client.search_runs([exp], "metrics.f1 > 0.7 AND params.model = 'random_forest'")
    assert [r.info.run_id for r in found] == [rid]
    mv = client.get_model_version_by_alias(model, "champion")
    assert mv.version == "1" and mv.run_id == rid
    assert client.get_registered_model(model).aliases == {"champion": "1"}


def _readings(n=400, seed=7):
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        temp = float(rng.normal(70, 5))
        vib = float(rng.normal(1.0, 0.3))
        kind = ["L", "M", "H"][i % 3]
        failure = int(temp + 10 * vib > 82)
        lines.append(
            json.dumps(
                {"machine_id": f"m{i % 7}", "ts": 1_700_000_000_000 + i * 1000, "kind": kind,
                 "temp": temp, "vibration": vib, "failure": failure}
            )
        )  # fmt: skip
    return "\n".join(lines)


def test_trained_and_promoted_model_is_seen_through_mlflow(client, raw, tmp_path):
    dataset, spec_name = unique("pumps"), unique("pump-failure")
    _ok(
        raw.post(
            "/api/v1/datasets",
            {
                "name": dataset,
                "features": [
                    {"name": "kind", "kind": "categorical"},
                    {"name": "temp", "kind": "numeric"},
                    {"name": "vibration", "kind": "numeric"},
                ],
                "labels": [{"name": "failure", "kind": "numeric"}],
            },
        )
    )
    report = _ok(
        raw.request(
            "POST",
            f"/api/v1/datasets/{dataset}/records",
            data=_readings().encode(),
            headers={"Content-Type": "application/x-ndjson"},
        )
    )
    assert report["accepted"] == 400 and report["rejected"] == []
    spec = {
        "name": spec_name,
        "dataset": dataset,
        "task": "binary",
        "target": "failure",
        "features": ["kind", "temp", "vibration"],
        "algorithm": "gaussian_nb",
        "holdout": {"fraction": 0.2},
    }
    _ok(raw.post("/api/v1/specs", spec))
    job = _ok(raw.request("POST", f"/api/v1/specs/{spec_name}/train"))
    deadline = time.time() + 120
    while job["status"] not in ("succeeded", "failed"):
        assert time.time() < deadline, job
        time.sleep(0.2)
        job = _ok(raw.get(f"/api/v1/jobs/{job['id']}"))
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["decision"] == "promoted", result
    run_id = result["run_id"]

    # The registered model's champion is the promoted version, whose run is the candidate.
    mv = client.get_model_version_by_alias(spec_name, "champion")
    assert mv.version == str(result["candidate_version"]) and mv.run_id == run_id
    assert mv.tags.get("refit.decision") == "promoted"
    assert client.get_registered_model(spec_name).aliases["champion"] == mv.version

    # Its run: the spec's params, the holdout metrics, both snapshots as dataset inputs.
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["algorithm"] == "gaussian_nb"
    assert run.data.params["dataset"] == dataset and run.data.params["target"] == "failure"
    for name, value in result["candidate_metrics"].items():
        assert run.data.metrics[name] == pytest.approx(value, rel=1e-12), name
    inputs = {
        {t.key: t.value for t in d.tags}["mlflow.data.context"]: d.dataset
        for d in run.inputs.dataset_inputs
    }
    assert set(inputs) == {"training", "evaluation"}
    for context, snapshot in (("training", result["train_snapshot"]), ("evaluation", result["holdout_snapshot"])):
        snap = _ok(raw.get(f"/api/v1/datasets/{dataset}/snapshots/{snapshot}"))
        assert inputs[context].name == dataset
        assert inputs[context].digest == snap["digest"]  # refit's full-content digest

    # The spec is the experiment its runs are logged in; searches see the candidate.
    exp = client.get_experiment_by_name(spec_name)
    found = client.search_runs([exp.experiment_id], "tags.`refit.role` = 'candidate'")
    assert [r.info.run_id for r in found] == [run_id]
    assert mlflow.search_runs([exp.experiment_id], output_format="list")
