"""The plugin under pytest-xdist: same report as a serial run, crashes and the controller.

The synthetic apps and helpers come from ``test_plugin.py``; the end-to-end test
runs the shipped sample corpus (``evals/apps``) serially and with ``-n 2``.
"""

from __future__ import annotations

import shutil
import textwrap

import pytest
from helpers import (
    NO_TRACKING,
    REPO,
    apps_by_name,
    assert_same_report,
    checks,
    make_app,
    make_suite,
    outcomes,
    path_without_npm,
    read_report,
    run,
)


def test_xdist_report_equals_the_serial_one_app_by_app(pytester: pytest.Pytester) -> None:
    make_app(pytester.path, "good")
    make_app(pytester.path, "empty-data", rows=())
    make_app(pytester.path, "failing-tests", test="echo MARKER-7; exit 1")
    make_app(pytester.path, "no-start", start="", data=False)
    make_app(pytester.path, "needs-tool", install="npm install --no-audit", start="")
    make_app(pytester.path, "café app")
    make_app(pytester.path, "bad-toml", manifest="[commands\n")
    make_app(
        pytester.path,
        "with-generation-data",
        files={
            "generation_metrics.json": '{"cost_usd": 0.5, "input_tokens": 1000, '
            '"output_tokens": 200, "turns": 4}'
        },
    )
    make_suite(
        pytester,
        "def test_app(klaud_app):\n"
        "    klaud_app.record('name_length', len(klaud_app.name))\n"
        "    klaud_app.check()\n",
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", path_without_npm(pytester.path))
        serial = run(pytester, NO_TRACKING, "-p", "no:cacheprovider", "--klaud-report-dir=serial")
        parallel = run(
            pytester, NO_TRACKING, "-p", "no:cacheprovider", "--klaud-report-dir=xdist", "-n", "2"
        )
    for result in (serial, parallel):
        result.assert_outcomes(passed=3, failed=4, errors=1)
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    parallel.stdout.fnmatch_lines(["created: 2/2 workers", "apps: 8 total, 7 evaluated, *"])

    serial_report = read_report(pytester.path / "serial")
    parallel_report = read_report(pytester.path / "xdist")
    assert_same_report(serial_report, parallel_report)

    apps = apps_by_name(parallel_report)
    assert apps["needs-tool"]["status"] == "infra_error"
    assert apps["good"]["custom_metrics"] == {"name_length": 4.0}
    assert apps["café app"]["custom_metrics"] == {"name_length": 8.0}
    assert apps["café app"]["metrics"]["data_returned"] is True
    assert apps["with-generation-data"]["generation_metrics"] == {
        "cost_usd": 0.5,
        "input_tokens": 1000,
        "output_tokens": 200,
        "turns": 4,
    }
    summary = parallel_report["summary"]
    assert summary["total_apps"] == 8
    assert summary["infra_errors"] == 1
    assert summary["generation_cost_usd"] == 0.5
    # custom metrics are recorded in the call phase: every app that got there has one
    assert summary["avg_name_length"] == pytest.approx(
        sum(len(n) for n in apps if n != "needs-tool") / 7
    )


CRASHING_CONFTEST = textwrap.dedent(
    """\
    import os
    import pytest

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(item):
        # the worker dies before the app is evaluated
        if os.environ.get("PYTEST_XDIST_WORKER") and item.name == "test_app[crash-in-setup]":
            os._exit(1)
    """
)
CRASHING_TEST = textwrap.dedent(
    """\
    import os

    def test_app(klaud_app):
        # the worker dies after the app was evaluated, before its result is reported
        if os.environ.get("PYTEST_XDIST_WORKER") and klaud_app.name == "crash-in-call":
            os._exit(1)
        klaud_app.check()
    """
)


def test_crashed_worker_makes_its_app_an_infra_error_and_the_rest_completes(
    pytester: pytest.Pytester,
) -> None:
    for name in ("a-good", "crash-in-call", "crash-in-setup", "z-good"):
        make_app(pytester.path, name)
    make_suite(pytester, CRASHING_TEST)
    pytester.makeconftest(CRASHING_CONFTEST)
    result = run(pytester, NO_TRACKING, "-p", "no:cacheprovider", "-n", "2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*worker*crashed while running*"])
    report = read_report(pytester.path / "app-eval")
    apps = apps_by_name(report)
    assert {name: app["status"] for name, app in apps.items()} == {
        "a-good": "evaluated",
        "crash-in-call": "infra_error",
        "crash-in-setup": "infra_error",
        "z-good": "evaluated",
    }
    for name in ("crash-in-call", "crash-in-setup"):
        assert "crashed" in apps[name]["error"], apps[name]["error"]
        assert apps[name]["metrics"] == {}
    assert checks(apps["z-good"])["data_returned"] is True
    summary = report["summary"]
    assert (summary["total_apps"], summary["evaluated"], summary["infra_errors"]) == (4, 2, 2)
    assert summary["build_success_rate"] == 1.0  # crashed apps are not counted as failures
    result.stdout.fnmatch_lines(["apps: 4 total, 2 evaluated, 2 infra errors, 0 not run"])


