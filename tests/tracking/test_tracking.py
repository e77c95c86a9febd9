"""The MLflow adapter against real stores: SQLite files, a real ``mlflow server``, processes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers import REPORT_FILES, STARTED, MlflowServer, make_report, subprocess_env, write_files
from mlflow_proxy import CountingProxy

from pytest_klaudbiusz.tracking.runs import MlflowTracker, TrackingError, log_report, run_name
from pytest_klaudbiusz.tracking.store import (
    DEFAULT_EXPERIMENT,
    MLFLOW_ENV_DEFAULTS,
    check_tracking_uri,
    configure_mlflow_environment,
    resolve_experiment,
    resolve_tracking_uri,
)

if TYPE_CHECKING:
    from helpers import MlflowServer
    from mlflow.tracking import MlflowClient

UNREACHABLE_ADVICE = (
    "start it, fix --klaud-tracking-uri / MLFLOW_TRACKING_URI, or pass --klaud-no-tracking"
)


@pytest.fixture(autouse=True)
def _fail_fast_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment the plugin sets up before it imports MLflow."""
    environ: dict[str, str] = {}
    configure_mlflow_environment(environ)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)


def client_for(uri: str) -> MlflowClient:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def epoch_ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1000


# --- pure resolution ------------------------------------------------------------------

DBX = {"DATABRICKS_HOST": "https://dbc.example.com", "DATABRICKS_TOKEN": "dapi1"}
LOCAL = "sqlite:////srv/my%20evals%20%25/mlflow.db"  # rootdir "/srv/my evals %"


@pytest.mark.parametrize(
    ("option", "environ", "expected"),
    [
        ("http://opt:5000", {"MLFLOW_TRACKING_URI": "http://env:5000", **DBX}, "http://opt:5000"),
        (None, {"MLFLOW_TRACKING_URI": "http://env:5000", **DBX}, "http://env:5000"),
        (None, DBX, "databricks"),
        (None, {"DATABRICKS_HOST": DBX["DATABRICKS_HOST"]}, LOCAL),
        (None, {"MLFLOW_TRACKING_URI": ""}, LOCAL),
    ],
)
def test_tracking_uri_precedence(
    option: str | None, environ: dict[str, str], expected: str
) -> None:
    assert resolve_tracking_uri(option, environ, Path("/srv/my evals %")) == expected


@pytest.mark.parametrize(
    ("option", "environ", "expected"),
    [
        ("opt", {"MLFLOW_EXPERIMENT_NAME": "/Shared/env"}, "opt"),
        (None, {"MLFLOW_EXPERIMENT_NAME": "/Shared/env"}, "/Shared/env"),
        (None, {}, DEFAULT_EXPERIMENT),
    ],
)
def test_experiment_precedence(option: str | None, environ: dict[str, str], expected: str) -> None:
    assert resolve_experiment(option, environ) == expected


