"""Artifacts through the server (/api/2.0/mlflow-artifacts/artifacts/...): log_artifact(s),
list_artifacts, download_artifacts, nested directories."""

import filecmp
import json
import os

import mlflow
import pytest


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "top.txt").write_text("top\n")
    (root / "sub" / "mid.csv").write_text("a,b\n1,2\n")
    (root / "sub" / "deeper" / "blob.bin").write_bytes(bytes(range(256)) * 40)
    (root / "sub" / "deeper" / "ünï code.txt").write_text("ü\n")
    return root


def listing(client, run_id, path=None):
    return {(f.path, f.is_dir, None if f.is_dir else f.file_size) for f in client.list_artifacts(run_id, path)}


def test_log_list_download(client, experiment_id, tree, tmp_path):
    rid = client.create_run(experiment_id).info.run_id
    assert client.list_artifacts(rid) == []

    client.log_artifact(rid, str(tree / "top.txt"))
    client.log_artifact(rid, str(tree / "sub" / "mid.csv"), artifact_path="reports/daily")
    client.log_artifacts(rid, str(tree), artifact_path="bundle")

    assert listing(client, rid) == {("top.txt", False, 4), ("reports", True, None), ("bundle", True, None)}
    assert listing(client, rid, "reports") == {("reports/daily", True, None)}
    assert listing(client, rid, "reports/daily") == {("reports/daily/mid.csv", False, 8)}
    assert listing(client, rid, "bundle") == {
        ("bundle/top.txt", False, 4),
        ("bundle/sub", True, None),
    }
    assert listing(client, rid, "bundle/sub/deeper") == {
        ("bundle/sub/deeper/blob.bin", False, 256 * 40),
        ("bundle/sub/deeper/ünï code.txt", False, 3),
    }
    assert client.list_artifacts(rid, "no/such/dir") == []

    out = tmp_path / "out"
    out.mkdir()
    got = client.download_artifacts(rid, "top.txt", str(out))
    assert open(got).read() == "top\n"
    got = client.download_artifacts(rid, "bundle/sub/deeper/blob.bin", str(out))
    assert open(got, "rb").read() == bytes(range(256)) * 40

    # A whole directory, recursively.
    whole = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="bundle", dst_path=str(tmp_path / "whole"))
    cmp = filecmp.dircmp(str(tree), whole)
    assert not cmp.left_only and not cmp.right_only and not cmp.diff_files
    for a, b in (("sub/mid.csv", "sub/mid.csv"), ("sub/deeper/blob.bin", "sub/deeper/blob.bin")):
        assert open(tree / a, "rb").read() == open(os.path.join(whole, b), "rb").read()
    assert open(os.path.join(whole, "sub", "deeper", "ünï code.txt")).read() == "ü\n"

    # Through the run's artifact_uri, as MLflow's own code does it.
    uri = client.get_run(rid).info.artifact_uri
    assert open(mlflow.artifacts.download_artifacts(artifact_uri=uri + "/reports/daily/mid.csv", dst_path=str(tmp_path / "u"))).read() == "a,b\n1,2\n"


def test_fluent_logging_helpers(client, experiment_id, tmp_path):
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_text("hello\n", "notes/hello.txt")
        mlflow.log_dict({"a": 1, "b": [1, 2]}, "config/params.json")
    rid = run.info.run_id
    assert mlflow.artifacts.load_text(f"runs:/{rid}/notes/hello.txt") == "hello\n"
    assert mlflow.artifacts.load_dict(f"runs:/{rid}/config/params.json") == {"a": 1, "b": [1, 2]}
    got = client.download_artifacts(rid, "config/params.json", str(tmp_path))
    assert json.load(open(got)) == {"a": 1, "b": [1, 2]}


def test_overwrite_and_empty_file(client, experiment_id, tmp_path):
    rid = client.create_run(experiment_id).info.run_id
    f = tmp_path / "f.txt"
    f.write_text("one")
    client.log_artifact(rid, str(f), "d")
    f.write_text("second")
    client.log_artifact(rid, str(f), "d")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    client.log_artifact(rid, str(empty), "d")
    files = {f.path: f for f in client.list_artifacts(rid, "d")}
    assert set(files) == {"d/f.txt", "d/empty.txt"}
    assert files["d/f.txt"].file_size == 6 and not files["d/f.txt"].is_dir
    # MLflow's server leaves a zero file_size out of the JSON, which the client reads as None.
    assert files["d/empty.txt"].file_size in (0, None) and not files["d/empty.txt"].is_dir
    out = tmp_path / "o"
    out.mkdir()
    assert open(client.download_artifacts(rid, "d/f.txt", str(out))).read() == "second"
    assert open(client.download_artifacts(rid, "d/empty.txt", str(out)), "rb").read() == b""


def test_missing_artifact(client, experiment_id, tmp_path):
    from mlflow.exceptions import MlflowException

    rid = client.create_run(experiment_id).info.run_id
    with pytest.raises((MlflowException, OSError)):
        client.download_artifacts(rid, "nope.txt", str(tmp_path))
