"""Shared fixtures for the plugin's own tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

# Imported here, before any test runs: the ``pytester`` fixture snapshots ``sys.modules``
# and, after its test, drops the modules imported meanwhile; mlflow imported inside such a
# test is then left half-unloaded, and the next ``from mlflow.tracking import ...`` fails.
from helpers import MlflowServer, free_port
from mlflow.tracking import MlflowClient

from pytest_klaudbiusz.apps.postgres import PostgresServer, SessionCluster, find_pg_ctl

MLFLOW_SERVER_START_TIMEOUT_SEC = 120.0


@pytest.fixture(autouse=True)
def _not_an_xdist_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """When this suite runs under xdist, the pytest runs a test starts must not believe
    they are xdist workers too (they would inherit PYTEST_XDIST_WORKER)."""
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nobody listens on (it was free a moment ago)."""
    return free_port()


def _wait_healthy(server: MlflowServer, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + MLFLOW_SERVER_START_TIMEOUT_SEC
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{server.uri}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    log = (server.root / "server.log").read_text(errors="replace")[-3000:]
    pytest.fail(f"mlflow server at {server.uri} did not become healthy:\n{log}")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real ``mlflow server`` on 127.0.0.1 (SQLite backend, artifacts served by it)."""
    root = tmp_path_factory.mktemp("mlflow-server")
    server = MlflowServer(f"http://127.0.0.1:{free_port()}", root)
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1",
        "--port", server.uri.rpartition(":")[2],
        "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
        "--artifacts-destination", str(root / "artifacts"),
    ]  # fmt: skip
    with (root / "server.log").open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "MLFLOW_DISABLE_TELEMETRY": "true",
                # No huey job consumers: they would add seven processes and seconds of CPU.
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            },
            start_new_session=True,  # its own process group, with its uvicorn child
        )
    try:
        _wait_healthy(server, process)
        yield server
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=3)  # uvicorn stops at once; the CLI parent can dawdle
        with suppress(ProcessLookupError):  # whatever of the group is still there
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="session")
def _initialised_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store; initialising one takes seconds (alembic migrations)."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def sqlite_tracking_uri(tmp_path: Path, _initialised_mlflow_db: Path) -> str:
    """``sqlite:///<tmp_path>/mlflow.db``: a private, empty, initialised MLflow store."""
    shutil.copyfile(_initialised_mlflow_db, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path}/mlflow.db"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL cluster for this test session (the plugin's own session cluster)."""
    pg_ctl = find_pg_ctl()
    if pg_ctl is None:
        pytest.fail("PostgreSQL is not installed (apt-get install postgresql)", pytrace=False)
    cluster = SessionCluster(pg_ctl)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
