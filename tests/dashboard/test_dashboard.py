"""The dashboard: its tables (pytest_klaudbiusz.dashboard.data), the real Streamlit app
driven by Streamlit's own testing API over a real SQLite MLflow store holding five logged
evaluations, ``pytest --klaud-ab`` by mode on that store, and ``pytest --klaud-dashboard``
serving on 127.0.0.1 (then stopped).

The evaluations, oldest first (10 apps each; the listed apps fail their tests):
mcp {app00}, vanilla {app00, app01, app02} (gate failed), mcp {app01}, vanilla {app00},
mcp {app00, app03} (gate failed; a screenshot of app03). So in the mcp grid app00 and app01
flip twice and app03 once, and the default A/B (B: latest mcp, A: latest vanilla) has one
discordant app, app03, passing with A only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port
from mlflow.tracking import MlflowClient

from pytest_klaudbiusz.ci import ab, gates
from pytest_klaudbiusz.ci.compare import RunRecord, record_from_report
from pytest_klaudbiusz.dashboard import data
from pytest_klaudbiusz.results.aggregate import build_report
from pytest_klaudbiusz.results.files import write_reports
from pytest_klaudbiusz.results.metrics import CHECKS
from pytest_klaudbiusz.results.model import AppResult, Outcome, StageOutcome
from pytest_klaudbiusz.tracking.history import History
from pytest_klaudbiusz.tracking.runs import log_report

APP = Path(data.__file__).with_name("app.py")
EXPERIMENT = "/Shared/klaudbiusz-evaluations"
APPS = [f"app{i:02d}" for i in range(10)]
HISTORY = [  # (mode, failing apps, gated)
    ("mcp", {"app00"}, False),
    ("vanilla", {"app00", "app01", "app02"}, True),
    ("mcp", {"app01"}, False),
    ("vanilla", {"app00"}, False),
    ("mcp", {"app00", "app03"}, True),
]
GATE = gates.parse_gate(fail_under=["tests_pass_rate=0.85"])


def evaluation(mode: str, failing: set[str], started: str, gated: bool) -> dict[str, Any]:
    apps = []
    for name in APPS:
        metrics: dict[str, Any] = dict.fromkeys(CHECKS)
        metrics.update(build_success=True, runtime_success=True, tests_pass=name not in failing)
        stages = [StageOutcome("test", Outcome.FAILED, reason="exit status 1")] * (name in failing)
        cost = {"cost_usd": 0.4 if mode == "mcp" else 0.2}
        apps.append(
            AppResult(
                name, f"/apps/{name}", metrics=metrics, stages=stages, generation_metrics=cost
            )
        )
    run = {"mode": mode, "started_at": started, "finished_at": started, "mlflow_run_id": None}
    report = build_report(apps, run)
    if gated:
        report["gate"] = gates.evaluate_gate(GATE, report)
    return report


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, _initialised_mlflow_db: Path) -> dict[str, Any]:
    """The five evaluations in a SQLite store: URI, run ids (oldest first), reports."""
    from PIL import Image

    root = tmp_path_factory.mktemp("dashboard-store")
    (root / "mlflow.db").write_bytes(_initialised_mlflow_db.read_bytes())
    uri = f"sqlite:///{root}/mlflow.db"
    run_ids, reports = [], []
    for number, (mode, failing, gated) in enumerate(HISTORY):
        report = evaluation(mode, failing, f"2026-11-2{number}T06:00:00Z", gated)
        files = write_reports(report, root / f"report{number}")
        run_ids.append(log_report(report, list(files.values()), uri, EXPERIMENT))
        reports.append(report)
    shot = root / "app03-home.png"
    Image.new("RGB", (8, 6), "red").save(shot)
    MlflowClient(tracking_uri=uri).log_artifact(run_ids[-1], str(shot), "screenshots")
    # mlflow's read paths once here, outside any in-process pytest run (see test_gates_e2e)
    history = History(uri, EXPERIMENT)
    assert history.report(run_ids[-1]) is not None
    assert history.artifacts(run_ids[-1], "screenshots", root / "read")
    return {"uri": uri, "run_ids": run_ids, "reports": reports, "root": root}


# --- the tables -----------------------------------------------------------------------------


def records() -> list[tuple[RunRecord, dict[str, Any]]]:
    out = []
    for number, (mode, failing, gated) in enumerate(HISTORY):
        report = evaluation(mode, failing, f"2026-11-2{number}T06:00:00Z", gated)
        report["run"]["mlflow_run_id"] = f"{number:032x}"
        out.append((record_from_report(report), report))
    return out


def test_trend_rows_mark_the_gate_and_come_oldest_first() -> None:
    rows = data.trend_rows([r for r, _ in reversed(records())])
    assert [(r["mode"], r["gate"]) for r in rows] == [
        ("mcp", data.NO_GATE),
        ("vanilla", "failed"),
        ("mcp", data.NO_GATE),
        ("vanilla", data.NO_GATE),
        ("mcp", "failed"),
    ]
    assert [r["tests_pass_rate"] for r in rows] == pytest.approx([0.9, 0.7, 0.9, 0.9, 0.8])
    assert rows[0][data.COST_PER_APP] == pytest.approx(0.4)
    assert rows[0][data.COST_PER_PASSING_APP] == pytest.approx(4.0 / 9)


def test_modes_and_cost_vs_quality() -> None:
    runs = [r for r, _ in records()]
    assert data.modes(runs) == ["mcp", "vanilla"]  # the latest run's mode first
    by_mode = {row["mode"]: row for row in data.cost_vs_quality(runs)}
    assert by_mode["mcp"]["runs"] == 3
    assert by_mode["vanilla"][data.COST_PER_APP] == pytest.approx(0.2)
    # quality: mean of build, runtime, tests (databricks n/a): vanilla (0.7 + 0.9) / 2
    assert by_mode["vanilla"][data.QUALITY] == pytest.approx((2.7 / 3 + 2.9 / 3) / 2)


def test_app_grid_counts_flips_between_pass_and_fail() -> None:
    mcp = [(r, rep) for r, rep in records() if r.mode == "mcp"]
    columns, rows = data.app_grid(list(reversed(mcp)))
    assert columns[:2] == ["app", "flips"] and len(columns) == 5
    assert columns[2].startswith("2026-11-20 06:00:00 mcp")  # oldest first
    assert [(r["app"], r["flips"]) for r in rows[:3]] == [("app00", 2), ("app01", 2), ("app03", 1)]
    assert [rows[0][c] for c in columns[2:]] == [data.FAIL, data.PASS, data.FAIL]
    mcp[0][1]["apps"][0]["status"] = "infra_error"  # app00 in the first run: not rated
    _, rows = data.app_grid(mcp)
    app00 = next(r for r in rows if r["app"] == "app00")
    assert (app00["flips"], app00[columns[2]]) == (1, data.INFRA)


def test_failing_apps_with_their_reasons() -> None:
    report = records()[-1][1]
    report["apps"][5].update(status="infra_error", error="worker died")
    assert data.failing_apps(report) == [
        {
            "app": "app00",
            "state": "FAIL",
            "failed checks": "tests_pass",
            "reasons": "test: exit status 1",
        },
        {
            "app": "app03",
            "state": "FAIL",
            "failed checks": "tests_pass",
            "reasons": "test: exit status 1",
        },
        {"app": "app05", "state": "infra error", "failed checks": "", "reasons": "worker died"},
    ]


def test_screenshots_are_matched_to_apps(tmp_path: Path) -> None:
    files = [
        tmp_path / p
        for p in ("shop.png", "shop-2-home.png", "shop/cart.jpg", "notes.txt", "other.png")
    ]
    found = data.screenshots_by_app(["shop", "shop-2"], files, tmp_path)
    assert found == {"shop": [files[0], files[2]], "shop-2": [files[1]]}


# --- the Streamlit app, through Streamlit's testing API -------------------------------------


@pytest.fixture
def app(store: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("KLAUD_DASHBOARD_URI", store["uri"])
    monkeypatch.setenv("KLAUD_DASHBOARD_EXPERIMENT", EXPERIMENT)
    return AppTest.from_file(str(APP), default_timeout=90).run()


def test_dashboard_shows_trends_grid_failures_screenshots_and_ab(
    app: Any, store: dict[str, Any]
) -> None:
    assert not app.exception, app.exception
    assert app.title[0].value == "klaudbiusz evaluations"
    assert "5 runs shown of the 5 newest read" in [c.value for c in app.caption]
    assert [t.label for t in app.tabs] == [
        "Trends",
        "Apps (mcp)",
        "Cost vs quality",
        "Latest failures",
        "A/B",
    ]
    frames = [d.value for d in app.dataframe]
    trend = frames[0]
    assert list(trend["gate"]) == [
        "failed",
        data.NO_GATE,
        data.NO_GATE,
        "failed",
        data.NO_GATE,
    ]  # newest first
    grid = frames[1]
    assert list(grid["app"][:3]) == ["app00", "app01", "app03"] and list(grid["flips"][:3]) == [
        2,
        2,
        1,
    ]
    failures = next(f for f in frames if "reasons" in f.columns)
    assert list(failures["app"]) == ["app00", "app03"]
    assert set(failures["reasons"]) == {"test: exit status 1"}
    [image] = app.image
    assert "app03: app03-home.png" in str(image.proto)
    reports = store["reports"]
    expected = ab.ab_test(reports[3], reports[4], "A", "B").verdict
    assert expected.startswith("no detectable difference on 10 apps: \u221210.0 pp")
    assert app.subheader[0].value == expected
    ab_table = next(f for f in frames if "McNemar p" in f.columns)
    assert ab_table["Only A"].iloc[0] == "1"


def test_dashboard_mode_filter_and_ab_choice(app: Any) -> None:
    app.sidebar.selectbox(key="mode").set_value("vanilla").run()
    assert not app.exception
    assert "2 runs shown of the 5 newest read" in [c.value for c in app.caption]
    assert app.tabs[1].label == "Apps (vanilla)"
    labels = app.selectbox(key="ab_a").options
    app.selectbox(key="ab_a").set_value(labels[-1]).run()  # the oldest mcp run, 9/10
    assert app.subheader[0].value.startswith("no detectable difference on 10 apps: \u221210.0 pp")


def test_dashboard_says_when_the_store_has_no_run(
    tmp_path: Path, _initialised_mlflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    (tmp_path / "mlflow.db").write_bytes(_initialised_mlflow_db.read_bytes())
    monkeypatch.setenv("KLAUD_DASHBOARD_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("KLAUD_DASHBOARD_EXPERIMENT", "Default")
    app = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not app.exception
    assert [i.value for i in app.info] == ["no finished evaluations in this experiment yet"]


# --- the commands ---------------------------------------------------------------------------


def test_klaud_ab_by_mode_on_the_store(pytester: pytest.Pytester, store: dict[str, Any]) -> None:
    # in-process: mlflow's read paths ran above (the store fixture and the app), so a second
    # import of its modules is not needed (see test_gates_e2e)
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--klaud-tracking-uri", store["uri"],
        "--klaud-ab", "vanilla", "mcp",
    )  # fmt: skip
    assert result.ret == 0, result.stderr.str()
    run_a, run_b = store["run_ids"][3], store["run_ids"][4]
    result.stdout.fnmatch_lines(
        [
            f"A: vanilla (run {run_a}, *)",
            f"B: mcp (run {run_b}, *)",
            "pass with A only (all checks): 1 (app03)",
            "verdict: no detectable difference on 10 apps: \u221210.0 pp, 95% CI *",
        ]
    )
    missing = pytester.runpytest(
        "--klaud-tracking-uri", store["uri"], "--klaud-ab", "mcp", "nomode"
    )
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(["ERROR: --klaud-ab: no finished run of mode 'nomode' *"])


def test_klaud_dashboard_serves_on_localhost_until_stopped(
    pytester: pytest.Pytester, store: dict[str, Any]
) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
         "--klaud-tracking-uri", store["uri"], f"--klaud-dashboard={port}"],
        cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline, health = time.monotonic() + 90, ""
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/_stcore/health", timeout=2
                ) as r:
                    health = r.read().decode()
                    break
            except OSError:
                time.sleep(0.3)
        assert health == "ok", (
            server.stdout.read().decode() if server.poll() is not None else health
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        output = server.stdout.read().decode()  # type: ignore[union-attr]
        assert f"dashboard of experiment {EXPERIMENT} at sqlite:" in output
        assert f"http://127.0.0.1:{port} (Ctrl-C stops it)" in output
        with pytest.raises(OSError):  # the Streamlit server stopped with it
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_klaud_dashboard_without_streamlit_says_how_to_install_it(
    pytester: pytest.Pytester,
) -> None:
    code = (
        "import sys, pytest; sys.modules['streamlit'] = None"  # as if it were not installed
        "; sys.exit(pytest.main(['--klaud-dashboard']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=pytester.path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.strip().splitlines() == [
        "ERROR: --klaud-dashboard needs Streamlit, which is not installed:"
        " pip install 'pytest-klaudbiusz[dashboard]'"
    ]


def test_klaud_dashboard_bad_port(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--klaud-dashboard=70000")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --klaud-dashboard: port 70000 is not a number 1-65535"])
