"""Drives the real MLflow Python client against a tracking server started for the session.

MLFLOW_COMPAT_TARGET chooses the server:

* ``mlflow`` (the control): a real ``mlflow server`` (SQLite backend in a temp dir, artifacts
  proxied through the server at /api/2.0/mlflow-artifacts from ``--artifacts-destination``, a free
  port, default workers). MLFLOW_COMPAT_SERVER_PYTHON may name another venv's python whose
  ``mlflow server`` to start (e.g. a 3.x server for the 2.x client); default: this python.
* ``refit``: ``$REFIT_BIN serve --data-dir <tmp> --listen 127.0.0.1:<port>``; the admin token that
  refit's first start writes to ``<data-dir>/admin-token`` goes into MLFLOW_TRACKING_TOKEN.

Unset, the target is ``mlflow``. The server lives for the whole session in its own process group,
and the group is killed at the end (also when tests fail, on Ctrl-C/SIGTERM, and via
PR_SET_PDEATHSIG if pytest is killed outright). MLFLOW_COMPAT_KEEP_TMP=1 keeps the temp dir
(database, artifacts, server.log); MLFLOW_COMPAT_STARTUP_TIMEOUT (s, default 180) bounds startup.

Markers: ``refit_only`` (skipped against mlflow), ``mlflow3_server`` (what MLflow 3's server does
where 2.22's did otherwise: skipped when the control server is 2.x). Tests for one client major
version skip on the other (compat.only_mlflow3 / only_mlflow2). Run through scripts/mlflow-compat.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import pytest
import requests

TARGET = os.environ.get("MLFLOW_COMPAT_TARGET", "mlflow")
if TARGET not in ("mlflow", "refit"):
    raise pytest.UsageError(f"MLFLOW_COMPAT_TARGET must be 'mlflow' or 'refit', not {TARGET!r}")

# Before mlflow is imported anywhere: no telemetry from the client, and a 5xx must fail a test
# quickly instead of being retried for minutes (a user error must never be a 5xx anyway).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0.1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("MLFLOW_REGISTRY_URI", None)
if TARGET == "mlflow":
    os.environ.pop("MLFLOW_TRACKING_TOKEN", None)

STARTUP_TIMEOUT_S = float(os.environ.get("MLFLOW_COMPAT_STARTUP_TIMEOUT", "180"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "refit_only: needs refit's own features (trainer, gate) seen through MLflow; skipped "
        "against a real mlflow server",
    )
    for category in ("DeprecationWarning", "FutureWarning"):  # the clients' own, not ours
        config.addinivalue_line("filterwarnings", f"ignore::{category}")
    config.addinivalue_line(
        "markers",
        "mlflow3_server: checks what MLflow 3's server does where MLflow 2.22's server did "
        "otherwise (refit follows MLflow 3); skipped when the control is an MLflow 2.x server",
    )


def pytest_collection_modifyitems(config, items):
    if TARGET == "refit":
        return
    skip = pytest.mark.skip(reason="refit-only test (MLFLOW_COMPAT_TARGET=mlflow)")
    for item in items:
        if "refit_only" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config):
    import mlflow

    server_python = os.environ.get("MLFLOW_COMPAT_SERVER_PYTHON")
    extra = f", mlflow server from {server_python}" if TARGET == "mlflow" and server_python else ""
    return f"mlflow-compat: target={TARGET}, mlflow client {mlflow.__version__}{extra}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    target: str
    url: str
    token: str | None
    workdir: str
    process: subprocess.Popen
    log_path: str
    data_dir: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def mlflow2_server(self) -> bool:
        """The control is an MLflow 2.x server (refit and MLflow 3 servers: False)."""
        return self.target == "mlflow" and self.extra.get("version", "").startswith("2.")

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def log_tail(self, n: int = 60) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"


_live: list[subprocess.Popen] = []


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when pytest dies, even by SIGKILL (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _kill_group(proc: subprocess.Popen) -> None:
    """Ends the server's whole process group (uvicorn/gunicorn workers, job runners)."""
    pgid = proc.pid  # started with start_new_session: the leader's pid is the group's id
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.time() + wait
        while time.time() < deadline:
            proc.poll()  # reap the leader, or its zombie keeps the group alive
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            continue
        break
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
    if proc in _live:
        _live.remove(proc)


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_live):
        _kill_group(proc)


def _exit_on_signal(signum, frame):
    # SIGTERM/SIGHUP to pytest: stop as on Ctrl-C (pytest ends the session and tears the server
    # fixture down; atexit is the backstop) instead of dying with the server left running.
    raise KeyboardInterrupt(f"signal {signum}")


for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _exit_on_signal)


def _wait_until_up(server: Server, probe_path: str) -> None:
    deadline = time.time() + STARTUP_TIMEOUT_S
    last = None
    while time.time() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.target} server exited with {server.process.returncode} before it was "
                f"up; log:\n{server.log_tail()}"
            )
        try:
            r = requests.get(server.url + probe_path, headers=server.headers(), timeout=5)
            if r.status_code < 500:
                return
            last = f"HTTP {r.status_code}"
        except requests.RequestException as e:
            last = repr(e)
        time.sleep(0.25)
    raise RuntimeError(
        f"{server.target} server not up after {STARTUP_TIMEOUT_S}s ({last}); log:\n"
        f"{server.log_tail()}"
    )


