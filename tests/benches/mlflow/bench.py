"""refit's MLflow REST API side by side with a real `mlflow server` (issue 5, "Performance").

Starts both servers itself, each on a free port and a fresh temporary directory, and stops their
process groups at the end (also on failure or Ctrl-C). Each workload runs against refit and then
against MLflow before the next one starts, so that a change of load on the machine during the run
shifts both sides of a ratio alike; only one server is busy at a time.

* refit: ``$REFIT_BIN serve --data-dir D --listen 127.0.0.1:P`` (its SQLite in D; the admin token
  its first start writes to D/admin-token goes to the client as MLFLOW_TRACKING_TOKEN and to the
  raw calls as ``Authorization: Bearer``);
* MLflow: ``python -m mlflow server --backend-store-uri sqlite:///D/mlflow.db
  --artifacts-destination D/artifacts --host 127.0.0.1 --port P`` (this venv's mlflow, default
  workers).

The same workloads run against each, in two modes:

* ``client``: MLflow's Python client (``MlflowClient``), as a user's script would call it;
* ``raw``: the same endpoints and JSON bodies as the client sends, over one kept-alive
  ``http.client`` connection per workload, without the client. A raw search's time ends when its
  answer has arrived; decoding the answer's JSON, the same work for either server's answer, is
  timed apart and printed beside the table.

Every timed call also has its caller's CPU time measured (this process's, ``time.process_time``):
the client's or ``http.client``'s own work, which any server's time adds to. MLflow's time divided
by the caller's CPU time in refit's run is the ``bound`` column: the most any server could reach on
this machine at the time of the run.

Workloads (counts divided by 10 with --quick): 2,000 sequential ``log_metric``; 200 ``log_batch`` of
100 metrics; 1,000 x (``create_run`` + ``log_batch`` of 2 params and 2 metrics), which fills the
experiment that ``search_runs`` (a metric and param filter, ordered by the metric, 50 repeats,
p50 and mean) then searches; 1,000 ``get_model_version_by_alias``. Every result is checked (all
metrics landed, the search returns exactly the expected runs in order, the alias resolves to the
expected version), so that a broken server cannot look fast.

Prints a table (refit, MLflow, ratio = refit's speed / MLflow's, the issue's target: >= 10x through
the client, >= 50x raw) and a JSON summary: as stdout's last line, or into the file --json names.
Exit status 1 when a call failed or a result was wrong (targets not met do not fail the run).

    py=$(scripts/python-env)
    REFIT_BIN=target/release/refit "$py" tests/benches/mlflow/bench.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from urllib.parse import urlencode

# Before mlflow is imported: a failed request fails at once (no retries with back-off that would
# hide a broken server or count retries as time), no telemetry, no run URLs printed to stdout.
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "0"
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"
os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
for _var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_TOKEN"):
    os.environ.pop(_var, None)

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, ViewType  # noqa: E402

STARTUP_TIMEOUT_S = 180.0
BATCH_SIZE = 100  # metrics per log_batch in the log_batch workload
TARGETS = {"client": 10.0, "raw": 50.0}
SEARCH_FILTER = "metrics.rmse < 0.5 AND params.model = 'rf'"
SEARCH_ORDER = ["metrics.rmse ASC"]
SEARCH_MAX_RESULTS = 1000


def search_body(experiment_id: str) -> dict:
    """The JSON body of the client's `search_runs` in the search workload."""
    return {
        "experiment_ids": [experiment_id], "run_view_type": "ACTIVE_ONLY",
        "filter": SEARCH_FILTER, "max_results": SEARCH_MAX_RESULTS, "order_by": SEARCH_ORDER,
    }  # fmt: skip

MODEL_NAME = "bench-model"
ALIAS = "champion"
API = "/api/2.0/mlflow"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A call failed or answered something wrong."""


class Reported(Exception):
    """A failure already recorded, which ends the run."""


# ---------------------------------------------------------------------------------------------
# Servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when this script dies, even by SIGKILL (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


_live: list[subprocess.Popen] = []


def kill_group(proc: subprocess.Popen) -> None:
    """Ends the server's whole process group (MLflow's uvicorn workers too)."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = None
    if pgid is not None:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.time() + wait
            gone = False
            while time.time() < deadline:
                try:
                    os.killpg(pgid, 0)
                except ProcessLookupError:
                    gone = True
                    break
                time.sleep(0.1)
            if gone:
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
        kill_group(proc)


def _exit_on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _exit_on_signal)


