"""Helpers shared by the MLflow-compatibility tests (imported as a plain module)."""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import quote, urlparse

import mlflow
import pytest
import requests
from mlflow.exceptions import MlflowException
from packaging.version import Version

MLFLOW_VERSION = Version(mlflow.__version__)
MLFLOW3 = MLFLOW_VERSION.major >= 3

only_mlflow3 = pytest.mark.skipif(not MLFLOW3, reason="MLflow 3.x client only")
only_mlflow2 = pytest.mark.skipif(MLFLOW3, reason="MLflow 2.x client only")

# What MLflow's server generates when a run gets no name: "<adjective>-<noun>-<0..999>".
GENERATED_RUN_NAME = re.compile(r"^[a-z]+-[a-z]+-\d{1,3}$")

FLOAT_MAX = 1.7976931348623157e308


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def expect_error(code: str, fn, *args, **kwargs) -> MlflowException:
    """Calls fn and asserts that the client raised MlflowException with this error_code."""
    with pytest.raises(MlflowException) as info:
        fn(*args, **kwargs)
    assert info.value.error_code == code, f"{info.value.error_code}: {info.value}"
    return info.value


class Raw:
    """Plain HTTP calls against the server, with the same token the client would send."""

    def __init__(self, url: str, headers: dict):
        self.url = url
        self.headers = headers

    def request(
        self, method, path, *, json_body=None, params=None, data=None, json_content=False, headers=None
    ):
        # A prepared request whose URL is set after preparation, so that "..", "%2E%2E" and
        # the like reach the server exactly as written.
        all_headers = dict(self.headers)
        if json_content:
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        req = requests.Request(
            method, self.url + "/", headers=all_headers, json=json_body, data=data
        ).prepare()
        req.url = self.url + path
        if params:
            # Values are quoted, except "%" so that pre-encoded ones reach the server as written.
            req.url += "?" + "&".join(f"{k}={quote(str(v), safe='%')}" for k, v in params.items())
        with requests.Session() as s:
            return s.send(req, timeout=60)

    def post(self, path: str, body: dict):
        return self.request("POST", path, json_body=body)

    def get(self, path: str, params: dict | None = None):
        return self.request("GET", path, params=params)


def assert_error_response(resp, status: int, code: str) -> dict:
    """A JSON error body as MLflow's server sends it, with this HTTP status and error_code."""
    assert resp.status_code == status, f"HTTP {resp.status_code}: {resp.text[:500]}"
    try:
        body = resp.json()
    except ValueError:
        pytest.fail(f"error body is not JSON: {resp.text[:500]!r}")
    assert body.get("error_code") == code, body
    assert isinstance(body.get("message"), str) and body["message"], body
    return body


def artifact_root_path(artifact_uri: str) -> str:
    """The path of a run's (or logged model's) artifact root under /api/2.0/mlflow-artifacts/
    artifacts/, from the artifact_uri the server handed out (mlflow-artifacts:/..., or an http URL
    into the artifacts service)."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "mlflow-artifacts":
        return parsed.path.strip("/")
    marker = "/api/2.0/mlflow-artifacts/artifacts/"
    if parsed.scheme in ("http", "https") and marker in parsed.path:
        return parsed.path.split(marker, 1)[1].strip("/")
    pytest.fail(f"artifact_uri {artifact_uri!r} does not point at the server's artifact service")


def metric_history(client, run_id: str, key: str) -> list[tuple[float, int, int]]:
    return sorted((m.value, m.step, m.timestamp) for m in client.get_metric_history(run_id, key))


def dump(obj) -> str:
    return json.dumps(obj, indent=1, default=str)[:2000]