WRITE_PROBE = textwrap.dedent(
    """\
    import os
    from pathlib import Path

    import pytest_klaudbiusz.results.files as files

    _write_reports = files.write_reports

    def _logged(report, folder):
        role = os.environ.get("PYTEST_XDIST_WORKER", "controller")
        with open(Path(__file__).parent / "writes.txt", "a") as out:
            out.write(f"{role} {len(report['apps'])}\\n")
        return _write_reports(report, folder)

    files.write_reports = _logged  # the plugin imports it from files where it is used
    """
)


def test_reports_are_written_by_the_controller_only(pytester: pytest.Pytester) -> None:
    for name in ("one", "two", "three"):
        make_app(pytester.path, name, start="", data=False)
    make_suite(pytester)
    pytester.makeconftest(WRITE_PROBE)
    result = run(pytester, NO_TRACKING, "-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(failed=3)
    assert (pytester.path / "writes.txt").read_text() == "controller 3\n"
    assert read_report(pytester.path / "app-eval")["summary"]["total_apps"] == 3
    assert result.stdout.str().count("klaudbiusz evaluation (manual)") == 1


def test_exitfirst_under_xdist_never_drops_an_app(pytester: pytest.Pytester) -> None:
    make_app(pytester.path, "a-fails", start="", data=False)
    for name in ("b", "c", "d", "e"):
        make_app(pytester.path, name)
    make_suite(pytester)
    result = run(pytester, NO_TRACKING, "-p", "no:cacheprovider", "-n", "2", "-x")
    # xdist ends a -x session as interrupted (exit status 2), serial pytest with 1
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*stopping after 1 failures*"])
    report = read_report(pytester.path / "app-eval")
    statuses = {a["app_name"]: a["status"] for a in report["apps"]}
    assert sorted(statuses) == ["a-fails", "b", "c", "d", "e"]
    assert statuses["a-fails"] == "evaluated"
    assert set(statuses.values()) <= {"evaluated", "not_run"}
    summary = report["summary"]
    assert summary["total_apps"] == 5
    assert summary["evaluated"] + summary["not_run"] == 5


# --- the shipped sample corpus, end to end -----------------------------------------

#: The checks each shipped app fails (every other check passes or does not apply).
CORPUS_FAILURES = {
    "billing-export-docker": set(),
    "broken-build": {"build_success"},  # its interpreted server starts without the build
    "crash-on-start": {"runtime_success", "databricks_connectivity", "data_returned", "ui_renders"},
    "empty-results": {"data_returned"},
    "failing-tests": {"tests_pass"},
    "inventory-dbx-sdk": set(),
    "manifest-app": set(),
    "nightly-digest-batch": {"runtime_success"},
    "no-tests-no-build": {"build_success", "tests_pass"},
    "ops-metrics-python": set(),
    "sales-dashboard-trpc": set(),
    "tasks-bun-trpc": set(),  # the generated layout, with its own PostgreSQL databases
    "type-errors": {"type_safety"},
    "unresolvable-deps": {"build_success", "runtime_success", "tests_pass"},
    "warehouse-down": {"databricks_connectivity", "data_returned", "ui_renders"},
    "wrong-port": {"runtime_success", "ui_renders"},
}


@pytest.mark.e2e
def test_shipped_corpus_serial_and_xdist_give_the_same_report(pytester: pytest.Pytester) -> None:
    shutil.copytree(REPO / "evals" / "apps", pytester.path / "apps")
    pytester.makeini("[pytest]\nklaud_apps = apps\n")
    pytester.makepyfile(test_apps=(REPO / "evals" / "test_apps.py").read_text())
    args = (NO_TRACKING, "-p", "no:cacheprovider", "--klaud-mode=corpus")
    serial = run(pytester, *args, "--klaud-report-dir=serial")
    parallel = run(pytester, *args, "--klaud-report-dir=xdist", "-n", "2")
    passing = sorted(name for name, failed in CORPUS_FAILURES.items() if not failed)
    for result in (serial, parallel):
        result.assert_outcomes(passed=len(passing), failed=len(CORPUS_FAILURES) - len(passing))
        assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()

    serial_report = read_report(pytester.path / "serial")
    assert_same_report(serial_report, read_report(pytester.path / "xdist"))

    apps = apps_by_name(serial_report)
    assert sorted(apps) == sorted(CORPUS_FAILURES)
    for name, failed in CORPUS_FAILURES.items():
        app = apps[name]
        assert app["status"] == "evaluated", (name, app["error"])
        every_check = {**checks(app), "ui_renders": app["metrics"]["ui_renders"]}
        assert {c for c, ok in every_check.items() if ok is False} == failed, name
        assert {c for c, ok in every_check.items() if ok is None} <= {
            "type_safety",
            "databricks_connectivity",
            "data_returned",
            "ui_renders",
        }, name
    assert outcomes(apps["sales-dashboard-trpc"]) == dict.fromkeys(
        ("install", "build", "typecheck", "runtime", "data", "data_returned", "ui", "test"),
        "passed",
    )
    without_ui = {name for name, app in apps.items() if app["metrics"]["ui_renders"] is None}
    assert without_ui == {"billing-export-docker", "manifest-app", "nightly-digest-batch",
                          "unresolvable-deps"}  # fmt: skip
    assert outcomes(apps["broken-build"])["runtime"] == "passed"  # tried after a failed build
    assert outcomes(apps["crash-on-start"])["data"] == "skipped"
    assert {name: app["template_type"] for name, app in apps.items()} == {
        "billing-export-docker": "python",
        "broken-build": "npm",
        "crash-on-start": "trpc",
        "empty-results": "trpc",
        "failing-tests": "npm",
        "inventory-dbx-sdk": "dbx-sdk",
        "manifest-app": "npm",
        "nightly-digest-batch": "npm",
        "no-tests-no-build": "npm",
        "ops-metrics-python": "python",
        "sales-dashboard-trpc": "trpc",
        "tasks-bun-trpc": "trpc",
        "type-errors": "npm",
        "unresolvable-deps": "npm",
        "warehouse-down": "dbx-sdk",
        "wrong-port": "npm",
    }
    summary = serial_report["summary"]
    assert (summary["total_apps"], summary["evaluated"], summary["infra_errors"]) == (16, 16, 0)
    counts = serial_report["counts"]
    for check in ("build_success", "runtime_success", "tests_pass"):
        failing = sum(check in failed for failed in CORPUS_FAILURES.values())
        assert counts[check] == {"passed": 16 - failing, "checked": 16}, check
    assert summary["build_success_rate"] == 13 / 16
    assert summary["runtime_success_rate"] == 12 / 16
    assert summary["tests_pass_rate"] == 13 / 16
    assert serial_report["run"]["mode"] == "corpus"
    # the failures explain themselves
    serial.stdout.fnmatch_lines(["broken-build: failed build_success"])
    serial.stdout.fnmatch_lines(
        ["wrong-port: failed runtime_success, ui_renders", "  runtime: failed (*)"]
    )
    serial.stdout.fnmatch_lines(["failing-tests: failed tests_pass", "--- test log ---"])