class Server:
    def __init__(self, name: str, workdir: str):
        self.name = name
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token: str | None = None
        self.version = ""
        self.log_path = os.path.join(workdir, "server.log")
        self.proc: subprocess.Popen | None = None

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def log_tail(self, n: int = 40) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def _spawn(self, cmd: list[str], env: dict) -> None:
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
        _live.append(self.proc)

    def _check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(
                f"{self.name} server exited with {self.proc.returncode}; log:\n{self.log_tail()}"
            )

    def _wait_ready(self, path: str) -> None:
        deadline = time.time() + STARTUP_TIMEOUT_S
        last = None
        while time.time() < deadline:
            self._check_alive()
            try:
                req = urllib.request.Request(self.url + path, headers=self.headers())
                with urllib.request.urlopen(req, timeout=5) as resp:
                    if resp.status == 200:
                        return
                    last = f"HTTP {resp.status}"
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}"
            except OSError as e:
                last = repr(e)
            time.sleep(0.2)
        raise BenchError(
            f"{self.name} not ready after {STARTUP_TIMEOUT_S:.0f}s ({last}); log:\n{self.log_tail()}"
        )

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc is not None:
            kill_group(self.proc)


class RefitServer(Server):
    def __init__(self, workdir: str, binary: str):
        super().__init__("refit", workdir)
        self.binary = binary

    def start(self) -> None:
        data_dir = os.path.join(self.workdir, "data")
        cmd = [self.binary, "serve", "--data-dir", data_dir, "--listen", f"127.0.0.1:{self.port}"]
        # Its own SQLite in the data dir, whatever the caller's environment points refit at.
        drop = {"DATABASE_URL", "REFIT_CONFIG", "REFIT_DATA_DIR", "REFIT_LISTEN",
                "REFIT_DATABASE_URL"}  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("MLFLOW_")}
        self._spawn(cmd, env)
        token_path = os.path.join(data_dir, "admin-token")
        deadline = time.time() + STARTUP_TIMEOUT_S
        while True:
            self._check_alive()
            if os.path.exists(token_path):
                with open(token_path) as f:
                    token = f.read().strip()
                if token:
                    self.token = token
                    break
            if time.time() > deadline:
                raise BenchError(f"refit wrote no {token_path}; log:\n{self.log_tail()}")
            time.sleep(0.05)
        self._wait_ready("/healthz")
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True)
        self.version = out.stdout.strip()


class MlflowServer(Server):
    def __init__(self, workdir: str):
        super().__init__("mlflow", workdir)

    def start(self) -> None:
        cmd = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{self.workdir}/mlflow.db",
            "--artifacts-destination", os.path.join(self.workdir, "artifacts"),
            "--host", "127.0.0.1",
            "--port", str(self.port),
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
        self._spawn(cmd, env)
        self._wait_ready("/health")
        with urllib.request.urlopen(self.url + "/version", timeout=10) as resp:
            self.version = "mlflow " + resp.read().decode().strip()


# ---------------------------------------------------------------------------------------------
# The two ways of calling: MLflow's client, and raw HTTP


