"""search_runs: MLflow's filter grammar on params, metrics, tags, attributes and datasets, every
comparison operator, order_by, max_results, page tokens, run_view_type."""

import mlflow
import pytest
from compat import unique
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag, ViewType

T0 = 1_700_000_000_000
# name, model param, f1 metric, team tag, status, start_time, dataset
RUNS = [
    ("alpha-1", "rf", 0.5, "a", "FINISHED", T0 + 0, "pumps-train"),
    ("beta-2", "lr", 0.6, "b", "FINISHED", T0 + 1000, "pumps-train"),
    ("Alpha-3", "rf", 0.7, "a", "FAILED", T0 + 2000, "valves-train"),
    ("gamma-4", "gb", 0.8, "b", "RUNNING", T0 + 3000, None),
    ("delta-5", "lr", 0.9, "c", "FINISHED", T0 + 4000, "valves-train"),
]
ALL = {r[0] for r in RUNS}


@pytest.fixture(scope="module")
def corpus(client):
    exp = client.create_experiment(unique("search-runs"))
    ids = {}
    for name, model, f1, team, status, start, dataset in RUNS:
        run = client.create_run(exp, start_time=start, run_name=name)
        rid = run.info.run_id
        ids[name] = rid
        client.log_batch(
            rid,
            metrics=[Metric("f1", f1, start, 0), Metric("loss", 1 - f1, start, 0)],
            params=[Param("model", model), Param("depth", str(len(name)))],
            tags=[RunTag("team", team)],
        )
        if dataset:
            ds = Dataset(name=dataset, digest=dataset[:5], source_type="refit-snapshot", source="{}")
            client.log_inputs(rid, datasets=[DatasetInput(ds, [InputTag("mlflow.data.context", "training")])])
        if status != "RUNNING":
            client.set_terminated(rid, status=status, end_time=start + 500)
    return exp, ids


def names(runs):
    return {r.info.run_name for r in runs}


FILTERS = [
    # metrics: the numeric comparators
    ("metrics.f1 = 0.7", {"Alpha-3"}),
    ("metrics.f1 != 0.7", ALL - {"Alpha-3"}),
    ("metrics.f1 < 0.7", {"alpha-1", "beta-2"}),
    ("metrics.f1 <= 0.7", {"alpha-1", "beta-2", "Alpha-3"}),
    ("metrics.f1 > 0.7", {"gamma-4", "delta-5"}),
    ("metrics.f1 >= 0.7", {"Alpha-3", "gamma-4", "delta-5"}),
    ("metrics.missing > 0", set()),
    # params: =, !=, LIKE (case-sensitive), ILIKE
    ("params.model = 'rf'", {"alpha-1", "Alpha-3"}),
    ("params.model != 'rf'", {"beta-2", "gamma-4", "delta-5"}),
    ("params.model LIKE 'l%'", {"beta-2", "delta-5"}),
    ("params.model LIKE 'L%'", set()),
    ("params.model ILIKE 'L%'", {"beta-2", "delta-5"}),
    ("params.`model` = 'gb'", {"gamma-4"}),
    ('params."model" = "gb"', {"gamma-4"}),
    # tags
    ("tags.team = 'a'", {"alpha-1", "Alpha-3"}),
    ("tags.team != 'a'", {"beta-2", "gamma-4", "delta-5"}),
    ("tags.team LIKE '%b%'", {"beta-2", "gamma-4"}),
    ("tags.team ILIKE 'C'", {"delta-5"}),
    ("tags.`mlflow.runName` = 'beta-2'", {"beta-2"}),
    # attributes: run_name, status, start_time (IN / NOT IN: run_id below, and datasets; MLflow
    # allows lists on no other attribute)
    ("attributes.run_name = 'alpha-1'", {"alpha-1"}),
    ("attributes.run_name != 'alpha-1'", ALL - {"alpha-1"}),
    ("attributes.run_name LIKE 'alpha%'", {"alpha-1"}),
    ("attributes.run_name ILIKE 'alpha%'", {"alpha-1", "Alpha-3"}),
    ("run_name = 'gamma-4'", {"gamma-4"}),
    ("attributes.status = 'FINISHED'", {"alpha-1", "beta-2", "delta-5"}),
    ("attributes.status != 'FINISHED'", {"Alpha-3", "gamma-4"}),
    ("status = 'RUNNING'", {"gamma-4"}),
    (f"attributes.start_time = {T0 + 1000}", {"beta-2"}),
    (f"attributes.start_time != {T0 + 1000}", ALL - {"beta-2"}),
    (f"attributes.start_time > {T0 + 2000}", {"gamma-4", "delta-5"}),
    (f"attributes.start_time >= {T0 + 2000}", {"Alpha-3", "gamma-4", "delta-5"}),
    (f"attributes.start_time < {T0 + 1000}", {"alpha-1"}),
    (f"attributes.start_time <= {T0 + 1000}", {"alpha-1", "beta-2"}),
    (f"attributes.end_time > {T0 + 3000}", {"delta-5"}),
    # datasets
    ("datasets.name = 'valves-train'", {"Alpha-3", "delta-5"}),
    ("datasets.name IN ('pumps-train', 'nope')", {"alpha-1", "beta-2"}),
    ("datasets.name NOT IN ('pumps-train')", {"Alpha-3", "delta-5"}),
    ("datasets.context = 'training' AND datasets.digest = 'valve'", {"Alpha-3", "delta-5"}),
    # conjunctions
    ("metrics.f1 > 0.55 AND params.model = 'lr'", {"beta-2", "delta-5"}),
    ("params.model = 'rf' and tags.team = 'a' and metrics.loss < 0.4", {"Alpha-3"}),
    ("", ALL),
]