def test_mlflow_environment_defaults_leave_user_values() -> None:
    environ = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "300"}
    configure_mlflow_environment(environ)
    assert environ == {**MLFLOW_ENV_DEFAULTS, "MLFLOW_HTTP_REQUEST_TIMEOUT": "300"}
    assert environ["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_importing_tracking_loads_neither_mlflow_nor_pytest() -> None:
    code = (
        "import sys, pytest_klaudbiusz.tracking.runs;"
        "print(sorted({m.split('.')[0] for m in sys.modules}"
        " & {'mlflow', 'pytest', '_pytest', 'pandas', 'sqlalchemy'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True
    )
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr


# --- preflight ------------------------------------------------------------------------


def test_closed_port_is_reported_in_one_line(closed_port: int) -> None:
    uri = f"http://127.0.0.1:{closed_port}"
    with pytest.raises(TrackingError) as info:
        check_tracking_uri(uri, {})
    assert str(info.value) == (
        f"MLflow tracking server {uri} is unreachable (connection refused): {UNREACHABLE_ADVICE}"
    )


@pytest.mark.parametrize(
    ("uri", "environ", "expected"),
    [
        ("ftp://example.com/runs", {}, "unsupported MLflow tracking URI 'ftp://example.com/runs'"),
        ("file:///tmp/mlruns", {}, "retired file store"),
        ("./mlruns", {}, "retired file store"),
        ("sqlite:////no/such/folder/mlflow.db", {}, "folder '/no/such/folder' of the tracking"),
        ("http://127.0.0.1:port", {}, "is unreachable (Port could not be cast"),
        ("https://me:s3cret@127.0.0.1:{port}", {}, "server https://127.0.0.1:{port} is unreach"),
        ("databricks", {"DATABRICKS_HOST": "https://dbc.example.com"}, "DATABRICKS_TOKEN are not"),
        (
            "databricks",
            {"DATABRICKS_HOST": "http://127.0.0.1:{port}", "DATABRICKS_TOKEN": "dapi1"},
            "Databricks host http://127.0.0.1:{port} does not answer (connection refused)",
        ),
    ],
)
def test_preflight_rejects(
    uri: str, environ: dict[str, str], expected: str, closed_port: int
) -> None:
    environ = {k: v.format(port=closed_port) for k, v in environ.items()}
    with pytest.raises(TrackingError) as info:
        check_tracking_uri(uri.format(port=closed_port), environ)
    message = str(info.value)
    assert expected.format(port=closed_port) in message
    assert "\n" not in message
    assert "s3cret" not in message


def test_preflight_accepts(tmp_path: Path, mlflow_server: MlflowServer) -> None:
    for uri, environ in [
        (f"sqlite:///{tmp_path}/mlflow.db", {}),
        ("sqlite:///mlflow.db", {}),  # relative to the current directory
        ("postgresql+psycopg2://user:pw@db.internal/mlflow", {}),  # no network check
        ("file:///tmp/mlruns", {"MLFLOW_ALLOW_FILE_STORE": "true"}),
        (mlflow_server.uri, {}),
        # Any HTTP answer proves a Databricks host is there (here a 404 from MLflow).
        ("databricks", {"DATABRICKS_HOST": mlflow_server.uri, "DATABRICKS_TOKEN": "dapi1"}),
    ]:
        check_tracking_uri(uri, environ)


# --- logging to real stores -----------------------------------------------------------


@pytest.fixture(params=["sqlite", "server"])
def store(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(tracking URI, experiment that does not exist yet)."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_tracking_uri"), DEFAULT_EXPERIMENT
    server: MlflowServer = request.getfixturevalue("mlflow_server")
    return server.uri, f"{DEFAULT_EXPERIMENT}-{uuid.uuid4().hex[:8]}"


def test_log_report_round_trip(store: tuple[str, str], tmp_path: Path) -> None:
    uri, experiment = store
    report = make_report()
    files = write_files(report, tmp_path / "app-eval")
    seen: list[str] = []

    run_id = log_report(report, files, uri, experiment, on_run_id=seen.append)

    assert seen == [run_id]
    client = client_for(uri)
    run = client.get_run(run_id)
    assert run.info.run_name == run_name(report) == "eval_mcp_2026-11-26T06:10:12Z"
    assert run.info.status == "FINISHED"
    assert run.info.start_time == epoch_ms(2026, 11, 26, 6, 10, 12)
    assert run.info.end_time == epoch_ms(2026, 11, 26, 6, 14, 40)
    assert run.info.experiment_id == client.get_experiment_by_name(experiment).experiment_id
    assert (
        run.data.tags.items()
        >= {
            "framework": "klaudbiusz",
            "mode": "mcp",
            "run_name": "eval_mcp_2026-11-26T06:10:12Z",
            "git_commit": "abc123",
            "git_branch": "main",
            "plugin_version": "0.1.0",
        }.items()
    )
    assert run.data.params == {
        "mode": "mcp",
        "total_apps": "4",
        "timestamp": STARTED,
        "model_version": "unknown",
    }
    expected = {k: float(v) for k, v in report["summary"].items() if v is not None}
    assert run.data.metrics == expected
    assert expected["total_apps"] == 4
    assert expected["infra_errors"] == 1
    assert expected["generation_cost_usd"] == 0.75
    assert {a.path for a in client.list_artifacts(run_id)} == {*REPORT_FILES, "apps_table.json"}

    table_file = client.download_artifacts(run_id, "apps_table.json", str(tmp_path))
    table = json.loads(Path(table_file).read_text())
    assert table["columns"][:4] == ["app_name", "template_type", "status", "build_success"]
    assert table["columns"][-6:] == [
        "appeval_100", "cost_usd", "input_tokens", "output_tokens", "turns", "issues"
    ]  # fmt: skip
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    assert [r["app_name"] for r in rows] == ["app 000", "app 001", "app 002", "app 003"]
    assert rows[0]["status"] == "infra_error"
    assert rows[1]["issues"] == "no tests; build failed"
    assert (rows[1]["build_success"], rows[2]["build_success"]) == (False, True)
    assert rows[2]["appeval_100"] == 87.5
    assert (rows[0]["cost_usd"], rows[1]["turns"]) == (None, 6)


def test_experiment_is_created_once_and_reused(store: tuple[str, str]) -> None:
    uri, experiment = store
    client = client_for(uri)
    assert client.get_experiment_by_name(experiment) is None

    first = log_report(make_report(mode="mcp"), [], uri, experiment)
    second = log_report(make_report(mode="vanilla_sdk"), [], uri, experiment)

    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id])
    assert {r.info.run_id for r in runs} == {first, second}
    assert {r.data.tags["mode"] for r in runs} == {"mcp", "vanilla_sdk"}