def machine_busy() -> float:
    """The share of the machine's CPU time (all cores) spent busy over the next second."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
        idle = ticks[3] + ticks[4]  # idle, iowait
        return sum(ticks) - idle, sum(ticks)

    busy0, total0 = sample()
    time.sleep(1.0)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(1, total1 - total0)


def wait_until_quiet(limit_s: float = 180.0) -> None:
    """Waits until the machine is idle (under 10 % busy for two seconds in a row): MLflow's server
    keeps starting job consumers after it answers, and their imports would otherwise load the
    machine under the first workloads, whichever server they time."""
    start = time.time()
    quiet = 0
    while quiet < 2 and time.time() - start < limit_s:
        quiet = quiet + 1 if machine_busy() < 0.10 else 0
    log(f"waited {time.time() - start:.0f} s for the machine to be idle"
        + ("" if quiet >= 2 else f" (still busy after {limit_s:.0f} s; going on)"))


def now_ms() -> int:
    return int(time.time() * 1000)


def client_failed(call: str, e: Exception) -> BenchError:
    """Which client call failed, and what the client said the server answered."""
    return BenchError(f"MlflowClient.{call} failed: {type(e).__name__}: {e}")


class ClientOps:
    """Through MLflow's Python client."""

    mode = "client"

    def __init__(self, client: MlflowClient):
        self.c = client

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def log_metric(self, run_id, key, value, ts, step):
        try:
            self.c.log_metric(run_id, key, value, timestamp=ts, step=step)
        except Exception as e:
            raise client_failed(
                f"log_metric({run_id!r}, {key!r}, {value!r}, timestamp={ts}, step={step})", e
            ) from e

    def log_batch(self, run_id, metrics, params=()):
        try:
            self.c.log_batch(
                run_id,
                metrics=[Metric(k, v, ts, step) for k, v, ts, step in metrics],
                params=[Param(k, v) for k, v in params],
            )
        except Exception as e:
            raise client_failed(
                f"log_batch({run_id!r}, {len(metrics)} metrics e.g. {metrics[:1]}, "
                f"params={list(params)})",
                e,
            ) from e

    def create_run(self, experiment_id, start_time) -> str:
        try:
            return self.c.create_run(experiment_id, start_time=start_time).info.run_id
        except Exception as e:
            raise client_failed(f"create_run({experiment_id!r}, start_time={start_time})", e) from e

    def fetch_search(self, experiment_id):
        """One search: the runs and the next page token (the client decodes as it answers)."""
        try:
            runs = self.c.search_runs(
                [experiment_id], SEARCH_FILTER, run_view_type=ViewType.ACTIVE_ONLY,
                max_results=SEARCH_MAX_RESULTS, order_by=SEARCH_ORDER,
            )  # fmt: skip
        except Exception as e:
            raise client_failed(
                f"search_runs([{experiment_id!r}], {SEARCH_FILTER!r}, "
                f"max_results={SEARCH_MAX_RESULTS}, order_by={SEARCH_ORDER})",
                e,
            ) from e
        return runs, runs.token

    @staticmethod
    def decode_search(answer):
        return answer

    @staticmethod
    def search_rows(runs):
        """[(run_id, rmse, model)]"""
        return [
            (r.info.run_id, r.data.metrics.get("rmse"), r.data.params.get("model")) for r in runs
        ]

    def alias_version(self, name, alias) -> str:
        try:
            return self.c.get_model_version_by_alias(name, alias).version
        except Exception as e:
            raise client_failed(f"get_model_version_by_alias({name!r}, {alias!r})", e) from e


class RawOps:
    """The same endpoints and JSON bodies as the client sends, on one kept-alive connection."""

    mode = "raw"

    def __init__(self, server: Server):
        self.port = server.port
        self.base_headers = {"Content-Type": "application/json", **server.headers()}
        self.get_headers = server.headers()
        self.conn: http.client.HTTPConnection | None = None

    def open(self) -> None:
        """A fresh connection per workload (a server may drop one idle between workloads)."""
        self.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        self.conn.connect()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _call(self, method: str, path: str, body: bytes | None, headers: dict) -> bytes:
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise BenchError(
                f"{method} {path} answered HTTP {resp.status}: "
                f"{data[:1000].decode(errors='replace')}"
                + (f"\n  request body: {body[:500].decode(errors='replace')}" if body else "")
            )
        return data

    def post(self, path: str, body: dict) -> bytes:
        return self._call("POST", API + path, json.dumps(body).encode(), self.base_headers)

    def get(self, path_and_query: str) -> bytes:
        return self._call("GET", API + path_and_query, None, self.get_headers)

    def log_metric(self, run_id, key, value, ts, step):
        self.post("/runs/log-metric", {
            "run_uuid": run_id, "key": key, "value": value, "timestamp": ts, "step": step,
            "run_id": run_id,
        })  # fmt: skip

    def log_batch(self, run_id, metrics, params=()):
        body = {
            "run_id": run_id,
            "metrics": [
                {"key": k, "value": v, "timestamp": ts, "step": step} for k, v, ts, step in metrics
            ],
        }
        if params:
            body["params"] = [{"key": k, "value": v} for k, v in params]
        self.post("/runs/log-batch", body)

    def create_run(self, experiment_id, start_time) -> str:
        data = self.post("/runs/create", {
            "experiment_id": experiment_id, "user_id": "unknown", "start_time": start_time,
        })  # fmt: skip
        return json.loads(data)["run"]["info"]["run_id"]

    def fetch_search(self, experiment_id) -> bytes:
        """One search's answer as it came: the HTTP call without decoding its JSON."""
        return self.post("/runs/search", search_body(experiment_id))

    @staticmethod
    def decode_search(answer: bytes):
        body = json.loads(answer)
        return body.get("runs", []), body.get("next_page_token") or None

    @staticmethod
    def search_rows(runs):
        rows = []
        for r in runs:
            data = r.get("data", {})
            metrics = {m["key"]: m["value"] for m in data.get("metrics", [])}
            params = {p["key"]: p["value"] for p in data.get("params", [])}
            rows.append((r["info"]["run_id"], metrics.get("rmse"), params.get("model")))
        return rows

    def alias_path(self, name, alias) -> str:
        return "/registered-models/alias?" + urlencode({"name": name, "alias": alias})

    def alias_version(self, name, alias, path=None) -> str:
        data = self.get(path or self.alias_path(name, alias))
        return json.loads(data)["model_version"]["version"]