@pytest.mark.parametrize("filter_string,expected", FILTERS, ids=[f[0] or "empty" for f in FILTERS])
def test_filter(client, corpus, filter_string, expected):
    exp, _ = corpus
    assert names(client.search_runs([exp], filter_string)) == expected


def test_filter_on_run_id(client, corpus):
    exp, ids = corpus
    a, b = ids["alpha-1"], ids["delta-5"]
    assert names(client.search_runs([exp], f"attributes.run_id = '{a}'")) == {"alpha-1"}
    assert names(client.search_runs([exp], f"attributes.run_id IN ('{a}', '{b}')")) == {"alpha-1", "delta-5"}
    assert names(client.search_runs([exp], f"attributes.run_id NOT IN ('{a}', '{b}')")) == ALL - {"alpha-1", "delta-5"}


def test_order_by(client, corpus):
    exp, _ = corpus

    def ordered(order_by):
        return [r.info.run_name for r in client.search_runs([exp], order_by=order_by)]

    by_start = [r[0] for r in sorted(RUNS, key=lambda r: r[5])]
    assert ordered(None) == by_start[::-1]  # default: newest start_time first
    assert ordered(["attributes.start_time ASC"]) == by_start
    assert ordered(["metrics.f1 DESC"]) == ["delta-5", "gamma-4", "Alpha-3", "beta-2", "alpha-1"]
    assert ordered(["metrics.f1"]) == ["alpha-1", "beta-2", "Alpha-3", "gamma-4", "delta-5"]
    assert ordered(["params.model ASC", "metrics.f1 DESC"]) == ["gamma-4", "delta-5", "beta-2", "Alpha-3", "alpha-1"]
    assert ordered(["tags.team DESC", "attributes.start_time ASC"]) == ["delta-5", "beta-2", "gamma-4", "alpha-1", "Alpha-3"]
    assert ordered(["attributes.run_name ASC"]) == sorted(ALL)


def test_max_results_and_page_tokens(client, corpus):
    exp, _ = corpus
    seen = []
    token = None
    pages = 0
    while True:
        page = client.search_runs([exp], order_by=["metrics.f1 ASC"], max_results=2, page_token=token)
        assert len(page) <= 2
        seen += [r.info.run_name for r in page]
        pages += 1
        token = page.token
        if not token:
            break
        assert pages < 10
    assert pages == 3
    assert seen == ["alpha-1", "beta-2", "Alpha-3", "gamma-4", "delta-5"]

    one = client.search_runs([exp], "params.model = 'lr'", max_results=1, order_by=["metrics.f1 DESC"])
    assert names(one) == {"delta-5"} and one.token
    rest = client.search_runs(
        [exp], "params.model = 'lr'", max_results=1, order_by=["metrics.f1 DESC"], page_token=one.token
    )
    assert names(rest) == {"beta-2"}
    last = client.search_runs(
        [exp], "params.model = 'lr'", max_results=1, order_by=["metrics.f1 DESC"], page_token=rest.token
    ) if rest.token else []
    assert len(last) == 0 and not getattr(last, "token", None)


def test_search_across_experiments_and_run_view_type(client, corpus):
    exp, ids = corpus
    other = client.create_experiment(unique("search-other"))
    r = client.create_run(other, run_name="elsewhere")
    client.log_metric(r.info.run_id, "f1", 0.99)
    both = client.search_runs([exp, other], "metrics.f1 > 0.85")
    assert names(both) == {"delta-5", "elsewhere"}

    client.delete_run(r.info.run_id)
    assert names(client.search_runs([exp, other], "metrics.f1 > 0.85")) == {"delta-5"}
    assert names(client.search_runs([other], run_view_type=ViewType.DELETED_ONLY)) == {"elsewhere"}
    assert names(client.search_runs([exp, other], "metrics.f1 > 0.85", run_view_type=ViewType.ALL)) == {
        "delta-5",
        "elsewhere",
    }
    assert names(client.search_runs([exp], run_view_type=ViewType.DELETED_ONLY)) == set()


def test_fluent_search_runs(corpus):
    exp, _ = corpus
    frame = mlflow.search_runs(
        experiment_ids=[exp], filter_string="metrics.f1 >= 0.8", order_by=["metrics.f1 DESC"]
    )
    assert list(frame["tags.mlflow.runName"]) == ["delta-5", "gamma-4"]
    assert list(frame["metrics.f1"]) == [0.9, 0.8]
    assert list(frame["params.model"]) == ["lr", "gb"]
    runs = mlflow.search_runs(experiment_ids=[exp], filter_string="tags.team = 'c'", output_format="list")
    assert [r.info.run_name for r in runs] == ["delta-5"]
