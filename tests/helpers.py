"""What the plugin's tests share: synthetic apps and suites, pytest runs, report
readers and comparisons, sample results. Test modules import from here, never from
each other."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_klaudbiusz.results.aggregate import build_report
from pytest_klaudbiusz.results.metrics import CHECKS
from pytest_klaudbiusz.results.model import AppResult, AppStatus

REPO = Path(__file__).resolve().parents[1]

# --- synthetic apps and suites -------------------------------------------------------

SUBPROCESS_TIMEOUT = 180

SERVER = textwrap.dedent(
    """\
    import http.server, json, os
    ROWS = json.load(open("rows.json"))

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            body = json.dumps(ROWS).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = answer

        def log_message(self, *args):
            pass

    address = ("127.0.0.1", int(os.environ["PORT"]))
    http.server.ThreadingHTTPServer(address, Handler).serve_forever()
    """
)
SERVE = "python3 server.py"
TEST_FILE = "def test_app(klaud_app):\n    klaud_app.check()\n"
#: The synthetic apps talk to their tests through files outside their working copy (counts,
#: pid files, a python-only PATH), which a sandbox hides: they run unsandboxed. The sandbox
#: itself is tested in apps/test_sandbox.py; the shipped corpus runs in it (e2e/test_plugin_xdist).
INI = "[pytest]\nklaud_apps = apps\nklaud_sandbox = none\n"
NO_TRACKING = "--klaud-no-tracking"


def make_app(
    root: Path,
    name: str,
    *,
    install: str = "",
    build: str = "true",
    typecheck: str = "",
    start: str = SERVE,
    test: str = "true",
    rows: Any = ({"region": "emea", "revenue": 10},),
    data: bool = True,
    files: dict[str, str] | None = None,
    manifest: str | None = None,
) -> Path:
    """A synthetic app under ``root/apps``; ``manifest`` replaces the generated klaud.toml."""
    app = root / "apps" / name
    app.mkdir(parents=True)
    commands = {
        "install": install,
        "build": build,
        "typecheck": typecheck,
        "start": start,
        "test": test,
    }
    lines = ["[commands]", *(f"{k} = {json.dumps(v)}" for k, v in commands.items())]
    lines += ["[runtime]", "ready_timeout = 10"]
    if data:
        lines += ["[[data]]", 'method = "GET"', 'path = "/api/rows"']
    (app / "klaud.toml").write_text(
        manifest if manifest is not None else "\n".join(lines) + "\n", encoding="utf-8"
    )
    if start == SERVE:
        (app / "server.py").write_text(SERVER, encoding="utf-8")
        (app / "rows.json").write_text(json.dumps(list(rows)), encoding="utf-8")
    for rel, text in (files or {}).items():
        path = app / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return app


def path_without_npm(root: Path) -> str:
    """A PATH with python3 only: an app that calls npm meets a machine without it."""
    folder = root / "bin-python-only"
    folder.mkdir()
    (folder / "python3").symlink_to(Path(sys.executable).resolve())  # not a shell shim
    return str(folder)


def make_suite(pytester: pytest.Pytester, test_file: str = TEST_FILE) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_evals=test_file)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*args, timeout=SUBPROCESS_TIMEOUT)


def read_report(folder: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(
        (folder / "evaluation_report.json").read_text(encoding="utf-8")
    )
    return report


def apps_by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {app["app_name"]: app for app in report["apps"]}


def checks(app: dict[str, Any]) -> dict[str, bool | None]:
    return {name: app["metrics"][name] for name in CHECKS}


def outcomes(app: dict[str, Any]) -> dict[str, str]:
    return {stage["name"]: stage["outcome"] for stage in app["stages"]}


# --- comparing reports -----------------------------------------------------------------

#: Values that legitimately differ between two runs of the same apps.
VOLATILE_METRICS = ("build_time_sec", "startup_time_sec")
# random per run: the port, database names, and the port an app picked for itself
VOLATILE_DETAILS = ("port", "startup_time_sec", "databases", "port_hint")
VOLATILE_STAGE_KEYS = ("duration_sec", "log_tail", "started_at")
VOLATILE_SUMMARY = ("avg_build_time_sec", "avg_startup_time_sec")


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """The report without timings, ports and timestamps (present-or-absent is kept)."""

    def app(entry: dict[str, Any]) -> dict[str, Any]:
        metrics = {
            k: (v is None if k in VOLATILE_METRICS else v) for k, v in entry["metrics"].items()
        }
        details = {k: v for k, v in entry["details"].items() if k not in VOLATILE_DETAILS}
        stages = [
            {k: v for k, v in stage.items() if k not in VOLATILE_STAGE_KEYS}
            for stage in entry["stages"]
        ]
        return {**entry, "metrics": metrics, "details": details, "stages": stages}

    summary = {k: (v is None if k in VOLATILE_SUMMARY else v) for k, v in report["summary"].items()}
    return {
        "schema_version": report["schema_version"],
        "summary": summary,
        "counts": report["counts"],
        "apps": [app(entry) for entry in report["apps"]],
        "mode": report["run"]["mode"],
    }


def assert_same_report(serial: dict[str, Any], parallel: dict[str, Any]) -> None:
    left, right = comparable(serial), comparable(parallel)
    assert [a["app_name"] for a in left["apps"]] == [a["app_name"] for a in right["apps"]]
    for one, other in zip(left["apps"], right["apps"], strict=True):
        assert one == other, one["app_name"]
    assert left == right


def subprocess_env() -> dict[str, str]:
    paths = [str(REPO), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


# --- sample results ------------------------------------------------------------------


def metrics(**values: Any) -> dict[str, Any]:
    base = {
        "build_success": True,
        "runtime_success": True,
        "type_safety": None,
        "tests_pass": True,
        "databricks_connectivity": True,
        "data_returned": True,
        "local_runability_score": 5,
        "deployability_score": 5,
        "appeval_100": 100.0,
        "build_time_sec": 10.0,
        "startup_time_sec": 2.0,
        "test_coverage_pct": None,
    }
    return {**base, **values}


def app(name: str, status: AppStatus = AppStatus.EVALUATED, **kwargs: Any) -> AppResult:
    return AppResult(name, f"apps/{name}", status=status, **kwargs)


def sample() -> list[AppResult]:
    return [
        app("charlie", metrics=metrics(databricks_connectivity=None, data_returned=None,
                                       local_runability_score=3, build_time_sec=20.0,
                                       startup_time_sec=None, test_coverage_pct=80.0,
                                       appeval_100=90.0),
            custom_metrics={"ui_score": 0.5}),
        app("alpha", metrics=metrics(), custom_metrics={"ui_score": 1.0, "latency_ms": 120.0},
            generation_metrics={"cost_usd": 2.0, "input_tokens": 1000, "output_tokens": 100,
                                "turns": 10}),
        app("bravo", metrics=metrics(build_success=False, runtime_success=False, tests_pass=False,
                                     databricks_connectivity=False, data_returned=None,
                                     type_safety=True, local_runability_score=1,
                                     deployability_score=2, appeval_100=0.5, build_time_sec=30.0,
                                     startup_time_sec=None, test_coverage_pct=40.0),
            generation_metrics={"cost_usd": 1.0, "input_tokens": 3000, "output_tokens": 300,
                                "turns": 20}),
        # never rated, whatever stale metrics they carry
        app("delta", AppStatus.INFRA_ERROR, error="npm is not installed",
            metrics={"build_success": False, "tests_pass": False, "appeval_100": 0.0},
            custom_metrics={"ui_score": 0.0},
            generation_metrics={"cost_usd": 1.0, "input_tokens": 500, "output_tokens": 50}),
        app("echo", AppStatus.NOT_RUN, metrics={"runtime_success": False}),
    ]  # fmt: skip


# --- apps with stages that pass or fail at will -----------------------------------------

N_APPS = 10


def write_apps(
    root: Path,
    names: list[str],
    failing_tests: set[str] = frozenset(),  # type: ignore[assignment]
    failing_build: set[str] = frozenset(),  # type: ignore[assignment]
) -> None:
    """Apps under ``root/apps`` (replacing any there) whose build and tests pass or fail."""
    shutil.rmtree(root / "apps", ignore_errors=True)
    for name in names:
        folder = root / "apps" / name
        folder.mkdir(parents=True)
        build = "false" if name in failing_build else "true"
        test = "false" if name in failing_tests else "true"
        (folder / "klaud.toml").write_text(
            f'[commands]\ninstall = ""\nbuild = "{build}"\nstart = ""\ntest = "{test}"\n',
            encoding="utf-8",
        )


APPS = [f"app{i:02d}" for i in range(N_APPS)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class MlflowServer:
    uri: str  # http://127.0.0.1:<port>
    root: Path  # holds mlflow.db, artifacts/ and server.log


# --- a tracked report ------------------------------------------------------------------

STARTED, FINISHED = "2026-11-26T06:10:12Z", "2026-11-26T06:14:40Z"
REPORT_FILES = ("evaluation_report.json", "EVALUATION_REPORT.md", "evaluation_report.csv")


def sample_result(i: int, generation: bool) -> AppResult:
    """App ``i`` of ``make_report``: app 0 an infrastructure error, every third one failing."""
    if i == 0:
        return AppResult("app 000", "/apps/app 000", status=AppStatus.INFRA_ERROR, error="no npm")
    passing = i % 3 != 1
    return AppResult(
        app_name=f"app {i:03d}",
        app_dir=f"/apps/app {i:03d}",
        template_type="trpc",
        metrics={
            **dict.fromkeys(CHECKS, passing),
            "local_runability_score": 4,
            "deployability_score": 3,
            "appeval_100": 87.5 if passing else 1.2,
            "build_time_sec": 10.0 + i,
        },
        issues=[] if passing else ["no tests", "build failed"],
        generation_metrics=(
            {"cost_usd": 0.25, "input_tokens": 900, "output_tokens": 300, "turns": 6}
            if generation
            else None
        ),
    )


def make_report(n_apps: int = 4, generation: bool = True, mode: str = "mcp") -> dict[str, Any]:
    """A finished report of ``n_apps`` apps, as the plugin builds it."""
    run = {
        "mode": mode,
        "started_at": STARTED,
        "finished_at": FINISHED,
        "plugin_version": "0.1.0",
        "git_commit": "abc123",
        "git_branch": "main",
        "model_version": None,
        "apps_dir": "/apps",
        "mlflow_run_id": None,
        "tracking_uri": None,
        "experiment": None,
    }
    return build_report([sample_result(i, generation) for i in range(n_apps)], run)


def write_files(report: dict[str, Any], folder: Path) -> list[Path]:
    """Stand-ins for the three report files (the JSON is the report)."""
    folder.mkdir(parents=True)
    contents = (json.dumps(report), "# Evaluation report\n", "app_name\napp 000\n")
    paths = [folder / name for name in REPORT_FILES]
    for path, text in zip(paths, contents, strict=True):
        path.write_text(text)
    return paths


# --- a pytest session watched while it runs ------------------------------------------

WAIT_SEC = 120


class Session:
    """``pytest`` in its own process group, its output read as it comes."""

    def __init__(self, pytester: pytest.Pytester, *args: str) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-v", *args],
            cwd=pytester.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # a Ctrl-C sent to its group does not reach this test
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, condition: str, check: object) -> None:
        deadline = time.monotonic() + WAIT_SEC
        while not check():  # type: ignore[operator]
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"never saw {condition}:\n{''.join(self.lines)}")
            time.sleep(0.05)

    def finish(self) -> int:
        try:
            code = self.process.wait(WAIT_SEC)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
        self._reader.join(10)
        return code

    def has_line(self, *words: str) -> bool:
        return any(all(w in line for w in words) for line in self.lines)

    @property
    def output(self) -> str:
        return "".join(self.lines)