# ---------------------------------------------------------------------------------------------
# Workloads: each warms its connection up (untimed), times its calls, and then checks what the
# server did with them


def check(cond: bool, what: str) -> None:
    if not cond:
        raise BenchError(f"wrong result: {what}")


class Clock:
    """Times a block: wall time (`seconds`), and this process's CPU time (`cpu_seconds`): the
    caller's own work, which any server's time adds to."""

    def __enter__(self) -> Clock:
        self.cpu_seconds = -time.process_time()
        self.seconds = -time.perf_counter()
        return self

    def __exit__(self, *_exc) -> None:
        self.seconds += time.perf_counter()
        self.cpu_seconds += time.process_time()


def throughput(clock: Clock, n: int) -> dict:
    return {
        "count": n, "seconds": clock.seconds, "per_s": n / clock.seconds,
        "mean_ms": 1000 * clock.seconds / n, "caller_cpu_ms": 1000 * clock.cpu_seconds / n,
    }  # fmt: skip


class Target:
    """One started server, seen through both modes, and what was set up on it."""

    def __init__(self, server: Server):
        self.server = server
        self.name = server.name
        self.client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
        self.model_version: str | None = None
        self.experiments: dict[str, str] = {}  # mode -> experiment for the single-run workloads
        self.warm_runs: dict[str, str] = {}  # mode -> run that warm-up calls write to
        self.logged: dict[str, dict] = {}  # mode -> {run_id: (rmse, model)} of the runs created

    def activate(self) -> None:
        """The client's token for this server (read by MLflow's client on every request)."""
        if self.server.token:
            os.environ["MLFLOW_TRACKING_TOKEN"] = self.server.token
        else:
            os.environ.pop("MLFLOW_TRACKING_TOKEN", None)

    def ops(self, mode: str):
        return ClientOps(self.client) if mode == "client" else RawOps(self.server)


def w_log_metric(t: Target, ops, n: int) -> dict:
    client = t.client
    run_id = client.create_run(t.experiments[ops.mode]).info.run_id
    warm = t.warm_runs[ops.mode]
    ops.open()
    try:
        for i in range(5):
            ops.log_metric(warm, "warm", float(i), now_ms(), i)
        ts = now_ms()
        with Clock() as clock:
            for i in range(n):
                ops.log_metric(run_id, "loss", 1.0 / (i + 1), ts + i, i)
    finally:
        ops.close()
    history = client.get_metric_history(run_id, "loss")
    check(len(history) == n, f"log_metric: {len(history)} of {n} values in the history")
    check(sorted(m.step for m in history) == list(range(n)), "log_metric: steps in the history")
    got = client.get_run(run_id).data.metrics.get("loss")
    check(got == 1.0 / n, f"log_metric: latest loss {got}, expected {1.0 / n}")
    return throughput(clock, n)


def batch_metrics(keys, i: int, ts: int):
    return [(k, i + j / 1000, ts + i, i) for j, k in enumerate(keys)]


def w_log_batch(t: Target, ops, n: int) -> dict:
    client = t.client
    run_id = client.create_run(t.experiments[ops.mode]).info.run_id
    keys = [f"m{k:03d}" for k in range(BATCH_SIZE)]
    warm = t.warm_runs[ops.mode]
    ops.open()
    try:
        for i in range(2):
            ops.log_batch(warm, batch_metrics(keys, i, now_ms()))
        ts = now_ms()
        with Clock() as clock:
            for i in range(n):
                ops.log_batch(run_id, batch_metrics(keys, i, ts))
    finally:
        ops.close()
    metrics = client.get_run(run_id).data.metrics
    check(len(metrics) == BATCH_SIZE, f"log_batch: {len(metrics)} metric keys, expected {BATCH_SIZE}")
    check(
        all(metrics[k] == (n - 1) + j / 1000 for j, k in enumerate(keys)),
        "log_batch: latest values",
    )
    for k in (keys[0], keys[-1]):
        history = client.get_metric_history(run_id, k)
        check(len(history) == n, f"log_batch: {len(history)} of {n} values of {k}")
    return throughput(clock, n)