def _start_mlflow(workdir: str) -> Server:
    port = _free_port()
    python = os.environ.get("MLFLOW_COMPAT_SERVER_PYTHON") or sys.executable
    log_path = os.path.join(workdir, "server.log")
    cmd = [
        python, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{workdir}/mlflow.db",
        "--artifacts-destination", os.path.join(workdir, "artifacts"),
        "--host", "127.0.0.1",
        "--port", str(port),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    # MLflow 3's background job runner (GenAI jobs, huey consumers) plays no part in tracking.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip
    _live.append(proc)
    server = Server("mlflow", f"http://127.0.0.1:{port}", None, workdir, proc, log_path)
    _wait_until_up(server, "/health")
    server.extra["version"] = requests.get(server.url + "/version", timeout=10).text.strip()
    return server


def _start_refit(workdir: str) -> Server:
    binary = os.environ.get("REFIT_BIN")
    if not binary:
        raise RuntimeError("MLFLOW_COMPAT_TARGET=refit needs REFIT_BIN (the refit binary)")
    binary = os.path.abspath(binary)
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"REFIT_BIN={binary} is not an executable file")
    port = _free_port()
    data_dir = os.path.join(workdir, "refit-data")
    log_path = os.path.join(workdir, "server.log")
    cmd = [binary, "serve", "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}"]
    # Its own SQLite in the data dir, whatever the caller's environment points refit at.
    drop = {"DATABASE_URL", "REFIT_CONFIG", "REFIT_DATA_DIR", "REFIT_LISTEN", "REFIT_DATABASE_URL"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("MLFLOW_")}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip
    _live.append(proc)
    server = Server("refit", f"http://127.0.0.1:{port}", None, workdir, proc, log_path, data_dir)
    # The admin token is written on first start, before or while the listener comes up.
    token_path = os.path.join(data_dir, "admin-token")
    deadline = time.time() + STARTUP_TIMEOUT_S
    while not (os.path.exists(token_path) and open(token_path).read().strip()):
        if proc.poll() is not None:
            raise RuntimeError(f"refit exited with {proc.returncode}; log:\n{server.log_tail()}")
        if time.time() > deadline:
            raise RuntimeError(f"refit wrote no {token_path}; log:\n{server.log_tail()}")
        time.sleep(0.1)
    server.token = open(token_path).read().strip()
    _wait_until_up(server, "/readyz")
    return server


@pytest.fixture(scope="session")
def server(request):
    import mlflow

    workdir = tempfile.mkdtemp(prefix=f"mlflow-compat-{TARGET}-")
    srv = None
    try:
        srv = _start_mlflow(workdir) if TARGET == "mlflow" else _start_refit(workdir)
        if srv.token:
            os.environ["MLFLOW_TRACKING_TOKEN"] = srv.token
        os.environ["MLFLOW_TRACKING_URI"] = srv.url
        os.environ["MLFLOW_REGISTRY_URI"] = srv.url
        mlflow.set_tracking_uri(srv.url)
        mlflow.set_registry_uri(srv.url)
        yield srv
    finally:
        try:
            while mlflow.active_run() is not None:
                mlflow.end_run()
        except Exception:
            pass
        if srv is not None and request.session.testsfailed:
            _server_log_tail.append(f"{srv.target} server log ({srv.log_path}), last lines:\n{srv.log_tail(40)}")
        if srv is not None:
            _kill_group(srv.process)
        else:
            for proc in list(_live):
                _kill_group(proc)
        if os.environ.get("MLFLOW_COMPAT_KEEP_TMP"):
            print(f"\nmlflow-compat: kept {workdir}", file=sys.stderr)
        else:
            for _ in range(10):  # a dying server may still be writing its last files
                shutil.rmtree(workdir, ignore_errors=True)
                if not os.path.exists(workdir):
                    break
                time.sleep(0.5)


_server_log_tail: list[str] = []


def pytest_terminal_summary(terminalreporter):
    for text in _server_log_tail:
        terminalreporter.section("server log")
        terminalreporter.write(text)


@pytest.fixture(autouse=True)
def _mlflow3_server_behaviour(request):
    if request.node.get_closest_marker("mlflow3_server") is None:
        return
    srv = request.getfixturevalue("server")
    if srv.mlflow2_server:
        pytest.skip(f"MLflow {srv.extra['version']} server behaves otherwise (refit follows MLflow 3)")


@pytest.fixture(scope="session")
def client(server):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=server.url, registry_uri=server.url)


@pytest.fixture(scope="session")
def raw(server):
    """Plain HTTP against the server, for what the client checks or splits before sending."""
    from compat import Raw

    return Raw(server.url, server.headers())


@pytest.fixture
def experiment_id(client):
    """A fresh experiment per test, so that searches see only that test's runs."""
    from compat import unique

    return client.create_experiment(unique("exp"))


@pytest.fixture(autouse=True)
def _no_active_run_left():
    yield
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run()
