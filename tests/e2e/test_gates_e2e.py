"""Quality gates and ``pytest --klaud-compare`` end to end: real pytest sessions evaluating
synthetic apps into real tracking stores (a SQLite file and a real ``mlflow server``).

Most sessions run in-process (pytester), which is fast once mlflow is imported; an
in-process run drops the modules it imported when it ends, and some of mlflow's do not
survive being imported twice in one process, so a module fixture takes every mlflow path
the sessions take once first. The sessions that must start clean (which modules a run
imports, xdist) run in subprocesses.

The apps are instant (``klaud.toml`` commands ``true``/``false``, no server), so every app
fails ``runtime_success`` and its pytest case fails: the gate, not the cases, decides the
exit status. Outcomes between runs are changed by rewriting the apps' ``build``/``test``
commands, so every verdict, per-app diff and McNemar p-value below is computed by hand.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from helpers import APPS, INI, N_APPS, SUBPROCESS_TIMEOUT, TEST_FILE, read_report, run, write_apps

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True, scope="module")
def _mlflow_warmed_up_before_pytester(
    tmp_path_factory: pytest.TempPathFactory, _initialised_mlflow_db: Path, mlflow_server: Any
) -> None:
    """The tests read (and one writes) the stores with mlflow in this process. pytester drops
    the modules a test imported when the test ends, and some of mlflow's cannot be imported
    twice in a process (numpy; the importlib_metadata backport patches the stdlib for good):
    so every mlflow path the tests take, on SQLite and over HTTP, runs once here first."""
    from mlflow.tracking import MlflowClient

    from pytest_klaudbiusz.ci.compare import record_from_report, trend_data
    from pytest_klaudbiusz.results.aggregate import build_report
    from pytest_klaudbiusz.results.files import write_reports
    from pytest_klaudbiusz.results.model import AppResult
    from pytest_klaudbiusz.results.trend import write_trend_png
    from pytest_klaudbiusz.tracking.history import History
    from pytest_klaudbiusz.tracking.runs import log_report

    folder = tmp_path_factory.mktemp("warm-up")
    shutil.copyfile(_initialised_mlflow_db, folder / "mlflow.db")
    run = {
        "mode": "warm",
        "started_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:00:00Z",
    }
    report = build_report([AppResult("a", "/apps/a", metrics={"build_success": True})], run)
    files = list(write_reports(report, folder / "reports").values())
    for uri in (f"sqlite:///{folder}/mlflow.db", mlflow_server.uri):
        experiment = f"warm-up-{uuid.uuid4().hex[:8]}"
        run_id = log_report(report, files, uri, experiment)
        history = History(uri, experiment)
        assert history.recent(1, mode="warm")[0].run_id == run_id
        assert history.report(run_id) is not None
        MlflowClient(tracking_uri=uri).list_artifacts(run_id)
    write_trend_png(trend_data([record_from_report(report)], "warm"), folder / "trend.png")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No caller's mode, store, warehouse or CI summary file leaks into the runs."""
    for name in (
        "EVAL_MODE",
        "DATABRICKS_HOST",
        "DATABRICKS_TOKEN",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_EXPERIMENT_NAME",
        "GITHUB_STEP_SUMMARY",
    ):
        monkeypatch.delenv(name, raising=False)