def test_concurrent_first_runs_share_one_new_experiment(mlflow_server: MlflowServer) -> None:
    """Openers that all find the experiment missing: one creates it, the rest reuse it."""
    experiment = f"/Shared/race-{uuid.uuid4().hex[:8]}"
    trackers = [MlflowTracker(mlflow_server.uri, experiment) for _ in range(4)]
    start = threading.Barrier(len(trackers))

    def open_run(tracker: MlflowTracker) -> str:
        start.wait()
        return tracker.open_run(make_report(2))

    with ThreadPoolExecutor(len(trackers)) as pool:
        run_ids = set(pool.map(open_run, trackers))

    client = client_for(mlflow_server.uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    assert {r.info.run_id for r in client.search_runs([experiment_id])} == run_ids
    assert len(run_ids) == 4


def test_sqlite_artifacts_stay_beside_the_database(
    tmp_path: Path, sqlite_tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # MLflow alone would write ./mlruns here
    uri = resolve_tracking_uri(None, {}, tmp_path)
    assert uri == sqlite_tracking_uri
    report = make_report()

    run_id = log_report(report, write_files(report, tmp_path / "app-eval"), uri, "/Shared/x")

    assert list(elsewhere.iterdir()) == []
    artifact_uri = client_for(uri).get_run(run_id).info.artifact_uri
    assert artifact_uri.startswith(str(tmp_path / "mlruns" / "Shared_x"))


def test_custom_metric_names_are_sanitised(sqlite_tracking_uri: str) -> None:
    uri = sqlite_tracking_uri
    report = make_report()
    report["summary"] |= {"pass@1 (%)": 0.5, "x" * 300: 1, "flag": True, "label": "text"}

    run_id = log_report(report, [], uri, DEFAULT_EXPERIMENT)

    metrics = client_for(uri).get_run(run_id).data.metrics
    assert (metrics["pass_1 ___"], metrics["x" * 250]) == (0.5, 1.0)
    assert "flag" not in metrics
    assert "label" not in metrics


def test_failure_inside_complete_run_marks_the_run_failed(
    tmp_path: Path, sqlite_tracking_uri: str
) -> None:
    uri = sqlite_tracking_uri
    seen: list[str] = []

    with pytest.raises(TrackingError) as info:
        log_report(make_report(), [tmp_path / "missing.md"], uri, "exp", on_run_id=seen.append)

    message = str(info.value)
    assert message.startswith(f"MLflow uploading the report files failed at {uri} (")
    assert "\n" not in message
    run = client_for(uri).get_run(seen[0])
    assert run.info.status == "FAILED"
    assert run.data.metrics["total_apps"] == 4  # logged before the failure


RACE = """
import json, sys, time
from pathlib import Path
import mlflow.tracking  # pay for the import before the start signal
from pytest_klaudbiusz.tracking.runs import log_report
from pytest_klaudbiusz.tracking.store import DEFAULT_EXPERIMENT
report, uri, ready, go = sys.argv[1:]
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.001)
print(log_report(json.loads(Path(report).read_text()), [], uri, DEFAULT_EXPERIMENT))
"""


def test_two_processes_initialise_a_fresh_sqlite_store_at_once(tmp_path: Path) -> None:
    """Without the init lock this fails every time (alembic "expected to match one row")."""
    rootdir = tmp_path / "my evals %"  # the URI must survive spaces and "%"
    rootdir.mkdir()
    uri = resolve_tracking_uri(None, {}, rootdir)
    report = tmp_path / "report.json"
    report.write_text(json.dumps(make_report()))
    go, ready = tmp_path / "go", [tmp_path / "ready0", tmp_path / "ready1"]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(report), uri, str(flag), str(go)],
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    deadline = time.monotonic() + 60
    try:
        while not all(f.exists() for f in ready) and all(p.poll() is None for p in processes):
            assert time.monotonic() < deadline, "the two processes did not get ready"
            time.sleep(0.01)
    finally:
        go.touch()  # never leave a process waiting
    outputs = [p.communicate(timeout=60) for p in processes]

    assert [p.returncode for p in processes] == [0, 0], outputs
    run_ids = {out.strip() for out, _ in outputs}
    assert len(run_ids) == 2
    assert (rootdir / "mlflow.db").is_file()
    client = client_for(uri)
    experiment_id = client.get_experiment_by_name(DEFAULT_EXPERIMENT).experiment_id
    runs = client.search_runs([experiment_id])
    assert {r.info.run_id for r in runs} == run_ids
    assert {r.info.status for r in runs} == {"FINISHED"}


# --- through a counting proxy in front of the real server -----------------------------


@pytest.fixture
def proxy(mlflow_server: MlflowServer) -> Iterator[CountingProxy]:
    proxy = CountingProxy(mlflow_server.uri)
    yield proxy
    proxy.stop()


def test_requests_do_not_grow_with_apps_or_metrics(proxy: CountingProxy, tmp_path: Path) -> None:
    experiment = f"/Shared/batching-{uuid.uuid4().hex[:8]}"
    log_report(make_report(2), [], proxy.uri, experiment)  # create the experiment first
    requests = {}
    for n_apps, generation in ((2, False), (200, True)):
        report = make_report(n_apps, generation)
        files = write_files(report, tmp_path / str(n_apps))
        proxy.requests.clear()
        log_report(report, files, proxy.uri, experiment, traces=False)  # traces: test_traces
        requests[n_apps] = list(proxy.requests)

    summaries = [make_report(n, g)["summary"] for n, g in ((2, False), (200, True))]
    metrics = [sum(v is not None for v in summary.values()) for summary in summaries]
    assert metrics[0] < metrics[1]  # more metrics, yet...
    assert len(requests[2]) == len(requests[200]) <= 20, requests
    assert sum("runs/log-batch" in r for r in requests[200]) == 1
    assert not any("log-metric" in r or "log-parameter" in r for r in requests[200])


def test_server_gone_before_complete_run(
    proxy: CountingProxy, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    report = make_report()
    seen: list[str] = []

    def server_stops(run_id: str) -> None:
        seen.append(run_id)
        proxy.stop()

    files = write_files(report, tmp_path / "app-eval")
    uri = proxy.uri.replace("//", "//me:s3cret@")  # never shown in messages
    with pytest.raises(TrackingError) as info:
        log_report(report, files, uri, "/Shared/gone", on_run_id=server_stops)

    assert str(info.value) == (
        f"MLflow logging metrics and params failed at {proxy.uri} (connection refused): check"
        " the server and --klaud-tracking-uri / MLFLOW_TRACKING_URI, or pass --klaud-no-tracking"
    )
    run = client_for(mlflow_server.uri).get_run(seen[0])
    assert run.info.status == "RUNNING"  # it could not even be marked FAILED
    assert run.data.metrics == {}
