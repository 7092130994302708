"""Registry: register_model, registered models and versions (create/get/search), download URIs,
aliases, tags, stage transitions, rename, delete."""

import os

import mlflow
import pytest
from compat import MLFLOW3, expect_error, unique


@pytest.fixture
def run_with_model(client, experiment_id, tmp_path):
    """A run with a (fake) model directory at artifact path "model"."""
    rid = client.create_run(experiment_id).info.run_id
    d = tmp_path / "model"
    d.mkdir()
    (d / "weights.txt").write_text("w=1\n")
    client.log_artifacts(rid, str(d), "model")
    client.set_terminated(rid)
    return rid


def test_create_get_search_registered_models(client):
    prefix = unique("rm")
    a = client.create_registered_model(f"{prefix}-a", tags={"team": "pumps"}, description="first")
    assert a.name == f"{prefix}-a" and a.description == "first" and a.tags == {"team": "pumps"}
    assert a.creation_timestamp and a.creation_timestamp > 0
    client.create_registered_model(f"{prefix}-b", tags={"team": "valves"})
    client.create_registered_model(f"{prefix}-c", tags={"team": "pumps"})

    got = client.get_registered_model(f"{prefix}-a")
    assert got.name == f"{prefix}-a" and got.description == "first" and got.tags == {"team": "pumps"}
    assert got.latest_versions == [] and got.aliases == {}

    def search(flt, **kw):
        return [m.name for m in client.search_registered_models(flt, **kw)]

    assert search(f"name = '{prefix}-b'") == [f"{prefix}-b"]
    assert search(f"name LIKE '{prefix}-%'", order_by=["name ASC"]) == [f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"]
    assert search(f"name ILIKE '{prefix.upper()}-%'", order_by=["name DESC"]) == [f"{prefix}-c", f"{prefix}-b", f"{prefix}-a"]
    assert search(f"name LIKE '{prefix}-%' AND tags.team = 'pumps'", order_by=["name ASC"]) == [f"{prefix}-a", f"{prefix}-c"]
    page = client.search_registered_models(f"name LIKE '{prefix}-%'", max_results=2, order_by=["name ASC"])
    assert [m.name for m in page] == [f"{prefix}-a", f"{prefix}-b"] and page.token
    rest = client.search_registered_models(
        f"name LIKE '{prefix}-%'", max_results=2, order_by=["name ASC"], page_token=page.token
    )
    assert [m.name for m in rest] == [f"{prefix}-c"] and not rest.token

    client.update_registered_model(f"{prefix}-b", description="updated")
    assert client.get_registered_model(f"{prefix}-b").description == "updated"


def test_create_get_search_model_versions(client, experiment_id, run_with_model, tmp_path):
    name = unique("mv")
    client.create_registered_model(name)
    rid = run_with_model
    other = client.create_run(experiment_id).info.run_id

    v1 = client.create_model_version(name, f"runs:/{rid}/model", run_id=rid, tags={"stage": "candidate"}, description="v one")
    assert v1.name == name and v1.version == "1"
    assert v1.run_id == rid and v1.status == "READY"
    assert v1.tags == {"stage": "candidate"} and v1.description == "v one"
    assert v1.current_stage == "None"
    v2 = client.create_model_version(name, f"runs:/{other}/model", run_id=other)
    assert v2.version == "2"

    got = client.get_model_version(name, "1")
    assert (got.name, got.version, got.run_id, got.tags) == (name, "1", rid, {"stage": "candidate"})
    assert got.source == v1.source and got.creation_timestamp > 0
    assert {v.version for v in client.get_registered_model(name).latest_versions} == {"2"}

    def versions(flt):
        return sorted((v.name, v.version) for v in client.search_model_versions(flt))

    assert versions(f"name = '{name}'") == [(name, "1"), (name, "2")]
    assert versions(f"run_id = '{rid}'") == [(name, "1")]
    assert versions(f"name = '{name}' AND run_id = '{other}'") == [(name, "2")]
    assert versions(f"name = '{name}' AND tags.stage = 'candidate'") == [(name, "1")]
    assert versions(f"run_id IN ('{rid}', '{other}')") == [(name, "1"), (name, "2")]
    ordered = client.search_model_versions(f"name = '{name}'", order_by=["version_number DESC"])
    assert [v.version for v in ordered] == ["2", "1"]
    page = client.search_model_versions(f"name = '{name}'", max_results=1, order_by=["version_number ASC"])
    assert [v.version for v in page] == ["1"] and page.token
    page2 = client.search_model_versions(
        f"name = '{name}'", max_results=1, order_by=["version_number ASC"], page_token=page.token
    )
    assert [v.version for v in page2] == ["2"]

    # The download URI resolves to the files the run logged under "model".
    uri = client.get_model_version_download_uri(name, "1")
    assert uri
    local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path / "dl"))
    assert open(os.path.join(local, "weights.txt")).read() == "w=1\n"
    local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/1", dst_path=str(tmp_path / "dl2"))
    assert open(os.path.join(local, "weights.txt")).read() == "w=1\n"

    client.update_model_version(name, "2", description="second")
    assert client.get_model_version(name, "2").description == "second"


