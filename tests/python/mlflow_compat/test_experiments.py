"""Experiments: the default experiment, set_experiment, create/get/search/rename/delete/restore."""

import mlflow
from compat import expect_error, unique
from mlflow.entities import ViewType


def test_default_experiment_0_exists(client):
    exp = client.get_experiment("0")
    assert exp.experiment_id == "0"
    assert exp.name == "Default"
    assert exp.lifecycle_stage == "active"
    by_name = client.get_experiment_by_name("Default")
    assert by_name is not None and by_name.experiment_id == "0"


def test_set_experiment_creates_missing_then_reuses_it(client):
    name = unique("set-exp")
    assert client.get_experiment_by_name(name) is None  # the 404 set_experiment branches on
    created = mlflow.set_experiment(name)
    assert created.name == name
    assert created.experiment_id and created.experiment_id != "0"
    assert created.lifecycle_stage == "active"
    again = mlflow.set_experiment(name)
    assert again.experiment_id == created.experiment_id
    assert client.get_experiment_by_name(name).experiment_id == created.experiment_id
    # Runs started without an experiment id land in the one set.
    with mlflow.start_run() as run:
        pass
    assert client.get_run(run.info.run_id).info.experiment_id == created.experiment_id
    by_id = mlflow.set_experiment(experiment_id=created.experiment_id)
    assert by_id.name == name


def test_create_and_get_experiment_with_tags(client):
    name = unique("create-exp")
    exp_id = client.create_experiment(name, tags={"team": "pumps", "site": "north"})
    assert isinstance(exp_id, str) and exp_id
    exp = client.get_experiment(exp_id)
    assert exp.experiment_id == exp_id
    assert exp.name == name
    assert exp.lifecycle_stage == "active"
    assert exp.tags["team"] == "pumps" and exp.tags["site"] == "north"
    assert exp.artifact_location  # some location the client can use
    assert exp.creation_time and exp.creation_time > 0
    client.set_experiment_tag(exp_id, "team", "valves")
    client.set_experiment_tag(exp_id, "owner", "ada")
    tags = client.get_experiment(exp_id).tags
    assert tags["team"] == "valves" and tags["owner"] == "ada" and tags["site"] == "north"
    assert client.get_experiment_by_name(name).experiment_id == exp_id
    expect_error("RESOURCE_ALREADY_EXISTS", client.create_experiment, name)


def test_search_experiments_filter_order_and_pages(client):
    prefix = unique("search-exp")
    ids = {}
    for suffix, team in (("a", "red"), ("b", "blue"), ("c", "red")):
        ids[suffix] = client.create_experiment(f"{prefix}-{suffix}", tags={"team": team})

    found = client.search_experiments(filter_string=f"name LIKE '{prefix}-%'", order_by=["name ASC"])
    assert [e.name for e in found] == [f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"]
    assert [e.experiment_id for e in found] == [ids["a"], ids["b"], ids["c"]]

    desc = client.search_experiments(filter_string=f"name LIKE '{prefix}-%'", order_by=["name DESC"])
    assert [e.name for e in desc] == [f"{prefix}-c", f"{prefix}-b", f"{prefix}-a"]

    red = client.search_experiments(
        filter_string=f"name LIKE '{prefix}-%' AND tags.team = 'red'", order_by=["name ASC"]
    )
    assert [e.name for e in red] == [f"{prefix}-a", f"{prefix}-c"]

    exact = client.search_experiments(filter_string=f"name = '{prefix}-b'")
    assert [e.experiment_id for e in exact] == [ids["b"]]

    page1 = client.search_experiments(
        filter_string=f"name LIKE '{prefix}-%'", order_by=["name ASC"], max_results=2
    )
    assert [e.name for e in page1] == [f"{prefix}-a", f"{prefix}-b"]
    assert page1.token
    page2 = client.search_experiments(
        filter_string=f"name LIKE '{prefix}-%'",
        order_by=["name ASC"],
        max_results=2,
        page_token=page1.token,
    )
    assert [e.name for e in page2] == [f"{prefix}-c"]
    assert not page2.token

    # The fluent form, and the default experiment among all active ones.
    assert "0" in {e.experiment_id for e in mlflow.search_experiments()}


def test_rename_experiment(client):
    old = unique("rename-old")
    new = unique("rename-new")
    exp_id = client.create_experiment(old)
    client.rename_experiment(exp_id, new)
    assert client.get_experiment(exp_id).name == new
    assert client.get_experiment_by_name(new).experiment_id == exp_id
    assert client.get_experiment_by_name(old) is None


def test_delete_and_restore_experiment(client):
    name = unique("delete-exp")
    exp_id = client.create_experiment(name)
    client.delete_experiment(exp_id)

    exp = client.get_experiment(exp_id)
    assert exp.lifecycle_stage == "deleted"
    assert client.get_experiment_by_name(name).lifecycle_stage == "deleted"
    flt = f"name = '{name}'"
    assert client.search_experiments(filter_string=flt) == []
    assert [e.experiment_id for e in client.search_experiments(ViewType.DELETED_ONLY, filter_string=flt)] == [exp_id]
    assert [e.experiment_id for e in client.search_experiments(ViewType.ALL, filter_string=flt)] == [exp_id]
    # A deleted experiment's name is still taken.
    expect_error("RESOURCE_ALREADY_EXISTS", client.create_experiment, name)

    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"
    assert [e.experiment_id for e in client.search_experiments(filter_string=flt)] == [exp_id]