def run_values(i: int, n: int) -> tuple[float, str]:
    """Run i's rmse (a permutation of 0..n-1 over n, so distinct when gcd(37, n) == 1) and model."""
    return ((i * 37) % n) / n, ("rf" if i % 2 == 0 else "gbm")


def w_create_runs(t: Target, ops, n: int) -> dict:
    client = t.client
    experiment_id = client.create_experiment(f"bench-{ops.mode}-runs")
    logged: dict = {}
    t.logged.pop(ops.mode, None)
    ops.open()
    try:
        for _ in range(2):  # warm-up runs, in the other experiment
            ts = now_ms()
            rid = ops.create_run(t.experiments[ops.mode], ts)
            ops.log_batch(rid, [("rmse", 1.0, ts, 0)], [("model", "warm")])
        with Clock() as clock:
            for i in range(n):
                ts = now_ms()
                run_id = ops.create_run(experiment_id, ts)
                rmse, model = run_values(i, n)
                ops.log_batch(
                    run_id,
                    [("rmse", rmse, ts, 0), ("mae", rmse / 2, ts, 0)],
                    [("model", model), ("depth", str(i % 8))],
                )
                logged[run_id] = (rmse, model)
    finally:
        ops.close()
    t.logged[ops.mode] = {"experiment_id": experiment_id, "runs": logged}
    check(len(logged) == n, f"create_run: {len(logged)} distinct run ids for {n} runs")
    runs = client.search_runs([experiment_id], max_results=min(n + 1, 50000))
    check(len(runs) == n, f"create_run: the experiment holds {len(runs)} runs, expected {n}")
    for r in runs:
        want = logged.get(r.info.run_id)
        got = (r.data.metrics.get("rmse"), r.data.params.get("model"))
        check(want == got, f"create_run+log_batch: run {r.info.run_id} has {got}, expected {want}")
    return throughput(clock, n)


def w_search(t: Target, ops, reps: int) -> dict:
    created = t.logged.get(ops.mode) or {}
    if "experiment_id" not in created:
        raise BenchError("skipped: create_run + log_batch failed, so there is nothing to search")
    experiment_id, logged = created["experiment_id"], created["runs"]
    expected = sorted(
        (rmse, rid) for rid, (rmse, model) in logged.items() if rmse < 0.5 and model == "rf"
    )
    want_ids = [rid for _, rid in expected]
    check(0 < len(want_ids) < SEARCH_MAX_RESULTS, "search: expected matches fit one page")

    def verify(runs, token):
        rows = ops.search_rows(runs)
        ids = [r[0] for r in rows]
        check(token is None, f"search: a next page token ({token!r}) for {len(want_ids)} matches")
        check(
            set(ids) == set(want_ids) and len(ids) == len(want_ids),
            f"search: {len(ids)} runs returned, expected {len(want_ids)}"
            f" ({len(set(ids) - set(want_ids))} unexpected, {len(set(want_ids) - set(ids))} missing)",
        )
        check(ids == want_ids, "search: runs not in metrics.rmse ASC order")
        check(
            all(rmse == logged[rid][0] and model == "rf" for rid, rmse, model in rows),
            "search: returned metrics/params differ from those logged",
        )

    # Raw: the clock stops when the answer has arrived. Decoding its JSON is the caller's work,
    # the same for both servers' answers; it is timed apart and reported beside the figure.
    times, cpu_times, decode_times = [], [], []
    ops.open()
    try:
        for _ in range(2):  # warm-up, untimed
            verify(*ops.decode_search(ops.fetch_search(experiment_id)))
        for _ in range(reps):
            with Clock() as clock:
                answer = ops.fetch_search(experiment_id)
            fetched = time.perf_counter()
            runs, token = ops.decode_search(answer)
            times.append(clock.seconds)
            cpu_times.append(clock.cpu_seconds)
            decode_times.append(time.perf_counter() - fetched)
            verify(runs, token)
    finally:
        ops.close()
    extra = {}
    if isinstance(ops, RawOps):
        extra = {"decode_p50_ms": 1000 * statistics.median(decode_times), "bytes": len(answer)}
    return {
        **extra,
        "count": reps,
        "matches": len(want_ids),
        "runs": len(logged),
        "p50_ms": 1000 * statistics.median(times),
        "mean_ms": 1000 * statistics.fmean(times),
        "min_ms": 1000 * min(times),
        "max_ms": 1000 * max(times),
        "caller_cpu_ms": 1000 * statistics.median(cpu_times),
    }


