"""/api/3.0/mlflow/server-info as the MLflow 3.x client reads it (capabilities for artifacts,
workspaces, telemetry)."""

from compat import only_mlflow3


@only_mlflow3
def test_server_info(raw, server):
    from mlflow.utils.rest_utils import MlflowHostCreds
    from mlflow.utils.server_info import fetch_server_info

    resp = raw.get("/api/3.0/mlflow/server-info")
    assert resp.status_code == 200, resp.text
    info = resp.json()
    assert isinstance(info, dict)
    assert isinstance(info.get("store_type"), str) and info["store_type"]
    # No workspaces (the client would then scope every call to one). The multipart/presigned
    # artifact flags are booleans when present; a server that sets them must also serve those
    # transfers, which the round trip below exercises.
    assert info.get("workspaces_enabled", False) is False
    for flag in ("multipart_uploads_enabled", "multipart_downloads_enabled"):
        assert isinstance(info.get(flag, False), bool), info

    creds = MlflowHostCreds(server.url, token=server.token)
    fetched = fetch_server_info(creds)
    assert fetched.status_code == 200 and fetched.data == info


@only_mlflow3
def test_client_works_with_what_server_info_says(client, experiment_id, tmp_path):
    """The 3.x artifact repository consults server-info before transfers: a round trip through
    it must still be a plain proxied upload and download."""
    import mlflow

    rid = client.create_run(experiment_id).info.run_id
    f = tmp_path / "x.bin"
    f.write_bytes(b"\x00\x01" * 5000)
    client.log_artifact(rid, str(f))
    got = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="x.bin", dst_path=str(tmp_path / "d"))
    assert open(got, "rb").read() == b"\x00\x01" * 5000