class Evaluations:
    """Runs evaluations of the synthetic apps into one store, one second apart at least
    (run names and start times have second resolution, and "previous" orders by them)."""

    def __init__(self, pytester: pytest.Pytester, uri: str, experiment: str) -> None:
        self.pytester, self.uri, self.experiment = pytester, uri, experiment
        self.store_args = ("--klaud-tracking-uri", uri, "--klaud-experiment", experiment)
        self._last_second = 0
        pytester.makeini(INI)
        pytester.makepyfile(test_evals=TEST_FILE)

    def evaluate(self, *args: str, **outcomes: set[str]) -> tuple[pytest.RunResult, dict[str, Any]]:
        write_apps(self.pytester.path, APPS, **outcomes)
        while int(time.time()) <= self._last_second:
            time.sleep(0.05)
        result = self.pytester.runpytest("-p", "no:cacheprovider", *self.store_args, *args)
        # after the run: its start time (whole seconds) is at most this, the next one's later
        self._last_second = int(time.time())
        return result, read_report(self.pytester.path / "app-eval")

    def compare(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest("-p", "no:cacheprovider", *self.store_args, *args)


def log_run(
    evals: Evaluations,
    mode: str,
    started: str,
    failing_tests: set[str] = frozenset(),  # type: ignore[assignment]
    failing_build: set[str] = frozenset(),  # type: ignore[assignment]
) -> str:
    """Log a report of the apps as an evaluation would have (a failed build skips runtime,
    and no app here has a server, so runtime always fails; tests run after install)."""
    from pytest_klaudbiusz.results.aggregate import build_report
    from pytest_klaudbiusz.results.files import write_reports
    from pytest_klaudbiusz.results.model import AppResult
    from pytest_klaudbiusz.tracking.runs import log_report

    apps = [
        AppResult(
            name,
            f"/apps/{name}",
            metrics={
                "build_success": name not in failing_build,
                "runtime_success": False,
                "type_safety": None,
                "tests_pass": name not in failing_tests,
                "databricks_connectivity": None,
                "data_returned": None,
            },
        )
        for name in APPS
    ]
    run = {"mode": mode, "started_at": started, "finished_at": started, "mlflow_run_id": None}
    report = build_report(apps, run)
    files = write_reports(report, evals.pytester.path / "logged" / started.replace(":", ""))
    return log_report(report, list(files.values()), evals.uri, evals.experiment)


def client_for(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


@pytest.fixture(params=["sqlite", "server"])
def store(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(tracking URI, a fresh experiment name) on a SQLite file and on a real server."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_tracking_uri"), "/Shared/klaudbiusz-evaluations"
    server = request.getfixturevalue("mlflow_server")
    return server.uri, f"/Shared/klaudbiusz-gates-{uuid.uuid4().hex[:8]}"


def rules_of(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (r["rule"], r["measured"], r["limit"], r["passed"], r["apps"])
        for r in report["gate"]["rules"]
    ]


def test_gate_against_the_previous_run_and_compare_the_runs(
    pytester: pytest.Pytester, store: tuple[str, str]
) -> None:
    uri, experiment = store
    evals = Evaluations(pytester, uri, experiment)

    # run A: no gate, pytest's usual exit status (every app fails runtime_success)
    result_a, report_a = evals.evaluate(failing_tests={"app00", "app01"})
    assert result_a.ret == pytest.ExitCode.TESTS_FAILED
    assert "gate" not in report_a
    run_a = report_a["run"]["mlflow_run_id"]
    assert report_a["summary"]["tests_pass_rate"] == pytest.approx(0.8)

    # run B: app00 fixed, app02-04 regressed -> 0.8 to 0.6, 3 new failures, 1 fix
    result_b, report_b = evals.evaluate(
        "--klaud-max-drop",
        "tests_pass_rate=0.1",
        "--klaud-max-new-failures",
        "3",
        "--klaud-fail-under",
        "build_success_rate=1",
        failing_tests={"app01", "app02", "app03", "app04"},
    )
    run_b = report_b["run"]["mlflow_run_id"]
    assert result_b.ret == pytest.ExitCode.TESTS_FAILED
    gate = report_b["gate"]
    assert gate["verdict"] == "failed"
    assert gate["baseline"]["kind"] == "previous"
    assert gate["baseline"]["run_id"] == run_a
    assert rules_of(report_b) == [
        ("build_success_rate >= 1", 1.0, 1.0, True, []),
        (
            "tests_pass_rate drops at most 0.1 vs baseline",
            pytest.approx(0.2),
            0.1,
            False,
            ["app02", "app03", "app04"],
        ),
        (
            "at most 3 apps newly failing a check vs baseline",
            3.0,
            3.0,
            True,
            ["app02 (tests_pass)", "app03 (tests_pass)", "app04 (tests_pass)"],
        ),
        ("at least 50% of the evaluated apps also in the baseline", 1.0, 0.5, True, []),
    ]
    assert gate["moved_apps"]["regressed"] == {f"app0{i}": ["tests_pass"] for i in (2, 3, 4)}
    assert gate["moved_apps"]["fixed"] == {"app00": ["tests_pass"]}
    result_b.stdout.fnmatch_lines(
        [
            "*= quality gate: FAILED (1 of 4 rules failed) =*",
            f"baseline: previous run {run_a} (eval_manual_*)",
            "passed  build_success_rate >= 1: measured 100.0%, limit 100.0%",
            "FAILED  tests_pass_rate drops at most 0.1 vs baseline: measured 60.0% vs 80.0%"
            " (20.0 pp worse), limit 10.0 pp worse",
            "        apps: app02, app03, app04",
            "passed  at most 3 apps newly failing a check vs baseline: measured 3, limit 3",
            "*",
            "apps vs baseline (10 in common): 3 regressed (app02, app03, app04),"
            " 1 fixed (app00), 0 new, 0 gone",
            "the gate decides the exit status: 1 *",
        ]
    )
    # the verdict is on the MLflow run too, and the trend chart is one of its artifacts
    client = client_for(uri)
    run = client.get_run(run_b)
    assert run.data.tags["gate_verdict"] == "failed"
    assert run.data.tags["gate_baseline"] == run_a
    assert run.data.tags["gate_failed_rules"] == "tests_pass_rate drops at most 0.1 vs baseline"
    assert {k: v for k, v in run.data.metrics.items() if k.startswith("gate_")} == {
        "gate_passed": 0.0,
        "gate_rules": 4.0,
        "gate_rules_failed": 1.0,
        "gate_new_failures": 3.0,
    }
    assert "trend.png" in {a.path for a in client.list_artifacts(run_b)}
    trend = report_b["trend"]
    assert [r["values"]["tests_pass_rate"] for r in trend["runs"]] == [
        pytest.approx(0.8),
        pytest.approx(0.6),
    ]
    png = pytester.path / "app-eval" / "trend.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    markdown = (pytester.path / "app-eval" / "EVALUATION_REPORT.md").read_text(encoding="utf-8")
    assert "## ❌ Quality gate: FAILED (1 of 4 rules failed)" in markdown
    assert "![rates of the last 2 manual runs](trend.png)" in markdown

    # run C: same outcomes as B; B is now the baseline: nothing moved, the gate holds and
    # decides the exit status although every app's case failed
    result_c, report_c = evals.evaluate(
        "--klaud-max-drop",
        "tests_pass_rate=0",
        "--klaud-max-new-failures",
        "0",
        "--klaud-trend-runs=0",
        failing_tests={"app01", "app02", "app03", "app04"},
    )
    assert "trend" not in report_c
    assert not png.exists()  # no stale chart beside a report without a trend
    result_c.assert_outcomes(failed=N_APPS)
    assert result_c.ret == pytest.ExitCode.OK
    assert report_c["gate"]["verdict"] == "passed"
    assert report_c["gate"]["baseline"]["run_id"] == run_b
    result_c.stdout.fnmatch_lines(
        ["*= quality gate: PASSED =*", "the gate decides the exit status: 0"]
    )

    # --klaud-compare-runs A B: the per-app diff and the exact McNemar test (b=3, c=1)
    compared = evals.compare("--klaud-compare-runs", run_a, run_b)
    assert compared.ret == 0
    lines = compared.stdout.lines
    assert "regressed (pass -> fail): 3" in lines
    assert "fixed (fail -> pass): 1" in lines
    assert "  app00                               tests_pass" in lines
    mcnemar = next(line for line in lines if line.startswith("tests_pass_rate") and "noise" in line)
    # p = 2 * P[X <= 1], X ~ Bin(4, 1/2) = 2 * 5/16 = 0.625
    assert mcnemar.split() == [
        "tests_pass_rate", "80.0%", "60.0%", "10", "3", "1", "0.625", "within", "noise",
    ]  # fmt: skip
    assert "tests_pass_rate                       60.0%       80.0%       -20.0 pp worse" in lines
    assert not (pytester.path / "app-eval" / "x").exists()

    # --klaud-compare=2: the two latest runs, C and B (unchanged), with their gates
    recent = evals.compare("--klaud-compare=2")
    assert recent.ret == 0
    recent.stdout.fnmatch_lines(
        [
            "MLflow Evaluation Run Comparison",
            "2 most recent finished runs (all modes) in experiment *",
            "*",
            "Recent Runs",
            "*",
            "#   Run Name * Mode * Date * Gate",
            "*",
            f"#1  {report_c['run']['started_at'].join(['eval_manual_', ''])} * manual * passed",
            f"#2  {report_b['run']['started_at'].join(['eval_manual_', ''])} * manual * failed",
        ]
    )
    assert "tests_pass_rate                       60.0%       60.0%       unchanged" in (
        recent.stdout.lines
    )
    assert "regressed (pass -> fail): 0" in recent.stdout.lines


def test_compare_by_mode_with_markdown_for_ci(
    pytester: pytest.Pytester, sqlite_tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three runs logged the way the plugin logs them (the evaluations themselves are
    exercised above), then ``--klaud-compare`` as CI would run it."""
    evals = Evaluations(pytester, sqlite_tracking_uri, "/Shared/klaudbiusz-evaluations")
    log_run(evals, "mcp", "2026-11-24T06:00:00Z", failing_tests={"app00"})
    log_run(evals, "vanilla_sdk", "2026-11-25T06:00:00Z", failing_build=set(APPS[:5]))
    log_run(evals, "mcp", "2026-11-26T06:00:00Z", failing_tests={"app00", "app01"})

    only_mcp = evals.compare("--klaud-compare", "--klaud-compare-mode", "mcp")
    assert only_mcp.ret == 0
    only_mcp.stdout.fnmatch_lines(["2 most recent finished runs (mode mcp) in *"])
    assert "vanilla_sdk" not in only_mcp.stdout.str()
    # --klaud-mode on the command line filters the same way (it was silently ignored)
    by_mode = evals.compare("--klaud-compare", "--klaud-mode", "mcp")
    assert by_mode.stdout.lines == only_mcp.stdout.lines
    # the default metrics keep the output short; --klaud-metrics picks them, or all
    every = evals.compare("--klaud-compare", "--klaud-mode", "mcp", "--klaud-metrics", "all")
    assert "total_apps" in every.stdout.str() and "total_apps" not in by_mode.stdout.str()
    picked = evals.compare("--klaud-compare", "--klaud-metrics", "tests_pass_rate")
    tables = picked.stdout.lines[: picked.stdout.lines.index("Apps: Latest vs Previous")]
    rows = [line.split()[0] for line in tables if line.endswith(("%", "worse", "better"))]
    assert rows == ["tests_pass_rate"] * 3  # all runs, latest vs previous, mean by mode
    bad = evals.compare("--klaud-compare", "--klaud-metrics", "test_pass_rate")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(
        ["ERROR: --klaud-metrics: unknown metric * (did you mean tests_pass_rate?)"]
    )

    step_summary = pytester.path / "step_summary.md"
    step_summary.write_text("# earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    result = evals.compare("--klaud-compare=3", "--klaud-summary-md", "ci/compare.md")
    assert result.ret == 0
    lines = result.stdout.lines
    # per-mode means over the shown runs: mcp 0.9 and 0.8 -> 0.85; vanilla 1.0 (its builds
    # failed, tests still ran); build: mcp 1.0, vanilla 0.5
    start = lines.index("Mean by Mode (over the runs shown)")
    end = lines.index("Apps: Latest vs Previous")
    means = {line.split()[0]: line.split()[1:] for line in lines[start + 2 : end] if line}
    assert means["Metric"] == ["mcp", "(2)", "vanilla_sdk", "(1)"]
    assert means["build_success_rate"] == ["100.0%", "50.0%"]
    assert means["tests_pass_rate"] == ["85.0%", "100.0%"]
    # latest (mcp) vs previous (vanilla_sdk): the build rate rose, the tests rate fell
    assert "build_success_rate                    100.0%      50.0%       +50.0 pp better" in lines
    assert "tests_pass_rate                       80.0%       100.0%      -20.0 pp worse" in lines

    markdown = (pytester.path / "ci" / "compare.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Evaluation runs compared\n")
    assert "| Metric | mcp (2 runs) | vanilla_sdk (1 run) |" in markdown
    assert "| build_success_rate | 100.0% | 50.0% | +50.0 pp 🟢 better |" in markdown
    assert "![rates of the last mcp runs](compare-trend.png)" in markdown
    assert (pytester.path / "ci" / "compare-trend.png").read_bytes()[:4] == b"\x89PNG"
    summary = step_summary.read_text(encoding="utf-8")
    assert summary.startswith("# earlier step\n# Evaluation runs compared\n")
    assert "| build_success_rate | 100.0% | 50.0% | +50.0 pp 🟢 better |" in summary
    assert ".png" not in summary  # a local image does not render on a CI page


def test_baseline_file_update_gate_informational_without_mlflow(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A committed baseline file: no tracking store involved, so mlflow is never imported."""
    pytester.makeini(INI)
    pytester.makepyfile(test_evals=TEST_FILE)
    pytester.makeconftest(
        "import sys\n"
        "def pytest_unconfigure(config):\n"
        "    with open('modules.txt', 'w') as out:\n"
        "        out.write(' '.join(m for m in ('mlflow', 'matplotlib') if m in sys.modules))\n"
    )
    golden = pytester.path / "golden" / "evaluation_report.json"
    base = ("--klaud-no-tracking", "-p", "no:cacheprovider", "--klaud-baseline", str(golden))

    # first run creates the baseline on purpose; its baseline rules cannot be checked yet
    write_apps(pytester.path, APPS, failing_tests={"app09"})
    first = run(pytester, *base, "--klaud-baseline-update", "--klaud-max-new-failures", "0")
    assert first.ret == pytest.ExitCode.OK
    first.stdout.fnmatch_lines(
        [
            "*= quality gate: PASSED =*",
            f"baseline: {golden} (does not exist yet)",
            "skipped at most 0 apps newly failing a check vs baseline: measured n/a, limit 0"
            " [not checked: no baseline yet (this run becomes it)]",
            "the gate decides the exit status: 0",
            f"baseline updated: {golden}",
        ]
    )
    assert json.loads(golden.read_text())["summary"]["tests_pass_rate"] == pytest.approx(0.9)

    # app03 breaks its build (and so its runtime is skipped): one app, one new failure
    write_apps(pytester.path, APPS, failing_tests={"app09"}, failing_build={"app03"})
    step_summary = pytester.path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    second = run(pytester, *base, "--klaud-max-new-failures", "0", "--klaud-summary-md", "gate.md")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    assert second.ret == pytest.ExitCode.TESTS_FAILED
    report = read_report(pytester.path / "app-eval")
    assert rules_of(report)[0] == (
        "at most 0 apps newly failing a check vs baseline",
        1.0,
        0.0,
        False,
        ["app03 (build_success)"],
    )
    assert report["gate"]["baseline"]["kind"] == "file"
    assert (pytester.path / "modules.txt").read_text() == ""  # neither mlflow nor matplotlib
    gate_md = (pytester.path / "gate.md").read_text(encoding="utf-8")
    assert "## ❌ Quality gate: FAILED (1 of 2 rules failed)" in gate_md
    assert "| app03 | regressed (pass → fail) | build_success |" in gate_md
    assert "## ❌ Quality gate: FAILED (1 of 2 rules failed)" in step_summary.read_text()
    second.stdout.fnmatch_lines(
        [f"Markdown summary: {pytester.path / 'gate.md'}", "Markdown summary appended to *"]
    )
    # golden unchanged without --klaud-baseline-update
    assert json.loads(golden.read_text())["summary"]["build_success_rate"] == 1.0

    # informational: the same failing gate is printed and recorded but never fails the job
    third = run(pytester, *base, "--klaud-max-new-failures", "0", "--klaud-gate-informational")
    assert third.ret == pytest.ExitCode.OK
    third.stdout.fnmatch_lines(
        [
            "*= quality gate: FAILED (1 of 2 rules failed) (informational) =*",
            "*",
            "informational: the gate does not decide the exit status",
        ]
    )
    gate = read_report(pytester.path / "app-eval")["gate"]
    assert (gate["verdict"], gate["informational"]) == ("failed", True)


def test_gate_in_pyproject_decides_the_exit_status_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(
        """
        [tool.pytest.ini_options]
        klaud_apps = "apps"
        klaud_tracking = false
        klaud_fail_under = ["build_success_rate=0.9", "tests_pass_rate=0.7"]
        klaud_fail_over = ["infra_errors=0"]
        """
    )
    pytester.makepyfile(test_evals=TEST_FILE)
    write_apps(pytester.path, APPS, failing_tests={"app00", "app01", "app02"})
    passing = run(pytester, "-p", "no:cacheprovider", "-n", "2")
    passing.assert_outcomes(failed=N_APPS)
    assert passing.ret == pytest.ExitCode.OK
    passing.stdout.fnmatch_lines(["*= quality gate: PASSED =*"])
    assert read_report(pytester.path / "app-eval")["gate"]["verdict"] == "passed"

    # the command line adds to (and for the same metric overrides) the ini rules
    failing = run(pytester, "-p", "no:cacheprovider", "-n", "2", "--klaud-fail-under",
                  "tests_pass_rate=0.8")  # fmt: skip
    assert failing.ret == pytest.ExitCode.TESTS_FAILED
    failing.stdout.fnmatch_lines(
        [
            "*= quality gate: FAILED (1 of 3 rules failed) =*",
            "passed  build_success_rate >= 0.9: *",
            "FAILED  tests_pass_rate >= 0.8: measured 70.0%, limit 80.0%",
            "        apps: app00, app01, app02",
            "passed  infra_errors <= 0: measured 0, limit 0",
        ]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--klaud-fail-under", "build_rate=0.9"),
            "ERROR: --klaud-fail-under 'build_rate=0.9': unknown metric 'build_rate' (did you"
            " mean build_success_rate?); *",
        ),
        (("--klaud-max-drop", "tests_pass_rate"), "ERROR: --klaud-max-drop 'tests_pass_rate': *"),
        (("--klaud-fail-under", "tests_pass_rate=80"), "ERROR: * (write tests_pass_rate=0.8 *"),
        (("--klaud-max-new-failures", "some"), "ERROR: --klaud-max-new-failures 'some': *"),
        (("--klaud-baseline", "latest"), "ERROR: --klaud-baseline 'latest': use previous, *"),
        (("--klaud-baseline-update",), "ERROR: --klaud-baseline-update needs --klaud-baseline*"),
        (("--klaud-trend-runs", "-1"), "ERROR: --klaud-trend-runs '-1': use a whole number*"),
        (
            ("--klaud-max-new-failures", "0", "--klaud-baseline", "missing.json"),
            "ERROR: baseline report */missing.json does not exist: *",
        ),
        (
            ("--klaud-max-new-failures", "0", "--klaud-baseline", "bad.json"),
            "ERROR: baseline: */bad.json: not an evaluation report (not JSON: *",
        ),
        (
            ("--klaud-max-new-failures", "0", "--klaud-tracking-uri", "{store}"),
            "ERROR: baseline: MLflow experiment '/Shared/klaudbiusz-evaluations' does not exist*",
        ),
        (
            (
                "--klaud-max-drop",
                "tests_pass_rate=1%",
                "--klaud-baseline",
                "0" * 32,
                "--klaud-tracking-uri",
                "{store}",
            ),
            f"ERROR: baseline: MLflow run {'0' * 32} does not exist at *",
        ),
        (("--klaud-compare", "--klaud-tracking-uri", "{absent}"), "ERROR: no MLflow store at *"),
        (("--klaud-compare", "--klaud-tracking-uri", "{nofolder}"), "ERROR: folder * does not*"),
        (("--klaud-compare=0",), "ERROR: --klaud-compare 0: use a whole number from 1"),
        (("--klaud-compare-runs", "a.json", "b.json"), "ERROR: */a.json: cannot read *"),
    ],
)
def test_bad_gates_and_baselines_are_one_line_usage_errors_before_any_app_runs(
    pytester: pytest.Pytester,
    sqlite_tracking_uri: str,
    args: tuple[str, ...],
    message: str,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_evals=TEST_FILE)
    write_apps(pytester.path, ["only"])
    (pytester.path / "bad.json").write_text("{not json")
    absent = f"sqlite:///{pytester.path}/absent.db"
    nofolder = f"sqlite:///{pytester.path}/absent/mlflow.db"
    args = tuple(
        a.format(store=sqlite_tracking_uri, absent=absent, nofolder=nofolder) for a in args
    )
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, result.stderr.str()
    result.stderr.fnmatch_lines([message])
    assert not (pytester.path / "app-eval").exists()  # stopped before any app ran


def test_ini_rules_are_named_in_their_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI + "klaud_fail_over =\n    cost_usd=1\n")
    pytester.makepyfile(test_evals=TEST_FILE)
    write_apps(pytester.path, ["only"])
    result = pytester.runpytest("--klaud-no-tracking")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: klaud_fail_over (ini) 'cost_usd=1': unknown metric 'cost_usd'; use a summary*"]
    )