def w_alias(t: Target, ops, n: int) -> dict:
    want = t.model_version
    if want is None:
        raise BenchError("skipped: the registered model's setup failed")
    got = []
    ops.open()
    try:
        for _ in range(5):  # warm-up, untimed
            check(ops.alias_version(MODEL_NAME, ALIAS) == want, "alias: warm-up call")
        if isinstance(ops, RawOps):
            path = ops.alias_path(MODEL_NAME, ALIAS)
            with Clock() as clock:
                for _ in range(n):
                    got.append(ops.alias_version(MODEL_NAME, ALIAS, path))
        else:
            with Clock() as clock:
                for _ in range(n):
                    got.append(ops.alias_version(MODEL_NAME, ALIAS))
    finally:
        ops.close()
    wrong = [v for v in got if v != want]
    check(
        len(got) == n and not wrong,
        f"alias: {len(wrong)} of {n} calls resolved {ALIAS!r} to another version "
        f"(e.g. {wrong[:1]}), expected {want}",
    )
    return throughput(clock, n)


def setup(t: Target) -> None:
    """Per mode an experiment and a warm-up run; a registered model whose version 2 (of 2) carries
    the alias (set on 1 first, then moved). Through the client, untimed."""
    client = t.client

    def step(call: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise client_failed(call, e) from e

    for mode in ("client", "raw"):
        name = f"bench-{mode}"
        t.experiments[mode] = step(f"create_experiment({name!r})", client.create_experiment, name)
        t.warm_runs[mode] = step(
            "create_run", client.create_run, t.experiments[mode]
        ).info.run_id
    experiment_id = step("create_experiment('bench-registry')", client.create_experiment,
                         "bench-registry")  # fmt: skip
    run_id = step("create_run", client.create_run, experiment_id).info.run_id
    model_dir = os.path.join(t.server.workdir, "model-src", "model")
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "weights.txt"), "w") as f:
        f.write("w=1\n")
    step(f"log_artifacts({run_id!r}, ..., 'model')", client.log_artifacts, run_id, model_dir,
         "model")  # fmt: skip
    step(f"set_terminated({run_id!r})", client.set_terminated, run_id)
    step(f"create_registered_model({MODEL_NAME!r})", client.create_registered_model, MODEL_NAME)
    source = f"runs:/{run_id}/model"
    for _ in range(2):
        mv = step(
            f"create_model_version({MODEL_NAME!r}, {source!r}, run_id={run_id!r})",
            client.create_model_version, MODEL_NAME, source, run_id=run_id,
        )  # fmt: skip
    check(mv.version == "2", f"setup: the second model version is {mv.version!r}")
    for version in ("1", mv.version):
        step(
            f"set_registered_model_alias({MODEL_NAME!r}, {ALIAS!r}, {version!r})",
            client.set_registered_model_alias, MODEL_NAME, ALIAS, version,
        )  # fmt: skip
    t.model_version = mv.version


# ---------------------------------------------------------------------------------------------
# The run: every workload in both modes, each against every server in turn

WORKLOADS = [
    # (key, label, unit, function, count key)
    ("log_metric", "log_metric", "calls/s", w_log_metric, "log_metric"),
    ("log_batch", f"log_batch of {BATCH_SIZE} metrics", "batches/s", w_log_batch, "log_batch"),
    ("create_run_log_batch", "create_run + log_batch", "runs/s", w_create_runs, "runs"),
    ("search_runs", "search_runs (filter + order)", "p50 ms", w_search, "search"),
    ("get_model_version_by_alias", "get_model_version_by_alias", "calls/s", w_alias, "alias"),
]


def error_text(e: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(e), e)).strip()


def run_all(targets: list[Target], counts: dict, results: dict, errors: list) -> None:
    """Fills results[(mode, workload)][server]; appends each failure to errors."""
    for mode in ("client", "raw"):
        for key, _label, _unit, fn, count_key in WORKLOADS:
            for t in targets:
                label = f"{t.name} {mode} {key}"
                log(f"{label} ...")
                t.activate()
                try:
                    res = fn(t, t.ops(mode), counts[count_key])
                except Exception as e:  # noqa: BLE001 - recorded and reported; the run fails
                    detail = error_text(e)
                    log(f"{label} FAILED: {detail}")
                    if not (isinstance(e, BenchError) and str(e).startswith("skipped")):
                        errors.append({"server": t.name, "mode": mode, "workload": key,
                                       "error": detail})  # fmt: skip
                    results.setdefault((mode, key), {})[t.name] = {"error": detail}
                    continue
                results.setdefault((mode, key), {})[t.name] = res
                shown = (
                    f"p50 {res['p50_ms']:.2f} ms" if "p50_ms" in res else f"{res['per_s']:.1f}/s"
                )
                log(f"{label}: {shown}")


