"""Ctrl-C and SIGTERM in the middle of an evaluation, through real signals.

The session stops, the running app's processes (daemons included) are killed, the partial
report is written and marked incomplete, the MLflow run ends KILLED, and the exit status
is pytest's "interrupted" (2).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import psutil
import pytest
from helpers import NO_TRACKING, Session, make_app, make_suite, read_report
from mlflow.tracking import MlflowClient

WAIT_SEC = 120


def hanging_build(marks: Path) -> str:
    """A build that starts a setsid daemon, records both pids, says it started, and hangs."""
    pids, started = marks / "pids", marks / "started"
    return (
        f"echo $$ >> '{pids}'; (setsid sleep 300 & echo $! >> '{pids}'); sleep 0.2;"
        f" touch '{started}'; sleep 300"
    )


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize(
    ("workers", "how"),
    [
        pytest.param((), "SIGTERM", id="serial-sigterm"),
        pytest.param((), "Ctrl-C", id="serial-ctrl-c"),
        pytest.param(("-n", "2"), "SIGTERM", id="xdist-sigterm-to-controller"),
        pytest.param(("-n", "2"), "Ctrl-C", id="xdist-ctrl-c-to-group"),
    ],
)
def test_interrupted_evaluation_is_reported_incomplete_and_leaves_nothing_running(
    pytester: pytest.Pytester, sqlite_tracking_uri: str, workers: tuple[str, ...], how: str
) -> None:
    marks = pytester.path / "marks"
    marks.mkdir()
    make_app(pytester.path, "a-quick")
    make_app(pytester.path, "b-hangs", build=hanging_build(marks), start="")
    make_app(pytester.path, "c-waits")
    make_suite(pytester)
    baseline = ("--klaud-baseline", "baseline.json", "--klaud-baseline-update")
    gate = ("--klaud-max-new-failures", "0", *baseline)
    session = Session(pytester, "--klaud-tracking-uri", sqlite_tracking_uri, *gate, *workers)
    session.wait_for("the hanging build start", (marks / "started").exists)
    session.wait_for("a-quick pass", lambda: session.has_line("test_app[a-quick]", "PASSED"))
    if how == "SIGTERM":
        os.kill(session.process.pid, signal.SIGTERM)  # only the controller, as CI runners do
    else:
        os.killpg(session.process.pid, signal.SIGINT)  # the terminal's whole foreground group

    code = session.finish()

    assert code == pytest.ExitCode.INTERRUPTED, session.output
    pids = [int(p) for p in (marks / "pids").read_text().split()]
    assert len(pids) == 2
    assert not [p for p in pids if alive(p)], session.output
    report = read_report(pytester.path / "app-eval")
    assert report["run"]["status"] == "interrupted"
    statuses = {a["app_name"]: (a["status"], a["error"]) for a in report["apps"]}
    assert statuses["a-quick"] == ("evaluated", None)
    assert statuses["b-hangs"] == ("not_run", "interrupted before its evaluation finished")
    assert statuses["c-waits"][0] in ("not_run", "evaluated")  # xdist may have run it
    assert report["summary"]["total_apps"] == 3
    markdown = (pytester.path / "app-eval" / "EVALUATION_REPORT.md").read_text()
    assert "INCOMPLETE: the evaluation was interrupted" in markdown
    assert "INCOMPLETE: the evaluation was interrupted" in session.output
    assert "baseline not updated: the evaluation was interrupted" in session.output
    assert not (pytester.path / "baseline.json").exists()  # a partial run is no baseline

    client = MlflowClient(tracking_uri=sqlite_tracking_uri)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
    )
    assert [r.info.status for r in runs] == ["KILLED"]
    assert runs[0].info.run_id == report["run"]["mlflow_run_id"]
    assert runs[0].data.metrics["total_apps"] == 3


def test_sigterm_handler_is_only_installed_for_an_evaluation(pytester: pytest.Pytester) -> None:
    """A suite that evaluates no apps keeps Python's SIGTERM behaviour."""
    pytester.makepyfile(
        test_plain="""
        import signal

        def test_default():
            assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        """
    )
    result = pytester.runpytest_subprocess(NO_TRACKING)
    result.assert_outcomes(passed=1)


def test_report_of_a_finished_evaluation_says_finished(pytester: pytest.Pytester) -> None:
    make_app(pytester.path, "good")
    make_suite(pytester)
    result = pytester.runpytest_subprocess(NO_TRACKING)
    result.assert_outcomes(passed=1)
    report = read_report(pytester.path / "app-eval")
    assert report["run"]["status"] == "finished"
    assert len(report["run"]["evaluation_id"]) == 32
    assert "INCOMPLETE" not in json.dumps(report)


def test_app_processes_of_a_killed_worker_do_not_outlive_the_session(
    pytester: pytest.Pytester,
) -> None:
    """SIGKILL leaves a worker no chance to clean up: the controller, their subreaper by
    then, kills what its app left running, and the app is an infrastructure error."""
    marks = pytester.path / "marks"
    marks.mkdir()
    make_app(pytester.path, "a-good")
    build = f"echo $PPID > '{marks / 'worker'}'; " + hanging_build(marks)
    make_app(pytester.path, "b-worker-killed", build=build, start="")
    make_app(pytester.path, "c-good")
    make_suite(pytester)
    session = Session(pytester, NO_TRACKING, "-n", "2")
    session.wait_for("the hanging build start", (marks / "started").exists)
    os.kill(int((marks / "worker").read_text()), signal.SIGKILL)

    code = session.finish()

    assert code == pytest.ExitCode.TESTS_FAILED, session.output
    pids = [int(p) for p in (marks / "pids").read_text().split()]
    assert not [p for p in pids if alive(p)], session.output
    report = read_report(pytester.path / "app-eval")
    statuses = {a["app_name"]: a["status"] for a in report["apps"]}
    assert statuses == {
        "a-good": "evaluated",
        "b-worker-killed": "infra_error",
        "c-good": "evaluated",
    }
    assert "ERROR: 1 infrastructure error(s) (b-worker-killed), more than the 0 allowed" in (
        session.output
    )