def test_register_model(client, experiment_id, run_with_model):
    name = unique("registered")
    if MLFLOW3:
        # MLflow 3's register_model("runs:/<run>/<path>") looks for the run's logged model of that
        # name; without one it refuses (client-side).
        from mlflow.entities import LoggedModelStatus

        lm = client.create_logged_model(experiment_id, name="model", source_run_id=run_with_model)
        client.finalize_logged_model(lm.model_id, LoggedModelStatus.READY)
    mv = mlflow.register_model(f"runs:/{run_with_model}/model", name)
    assert mv.name == name and mv.version == "1" and mv.run_id == run_with_model
    assert client.get_registered_model(name).name == name
    mv2 = mlflow.register_model(f"runs:/{run_with_model}/model", name, tags={"k": "v"})
    assert mv2.version == "2" and client.get_model_version(name, "2").tags == {"k": "v"}
    if MLFLOW3:
        assert mv.source == f"models:/{lm.model_id}"
        mv3 = mlflow.register_model(f"models:/{lm.model_id}", name)
        assert mv3.version == "3" and mv3.source == f"models:/{lm.model_id}"


def test_aliases(client, run_with_model):
    name = unique("aliased")
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, f"runs:/{run_with_model}/model", run_id=run_with_model)

    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    assert client.get_registered_model(name).aliases == {"champion": "1", "challenger": "2"}
    assert client.get_model_version(name, "1").aliases == ["champion"]

    client.set_registered_model_alias(name, "champion", "2")  # moves, does not duplicate
    mv = client.get_model_version_by_alias(name, "champion")
    assert mv.version == "2" and sorted(mv.aliases) == ["challenger", "champion"]
    assert client.get_model_version(name, "1").aliases == []
    assert client.get_registered_model(name).aliases == {"champion": "2", "challenger": "2"}

    client.delete_registered_model_alias(name, "challenger")
    assert client.get_registered_model(name).aliases == {"champion": "2"}
    expect_error("INVALID_PARAMETER_VALUE", client.get_model_version_by_alias, name, "challenger")


@pytest.mark.mlflow3_server  # MLflow 2.22's server kept the alias of a deleted version
def test_alias_dies_with_its_version(client, run_with_model):
    name = unique("alias-gone")
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, f"runs:/{run_with_model}/model", run_id=run_with_model)
    client.set_registered_model_alias(name, "champion", "2")
    client.set_registered_model_alias(name, "previous", "1")
    client.delete_model_version(name, "2")
    assert client.get_registered_model(name).aliases == {"previous": "1"}
    expect_error("INVALID_PARAMETER_VALUE", client.get_model_version_by_alias, name, "champion")