# ---------------------------------------------------------------------------------------------
# Report


def fmt_side(res: dict | None, unit: str) -> str:
    if not res:
        return "-"
    if "error" in res:
        return "skipped" if "skipped" in res["error"] else "FAILED"
    if unit == "p50 ms":
        return f"{res['p50_ms']:.2f} ms (mean {res['mean_ms']:.2f})"
    return f"{res['per_s']:,.1f}/s ({res['mean_ms']:.2f} ms)"


def ms_of(res: dict) -> float:
    """A side's time per call: p50 for search, the mean otherwise."""
    return res["p50_ms"] if "p50_ms" in res else res["mean_ms"]


def ratio_of(refit: dict | None, ml: dict | None) -> float | None:
    """refit's speed / MLflow's speed."""
    if not refit or not ml or "error" in refit or "error" in ml:
        return None
    return ms_of(ml) / ms_of(refit)


def bound_of(refit: dict | None, ml: dict | None) -> float | None:
    """The most any server could reach: MLflow's time / the caller's own CPU time in refit's run."""
    if ratio_of(refit, ml) is None or refit["caller_cpu_ms"] <= 0:
        return None
    return ms_of(ml) / refit["caller_cpu_ms"]


def report(results: dict, counts: dict, servers: dict, args, errors: list) -> dict:
    rows = []
    summary_rows = []
    for mode in ("client", "raw"):
        for key, label, unit, _fn, count_key in WORKLOADS:
            sides = results.get((mode, key), {})
            refit, ml = sides.get("refit"), sides.get("mlflow")
            ratio, bound = ratio_of(refit, ml), bound_of(refit, ml)
            target = TARGETS[mode]
            met = None if ratio is None else ratio >= target
            n = counts[count_key]
            count = f"{counts['runs']:,} runs, x{n}" if key == "search_runs" else f"x{n:,}"
            rows.append([
                mode, f"{label} {count}", fmt_side(refit, unit), fmt_side(ml, unit),
                "-" if ratio is None else f"{ratio:,.1f}x",
                "-" if bound is None else f"{bound:,.1f}x", f">= {target:g}x",
                {True: "met", False: "NOT MET", None: "-"}[met],
            ])  # fmt: skip
            summary_rows.append({
                "mode": mode, "workload": key, "unit": unit, "count": n, "refit": refit,
                "mlflow": ml, "ratio": ratio, "bound": bound, "target": target, "met": met,
            })  # fmt: skip
    header = ["mode", "workload", "refit", "mlflow", "refit/mlflow", "bound", "target", ""]
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    right = {2, 3, 4, 5}
    lines = []
    for r in [header, ["-" * w for w in widths]] + rows:
        cells = [
            str(c).rjust(widths[i]) if i in right else str(c).ljust(widths[i])
            for i, c in enumerate(r)
        ]
        lines.append("  ".join(cells).rstrip())
    print(
        "refit vs mlflow server (SQLite, default workers), MLflow client "
        f"{mlflow.__version__}{' [--quick: counts / 10]' if args.quick else ''}"
    )
    for name, s in servers.items():
        print(f"  {name}: {s['version']} at {s['url']}")
    print(
        "  throughput: per second (mean ms per call; create_run + log_batch: per run, 2 calls);"
        " search: p50 (mean)\n  ratio = refit's speed / mlflow's speed\n"
        "  bound = mlflow's time / the caller's own CPU time per call in refit's run (the client's"
        " or http.client's work):\n  the most any server could reach on this machine now"
    )
    print()
    print("\n".join(lines))
    mets = [r["met"] for r in summary_rows]
    all_met = bool(mets) and all(m is True for m in mets)
    raw_search = results.get(("raw", "search_runs"), {})
    decoded = {n: r["decode_p50_ms"] for n, r in raw_search.items() if "decode_p50_ms" in r}
    if decoded:
        print()
        print(
            "raw search_runs: times end when the answer has arrived; decoding its JSON "
            "(json.loads, timed apart) took p50 "
            + ", ".join(
                f"{n} {ms:.2f} ms ({raw_search[n]['bytes'] / 1000:,.0f} kB)"
                for n, ms in decoded.items()
            )
        )
    print()
    if errors:
        print(f"FAILED ({len(errors)}):")
        for e in errors:
            print(f"  {e['server']} {e['mode']} {e['workload']}: {e['error']}")
    beyond = [
        f"{r['mode']} {r['workload']}"
        for r in summary_rows
        if r["bound"] is not None and r["bound"] < r["target"]
    ]
    print(
        f"targets met: {sum(m is True for m in mets)} of {len(mets)}"
        + (f"; beyond any server here (bound < target): {', '.join(beyond)}" if beyond else "")
        + (" (--quick: fewer calls, figures only indicative)" if args.quick else "")
    )
    return {
        "benchmark": "mlflow",
        "quick": args.quick,
        "mlflow_client": mlflow.__version__,
        "servers": servers,
        "counts": {**counts, "log_batch_size": BATCH_SIZE},
        "search": {"filter": SEARCH_FILTER, "order_by": SEARCH_ORDER,
                   "max_results": SEARCH_MAX_RESULTS},  # fmt: skip
        "targets": TARGETS,
        "results": summary_rows,
        "all_targets_met": all_met,
        "errors": errors,
        "ok": not errors,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="every count divided by 10")
    ap.add_argument("--json", metavar="FILE", help="write the JSON summary here (not to stdout)")
    ap.add_argument(
        "--servers", default="refit,mlflow",
        help="comma-separated subset of refit,mlflow (default both; ratios need both)",
    )  # fmt: skip
    ap.add_argument("--keep-tmp", action="store_true", help="keep the servers' temporary dirs")
    args = ap.parse_args()
    names = [s.strip() for s in args.servers.split(",") if s.strip()]
    if not names or any(n not in ("refit", "mlflow") for n in names) or len(set(names)) < len(names):
        ap.error("--servers takes refit, mlflow or both")

    scale = 10 if args.quick else 1
    counts = {
        "log_metric": 2000 // scale,
        "log_batch": 200 // scale,
        "runs": 1000 // scale,
        "search": 50 // scale,
        "alias": 1000 // scale,
    }
    binary = None
    if "refit" in names:
        binary = os.environ.get("REFIT_BIN")
        if not binary:
            ap.error("REFIT_BIN must name the refit binary (e.g. target/release/refit)")
        binary = os.path.abspath(binary)
        if not os.access(binary, os.X_OK):
            ap.error(f"REFIT_BIN={binary} is not an executable file")

    results: dict = {}
    errors: list = []
    servers: dict = {}
    started: list[Server] = []
    targets: list[Target] = []
    current = "-"
    try:
        for name in names:
            current = name
            workdir = tempfile.mkdtemp(prefix=f"refit-bench-mlflow-{name}-")
            server = RefitServer(workdir, binary) if name == "refit" else MlflowServer(workdir)
            started.append(server)
            log(f"starting {name} (workdir {workdir})")
            server.start()
            servers[name] = {"version": server.version, "url": server.url}
            if name == "refit":
                servers[name]["binary"] = binary
                servers[name]["binary_mtime"] = time.strftime(
                    "%Y-%m-%dT%H:%M:%S", time.localtime(os.path.getmtime(binary))
                )
            log(f"{name} up at {server.url} ({server.version}); setting up")
            t = Target(server)
            t.activate()
            try:
                setup(t)
            except Exception as e:  # noqa: BLE001 - the alias workload is skipped, reported
                detail = error_text(e)
                log(f"{name} setup FAILED: {detail}")
                errors.append({"server": name, "mode": "setup", "workload": "setup",
                               "error": detail})  # fmt: skip
                if len(t.warm_runs) < 2:
                    raise Reported() from e
            targets.append(t)
        current = "-"
        wait_until_quiet()
        run_all(targets, counts, results, errors)
        for server in started:
            if any(e["server"] == server.name for e in errors):
                log(f"{server.name} log ({server.log_path}), last lines:\n{server.log_tail()}")
    except Reported:
        pass
    except Exception as e:  # noqa: BLE001 - a server did not start: reported
        detail = error_text(e)
        log(f"FAILED: {detail}")
        errors.append({"server": current, "mode": "-", "workload": "start", "error": detail})
    finally:
        for server in started:
            server.stop()
        os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
        for server in started:
            if args.keep_tmp:
                log(f"kept {server.workdir}")
                continue
            for _ in range(10):  # a dying server may still be writing its last files
                shutil.rmtree(server.workdir, ignore_errors=True)
                if not os.path.exists(server.workdir):
                    break
                time.sleep(0.5)

    summary = report(results, counts, servers, args, errors)
    text = json.dumps(summary)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
        log(f"JSON summary written to {args.json}")
    else:
        print(text)
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