def test_a_custom_metric_nobody_recorded_is_a_usage_error_at_the_end(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_evals="def test_app(klaud_app):\n    klaud_app.record('lighthouse', 0.9)\n"
    )
    write_apps(pytester.path, APPS[:2])
    ok = pytester.runpytest("--klaud-no-tracking", "--klaud-fail-under", "avg_lighthouse=0.8")
    assert ok.ret == pytest.ExitCode.OK
    typo = pytester.runpytest("--klaud-no-tracking", "--klaud-fail-under", "avg_lighthose=0.8")
    assert typo.ret == pytest.ExitCode.USAGE_ERROR
    typo.stdout.fnmatch_lines(
        [
            "*= quality gate: ERROR =*",
            "ERROR: --klaud-fail-under avg_lighthose: this evaluation has no metric"
            " 'avg_lighthose' (no app recorded it); check its name",
        ]
    )
    assert read_report(pytester.path / "app-eval")["gate"]["verdict"] == "error"


def test_too_few_apps_in_common_with_the_baseline_fails_the_gate(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_evals=TEST_FILE)
    write_apps(pytester.path, ["a", "x1", "x2", "x3"])
    golden = pytester.path / "golden.json"
    args = ("-p", "no:cacheprovider", "--klaud-no-tracking", "--klaud-baseline", str(golden))
    pytester.runpytest(*args, "--klaud-baseline-update")
    write_apps(pytester.path, ["a", "b", "c", "d"])
    result = pytester.runpytest(*args, "--klaud-max-new-failures", "0")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "passed  at most 0 apps newly failing a check vs baseline: measured 0, limit 0",
            "FAILED  at least 50% of the evaluated apps also in the baseline: measured 25%,"
            " limit 50% [1 of 4 evaluated apps are in the baseline]",
            "apps vs baseline (1 in common): 0 regressed, 0 fixed, 3 new, 3 gone",
        ]
    )


def test_importing_the_plugin_loads_no_gate_compare_or_chart_code() -> None:
    code = (
        "import sys, pytest_klaudbiusz.plugin\n"
        "names = ('mlflow', 'matplotlib', 'pytest_klaudbiusz.ci.gates',"
        " 'pytest_klaudbiusz.ci.compare',"
        " 'pytest_klaudbiusz.tracking.history', 'pytest_klaudbiusz.results.trend')\n"
        "print(sorted(m for m in names if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert out.stdout.strip() == "[]"