def test_tags_on_models_and_versions(client, run_with_model):
    name = unique("tagged")
    client.create_registered_model(name, tags={"keep": "1", "drop": "2"})
    client.set_registered_model_tag(name, "owner", "ada")
    client.set_registered_model_tag(name, "keep", "changed")
    client.delete_registered_model_tag(name, "drop")
    assert client.get_registered_model(name).tags == {"keep": "changed", "owner": "ada"}

    client.create_model_version(name, f"runs:/{run_with_model}/model", run_id=run_with_model, tags={"a": "1"})
    client.set_model_version_tag(name, "1", "validated", "true")
    client.set_model_version_tag(name, "1", "a", "2")
    assert client.get_model_version(name, "1").tags == {"a": "2", "validated": "true"}
    client.delete_model_version_tag(name, "1", "a")
    assert client.get_model_version(name, "1").tags == {"validated": "true"}
    assert [v.version for v in client.search_model_versions(f"name = '{name}' AND tags.validated = 'true'")] == ["1"]


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_transition_model_version_stage(client, run_with_model):
    name = unique("staged")
    client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(name, f"runs:/{run_with_model}/model", run_id=run_with_model)

    mv = client.transition_model_version_stage(name, "1", "Staging")
    assert mv.current_stage == "Staging"
    client.transition_model_version_stage(name, "1", "Production")
    client.transition_model_version_stage(name, "2", "Production", archive_existing_versions=True)
    stages = {v.version: v.current_stage for v in client.search_model_versions(f"name = '{name}'")}
    assert stages == {"1": "Archived", "2": "Production", "3": "None"}
    latest = {v.current_stage: v.version for v in client.get_registered_model(name).latest_versions}
    assert latest == {"Archived": "1", "Production": "2", "None": "3"}
    assert [v.version for v in client.get_latest_versions(name, stages=["Production"])] == ["2"]
    client.transition_model_version_stage(name, "3", "Staging", archive_existing_versions=False)
    assert client.get_model_version(name, "3").current_stage == "Staging"
    expect_error("INVALID_PARAMETER_VALUE", client.transition_model_version_stage, name, "3", "Limbo")


def test_rename_registered_model(client, run_with_model):
    old, new = unique("old"), unique("new")
    client.create_registered_model(old)
    client.create_model_version(old, f"runs:/{run_with_model}/model", run_id=run_with_model)
    client.set_registered_model_alias(old, "champion", "1")
    client.rename_registered_model(old, new)
    got = client.get_registered_model(new)
    assert got.name == new and got.aliases == {"champion": "1"}
    mv = client.get_model_version(new, "1")
    assert mv.name == new and mv.run_id == run_with_model
    assert client.get_model_version_by_alias(new, "champion").version == "1"
    expect_error("RESOURCE_DOES_NOT_EXIST", client.get_registered_model, old)
    assert list(client.search_model_versions(f"name = '{old}'")) == []


def test_delete_versions_and_models(client, run_with_model):
    name = unique("deleted")
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, f"runs:/{run_with_model}/model", run_id=run_with_model)
    client.delete_model_version(name, "1")
    expect_error("RESOURCE_DOES_NOT_EXIST", client.get_model_version, name, "1")
    assert [v.version for v in client.search_model_versions(f"name = '{name}'")] == ["2"]
    # Version numbers are not reused.
    assert client.create_model_version(name, f"runs:/{run_with_model}/model", run_id=run_with_model).version == "3"

    client.delete_registered_model(name)
    expect_error("RESOURCE_DOES_NOT_EXIST", client.get_registered_model, name)
    expect_error("RESOURCE_DOES_NOT_EXIST", client.get_model_version, name, "2")
    assert list(client.search_registered_models(f"name = '{name}'")) == []
    # The name is free again.
    assert client.create_registered_model(name).name == name
