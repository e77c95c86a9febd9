"""The plugin as pytest users meet it: real pytest sessions over small synthetic apps.

Each synthetic app is a folder with a ``klaud.toml`` whose commands are trivial
shell or ``python3`` one-liners, and (when it has to run) a tiny stdlib HTTP
server, so an app evaluates in well under a second. Runs that involve exit
codes, imports or the environment use real subprocesses
(``runpytest_subprocess``); the xdist runs are in ``test_plugin_xdist.py``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    INI,
    NO_TRACKING,
    TEST_FILE,
    apps_by_name,
    checks,
    make_app,
    make_suite,
    outcomes,
    path_without_npm,
    read_report,
    run,
)

from pytest_klaudbiusz.results.metrics import CHECKS


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs below must not see the caller's mode or warehouse settings."""
    for name in ("EVAL_MODE", "DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_WAREHOUSE_ID"):
        monkeypatch.delenv(name, raising=False)


# --- apps as parametrized cases ------------------------------------------------


def test_each_app_folder_is_one_case_with_its_folder_name_as_id(
    pytester: pytest.Pytester,
) -> None:
    for name in ("beta", "alpha", "with space", "café", "数据"):
        make_app(pytester.path, name, start="")
    for skipped in (".hidden", "logs", "node_modules", "__pycache__"):
        (pytester.path / "apps" / skipped).mkdir()
    (pytester.path / "apps" / "README.md").write_text("not an app\n")
    make_suite(pytester)
    result = pytester.runpytest("--collect-only", "-q", NO_TRACKING)
    result.stdout.fnmatch_lines(
        [
            "test_evals.py::test_app[alpha]",
            "test_evals.py::test_app[beta]",
            "test_evals.py::test_app[caf\\xe9]",
            "test_evals.py::test_app[with space]",
            "test_evals.py::test_app[\\u6570\\u636e]",
            "5 tests collected*",
        ]
    )
    assert not (pytester.path / "app-eval").exists()  # collecting evaluates nothing


def test_serial_run_reports_every_app_with_exact_values(pytester: pytest.Pytester) -> None:
    make_app(pytester.path, "good")
    make_app(pytester.path, "no-data", data=False)
    make_app(pytester.path, "empty-data", rows=())
    make_app(
        pytester.path,
        "failing-tests",
        test="echo 'AssertionError: expected 3 got 2 MARKER-42'; exit 1",
    )
    make_app(pytester.path, "needs-tool", install="npm install --no-audit", start="")
    make_suite(pytester)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", path_without_npm(pytester.path))
        result = run(pytester, NO_TRACKING, "-p", "no:cacheprovider")

    result.assert_outcomes(passed=2, failed=2, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    report = read_report(pytester.path / "app-eval")
    apps = apps_by_name(report)
    assert list(apps) == ["empty-data", "failing-tests", "good", "needs-tool", "no-data"]
    assert {name: app["status"] for name, app in apps.items()} == {
        "empty-data": "evaluated",
        "failing-tests": "evaluated",
        "good": "evaluated",
        "needs-tool": "infra_error",
        "no-data": "evaluated",
    }
    passing = dict.fromkeys(CHECKS, True) | {"type_safety": None, "ui_renders": None}
    assert checks(apps["good"]) == passing
    assert checks(apps["no-data"]) == passing | {
        "databricks_connectivity": None,
        "data_returned": None,
    }
    assert checks(apps["empty-data"]) == passing | {"data_returned": False}
    assert checks(apps["failing-tests"]) == passing | {"tests_pass": False}
    assert outcomes(apps["good"]) == {
        "install": "passed",
        "build": "passed",
        "typecheck": "not_applicable",
        "runtime": "passed",
        "data": "passed",
        "data_returned": "passed",
        "ui": "not_applicable",  # an API without a page
        "test": "passed",
    }
    assert apps["good"]["details"]["data_endpoints"] == [
        {"method": "GET", "path": "/api/rows", "status": 200, "json": True, "rows": 1}
    ]
    assert "data_returned: no rows" in apps["empty-data"]["issues"]
    assert "test: exited non-zero" in apps["failing-tests"]["issues"]
    assert "MARKER-42" in apps["failing-tests"]["stages"][-1]["log_tail"]
    assert apps["needs-tool"]["error"] == "npm is not installed or not on PATH (needed by install)"
    assert apps["needs-tool"]["metrics"] == {}

    summary = report["summary"]
    assert {k: summary[k] for k in ("total_apps", "evaluated", "infra_errors", "not_run")} == {
        "total_apps": 5,
        "evaluated": 4,
        "infra_errors": 1,
        "not_run": 0,
    }
    assert summary["build_success_rate"] == 1.0
    assert summary["runtime_success_rate"] == 1.0
    assert summary["type_safety_rate"] is None  # no app had types to check
    assert summary["tests_pass_rate"] == 0.75
    assert summary["databricks_connectivity_rate"] == 1.0
    assert summary["data_returned_rate"] == 2 / 3
    assert summary["overall_quality_score"] == (1.0 + 1.0 + 0.75 + 1.0) / 4
    assert report["counts"]["databricks_connectivity"] == {"passed": 3, "checked": 3}
    assert report["run"]["mode"] == "manual"
    assert report["run"]["mlflow_run_id"] is None
    assert {p.name for p in (pytester.path / "app-eval").iterdir()} == {
        "evaluation_report.json",
        "EVALUATION_REPORT.md",
        "evaluation_report.csv",
    }

    # the failing cases name their failed checks and show the tail of the failing log
    result.stdout.fnmatch_lines(
        [
            "*_ test_app[[]failing-tests] _*",
            "failing-tests: failed tests_pass",
            "  test: failed (exited non-zero)",
            "--- test log ---",
            "AssertionError: expected 3 got 2 MARKER-42",
        ]
    )
    result.stdout.fnmatch_lines(
        ["empty-data: failed data_returned", "  data_returned: failed (no rows)"]
    )
    result.stdout.fnmatch_lines(
        ["*infrastructure error (not the app's fault): npm is not installed or not on PATH*"]
    )
    assert "Traceback" not in result.stdout.str()
    # the terminal summary table
    result.stdout.fnmatch_lines(
        [
            "*= klaudbiusz evaluation (manual) =*",
            "apps: 5 total, 4 evaluated, 1 infra errors, 0 not run",
            "build_success_rate*100.0%  (4/4)",
            "runtime_success_rate*100.0%  (4/4)",
            "type_safety_rate*n/a  (0/0)",
            "tests_pass_rate*75.0%  (3/4)",
            "databricks_connectivity_rate*100.0%  (3/3)",
            "data_returned_rate*66.7%  (2/3)",
            "overall_quality_score*93.8%",
            "avg_appeval_100*",
            f"reports: {pytester.path / 'app-eval' / 'EVALUATION_REPORT.md'} (also .json, .csv)",
            "MLflow tracking off (--klaud-no-tracking)",
        ]
    )


# --- settings: mode, .env, timeouts --------------------------------------------


def _quick_app(pytester: pytest.Pytester, name: str = "quick", **kwargs: Any) -> Path:
    """An app with no server: evaluates in milliseconds (and fails runtime)."""
    return make_app(pytester.path, name, start="", data=False, **kwargs)


@pytest.mark.parametrize(
    ("args", "eval_mode", "expected"),
    [
        ((), None, "manual"),
        ((), "vanilla_sdk", "vanilla_sdk"),
        (("--klaud-mode=mcp",), "vanilla_sdk", "mcp"),
        (("--klaud-mode", "claude-3.5_v2"), None, "claude-3.5_v2"),
    ],
)
def test_mode_comes_from_option_else_eval_mode_else_manual(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    eval_mode: str | None,
    expected: str,
) -> None:
    if eval_mode:
        monkeypatch.setenv("EVAL_MODE", eval_mode)
    _quick_app(pytester)
    make_suite(pytester)
    result = pytester.runpytest(NO_TRACKING, "-p", "no:cacheprovider", *args)
    assert read_report(pytester.path / "app-eval")["run"]["mode"] == expected
    result.stdout.fnmatch_lines([f"*= klaudbiusz evaluation ({expected}) =*"])


def test_dotenv_is_loaded_and_the_environment_wins(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    (pytester.path / ".env").write_text(
        "EVAL_MODE=from-dotenv\nDATABRICKS_WAREHOUSE_ID=wh-from-dotenv\n", encoding="utf-8"
    )
    # the app sees the warehouse id that .env provides (its test prints and checks it)
    _quick_app(
        pytester,
        test='echo "warehouse=$DATABRICKS_WAREHOUSE_ID"; '
        'test "$DATABRICKS_WAREHOUSE_ID" = wh-from-dotenv',
    )
    make_suite(pytester)
    run(pytester, NO_TRACKING, "-p", "no:cacheprovider")
    report = read_report(pytester.path / "app-eval")
    assert report["run"]["mode"] == "from-dotenv"
    assert report["apps"][0]["metrics"]["tests_pass"] is True

    monkeypatch.setenv("EVAL_MODE", "from-environment")
    monkeypatch.setenv("DATABRICKS_WAREHOUSE_ID", "wh-from-environment")
    run(pytester, NO_TRACKING, "-p", "no:cacheprovider")
    report = read_report(pytester.path / "app-eval")
    assert report["run"]["mode"] == "from-environment"
    app = report["apps"][0]
    assert app["metrics"]["tests_pass"] is False
    assert "warehouse=wh-from-environment" in app["stages"][-1]["log_tail"]


def test_timeouts_from_option_and_ini_apply_to_their_stages(pytester: pytest.Pytester) -> None:
    _quick_app(pytester, "slow-build", build="sleep 20")
    _quick_app(pytester, "slow-tests", build="true", test="sleep 20")
    pytester.makeini(INI + "klaud_timeouts =\n    test=0.5\n")
    pytester.makepyfile(test_evals=TEST_FILE)
    started = time.monotonic()
    result = pytester.runpytest(NO_TRACKING, "-p", "no:cacheprovider", "--klaud-timeout=build=0.5")
    assert time.monotonic() - started < 15
    result.assert_outcomes(failed=2)
    apps = apps_by_name(read_report(pytester.path / "app-eval"))
    build = apps["slow-build"]["stages"][1]
    assert (build["name"], build["outcome"], build["reason"]) == (
        "build",
        "failed",
        "timed out after 0.5s",
    )
    test = apps["slow-tests"]["stages"][-1]
    assert (test["name"], test["outcome"], test["reason"]) == (
        "test",
        "failed",
        "timed out after 0.5s",
    )


def test_test_retries_from_option_and_ini(pytester: pytest.Pytester) -> None:
    flaky = "if [ -f .ran ]; then exit 0; fi; touch .ran; exit 1"  # fails once per copy
    make_app(pytester.path, "flaky-suite", test=flaky)
    pytester.makepyfile(test_evals=TEST_FILE)
    pytester.makeini(INI + "klaud_test_retries = 0\n")
    strict = pytester.runpytest(NO_TRACKING, "-p", "no:cacheprovider")
    strict.assert_outcomes(failed=1)  # the ini says: no rerun
    retried = pytester.runpytest(NO_TRACKING, "-p", "no:cacheprovider", "--klaud-test-retries=1")
    retried.assert_outcomes(passed=1)  # the option wins: flaky, not failed
    app = apps_by_name(read_report(pytester.path / "app-eval"))["flaky-suite"]
    assert "test: flaky" in app["issues"]


# --- bad input: one line, exit code 4, no traceback ------------------------------


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--klaud-apps", "missing"), {}, "ERROR: apps folder */missing does not exist: *"),
        (("--klaud-apps", "empty"), {}, "ERROR: apps folder */empty holds no apps: *"),
        (("--klaud-apps", "afile.txt"), {}, "ERROR: apps folder */afile.txt is not a folder: *"),
        (("--klaud-mode", "mcp mode"), {}, "ERROR: invalid mode 'mcp mode': use letters, *"),
        (("--klaud-mode=a/b",), {}, "ERROR: invalid mode 'a/b': *"),
        ((), {"EVAL_MODE": "mcp;rm"}, "ERROR: invalid mode 'mcp;rm': *"),
        (("--klaud-timeout", "build=abc"), {}, "ERROR: invalid timeout 'build=abc': *"),
        (("--klaud-timeout", "build=-1"), {}, "ERROR: invalid timeout 'build=-1': *"),
        (("--klaud-timeout", "build=nan"), {}, "ERROR: invalid timeout 'build=nan': *"),
        (("--klaud-timeout", "request=inf"), {}, "ERROR: invalid timeout 'request=inf': *"),
        (("--klaud-timeout", "test=1e300"), {}, "ERROR: invalid timeout 'test=1e300': *"),
        (("--klaud-timeout", "compile=5"), {}, "ERROR: invalid timeout 'compile=5': use STAGE*"),
        (("--klaud-timeout", "60"), {}, "ERROR: invalid timeout '60': use STAGE=SECONDS*"),
        (("-n", "2", "--klaud-apps", "missing"), {}, "ERROR: apps folder */missing does not*"),
        (("--klaud-report-dir", "afile.txt"), {}, "ERROR: report folder */afile.txt is not a *"),
        (
            ("--klaud-report-dir", "afile.txt/reports"),
            {},
            "ERROR: report folder */afile.txt/reports cannot be created (*afile.txt is a file)*",
        ),
    ],
)
def test_bad_input_is_a_one_line_usage_error(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    env: dict[str, str],
    message: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _quick_app(pytester)
    (pytester.path / "empty").mkdir()
    (pytester.path / "afile.txt").write_text("x")
    make_suite(pytester)
    result = run(pytester, NO_TRACKING, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, result.stderr.str()
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not (pytester.path / "app-eval").exists()


def test_reports_that_cannot_be_written_are_a_one_line_error(pytester: pytest.Pytester) -> None:
    """The folder was fine at start and is gone when the reports are written."""
    _quick_app(pytester, test='rm -rf "$REPORTS"; touch "$REPORTS"')
    pytester.makeini(INI + "klaud_env_passthrough = REPORTS\n")
    pytester.makepyfile(test_evals=TEST_FILE)
    reports = pytester.path / "reports"
    reports.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REPORTS", str(reports))
        result = run(pytester, NO_TRACKING, "--klaud-report-dir", str(reports))
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines([f"ERROR: cannot write the reports to {reports}: *"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_missing_apps_folder_from_the_ini_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nklaud_apps = generated/apps\n")
    pytester.makepyfile(test_evals=TEST_FILE)
    result = run(pytester, NO_TRACKING)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: apps folder */generated/apps does not exist: *"])
    assert "Traceback" not in result.stderr.str()


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_suite_without_apps_folder_setting_says_how_to_set_it(
    pytester: pytest.Pytester, xdist: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_evals=TEST_FILE)
    result = run(pytester, NO_TRACKING, "-p", "no:cacheprovider", *xdist)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert "no apps folder: pass --klaud-apps DIR or set klaud_apps in the ini" in output
    if not xdist:
        result.stderr.fnmatch_lines(["ERROR: no apps folder: *"])
    assert "Traceback" not in output
    assert "INTERNALERROR" not in output


def test_malformed_manifest_reports_that_app_and_evaluates_the_rest(
    pytester: pytest.Pytester,
) -> None:
    make_app(pytester.path, "bad-toml", manifest='[commands\nbuild = "true"\n')
    make_app(pytester.path, "bad-key", manifest='[commands]\ncompile = "make"\n')
    make_app(pytester.path, "good")
    make_suite(pytester)
    result = run(pytester, NO_TRACKING, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    report = read_report(pytester.path / "app-eval")
    apps = apps_by_name(report)
    assert report["summary"]["total_apps"] == 3
    assert report["summary"]["evaluated"] == 3
    for name, problem in (
        ("bad-toml", "klaud.toml: not valid TOML"),
        ("bad-key", "klaud.toml: unknown key in [commands]: 'compile'"),
    ):
        app = apps[name]
        assert app["status"] == "evaluated"
        assert app["details"]["manifest_error"].startswith(problem)
        assert "install: malformed klaud.toml" in app["issues"]
        assert outcomes(app) == {
            "install": "failed",
            **dict.fromkeys(
                ("build", "typecheck", "runtime", "data", "data_returned", "ui", "test"),
                "not_applicable",  # nothing could be judged: the checks stay null
            ),
        }
        assert set(checks(app).values()) == {None}
    assert checks(apps["good"])["data_returned"] is True
    result.stdout.fnmatch_lines([  # the exact problem, in the terminal
        "bad-toml: failed to be evaluated",
        "  install: failed (malformed klaud.toml)",
        "--- install log ---",
        "klaud.toml: not valid TOML*",
    ])  # fmt: skip
    assert "Traceback" not in result.stdout.str()


# --- pytest features keep working -------------------------------------------------


def test_exitfirst_records_the_apps_it_did_not_run(pytester: pytest.Pytester) -> None:
    _quick_app(pytester, "a-fails")
    make_app(pytester.path, "b-good")
    make_app(pytester.path, "c-good")
    make_suite(pytester)
    result = run(pytester, NO_TRACKING, "-p", "no:cacheprovider", "-x")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    report = read_report(pytester.path / "app-eval")
    assert {a["app_name"]: a["status"] for a in report["apps"]} == {
        "a-fails": "evaluated",
        "b-good": "not_run",
        "c-good": "not_run",
    }
    summary = report["summary"]
    assert (summary["total_apps"], summary["evaluated"], summary["not_run"]) == (3, 1, 2)
    assert summary["runtime_success_rate"] == 0.0  # over the one evaluated app only
    result.stdout.fnmatch_lines(["apps: 3 total, 1 evaluated, 0 infra errors, 2 not run"])


def test_keyword_selects_apps_and_the_report_holds_the_selected_ones(
    pytester: pytest.Pytester,
) -> None:
    make_app(pytester.path, "sales")
    _quick_app(pytester, "inventory")
    _quick_app(pytester, "ops")
    make_suite(pytester)
    result = run(pytester, NO_TRACKING, "-p", "no:cacheprovider", "-k", "sales")
    result.assert_outcomes(passed=1, deselected=2)
    report = read_report(pytester.path / "app-eval")
    assert [a["app_name"] for a in report["apps"]] == ["sales"]
    assert report["summary"]["total_apps"] == 1


def test_last_failed_reruns_only_the_failed_apps(pytester: pytest.Pytester) -> None:
    make_app(pytester.path, "good")
    make_app(pytester.path, "bad", test="exit 3")
    make_suite(pytester)
    first = run(pytester, NO_TRACKING)
    first.assert_outcomes(passed=1, failed=1)
    assert len(read_report(pytester.path / "app-eval")["apps"]) == 2

    second = run(pytester, NO_TRACKING, "--lf")
    second.assert_outcomes(failed=1)
    second.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure*"])
    report = read_report(pytester.path / "app-eval")
    assert [a["app_name"] for a in report["apps"]] == ["bad"]
    assert report["apps"][0]["metrics"]["tests_pass"] is False


def test_junitxml_has_one_case_per_app_and_no_result_payload(pytester: pytest.Pytester) -> None:
    make_app(pytester.path, "good")
    make_app(pytester.path, "bad", test="echo MARKER-JUNIT; exit 1")
    make_suite(pytester)
    run(pytester, NO_TRACKING, "-p", "no:cacheprovider", "--junitxml=out.xml")
    root = ET.parse(pytester.path / "out.xml").getroot()
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert set(cases) == {"test_app[good]", "test_app[bad]"}
    failure = cases["test_app[bad]"].find("failure")
    assert failure is not None
    assert "bad: failed tests_pass" in (failure.get("message") or "")
    assert "MARKER-JUNIT" in (failure.text or "")
    assert cases["test_app[good]"].find("failure") is None
    assert not list(root.iter("property"))  # the result travels outside user_properties


def test_test_files_inside_the_apps_folder_are_never_collected(pytester: pytest.Pytester) -> None:
    make_app(
        pytester.path,
        "app-with-tests",
        files={
            "test_generated.py": "def test_generated():\n    assert False\n",
            "tests/test_more.py": "def test_more():\n    assert False\n",
            "conftest.py": "raise RuntimeError('the app conftest was imported')\n",
        },
    )
    make_suite(pytester)
    for args in ((), ("test_evals.py", "apps")):
        result = run(pytester, NO_TRACKING, "-p", "no:cacheprovider", *args)
        result.assert_outcomes(passed=1)
        assert "the app conftest was imported" not in result.stdout.str() + result.stderr.str()

    # the apps folder reached through a symlink (generated output kept elsewhere)
    (pytester.path / "apps").rename(pytester.path / "generated")
    (pytester.path / "apps").symlink_to("generated", target_is_directory=True)
    result = run(pytester, NO_TRACKING, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_non_ascii_and_space_names_reach_ids_and_every_report(pytester: pytest.Pytester) -> None:
    names = ["café app", "数据 看板"]
    for name in names:
        make_app(pytester.path, name)
    make_suite(pytester)
    result = run(pytester, NO_TRACKING, "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "test_evals.py::test_app[[]caf\\xe9 app] PASSED*",
            "test_evals.py::test_app[[]\\u6570\\u636e \\u770b\\u677f] PASSED*",
        ]
    )
    folder = pytester.path / "app-eval"
    report = read_report(folder)
    assert [a["app_name"] for a in report["apps"]] == names
    assert all(a["status"] == "evaluated" for a in report["apps"])
    assert [Path(a["app_dir"]).name for a in report["apps"]] == names
    csv_text = (folder / "evaluation_report.csv").read_text(encoding="utf-8")
    markdown = (folder / "EVALUATION_REPORT.md").read_text(encoding="utf-8")
    for name in names:
        assert name in csv_text
        assert name in markdown

    # -k picks an app by its (unescaped) name
    result = run(pytester, NO_TRACKING, "-p", "no:cacheprovider", "-k", "café")
    result.assert_outcomes(passed=1, deselected=1)
    assert [a["app_name"] for a in read_report(folder)["apps"]] == ["café app"]


# --- the plugin's footprint ---------------------------------------------------------


def test_importing_the_plugin_does_not_import_mlflow() -> None:
    code = (
        "import sys, pytest_klaudbiusz.plugin\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


MLFLOW_PROBE = textwrap.dedent(
    """\
    import os, sys
    from pathlib import Path

    def pytest_unconfigure(config):
        role = os.environ.get("PYTEST_XDIST_WORKER", "controller")
        with open(Path(__file__).parent / "mlflow_probe.txt", "a") as out:
            out.write(f"{role} {'mlflow' in sys.modules}\\n")
    """
)


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_run_without_tracking_never_imports_mlflow(
    pytester: pytest.Pytester, xdist: tuple[str, ...]
) -> None:
    _quick_app(pytester, "one")
    _quick_app(pytester, "two")
    make_suite(pytester)
    pytester.makeconftest(MLFLOW_PROBE)
    result = run(pytester, NO_TRACKING, "-p", "no:cacheprovider", *xdist)
    result.assert_outcomes(failed=2)
    probe = (pytester.path / "mlflow_probe.txt").read_text().split("\n")
    lines = sorted(line for line in probe if line)
    expected_roles = ["controller", "gw0", "gw1"] if xdist else ["controller"]
    assert lines == [f"{role} False" for role in expected_roles]
    assert read_report(pytester.path / "app-eval")["summary"]["total_apps"] == 2


def test_suite_not_using_the_plugin_never_imports_mlflow(pytester: pytest.Pytester) -> None:
    """Tracking on (the default), but nothing to evaluate: no MLflow, no report."""
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    pytester.makeconftest(MLFLOW_PROBE)
    result = run(pytester, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "mlflow_probe.txt").read_text() == "controller False\n"
    assert not (pytester.path / "app-eval").exists()
    said = [line for line in result.stdout.lines if not line.startswith("plugins:")]
    assert not [line for line in said if "klaudbiusz" in line]


def test_disabling_the_plugin_turns_it_off(pytester: pytest.Pytester) -> None:
    _quick_app(pytester)
    make_suite(pytester)
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = run(pytester, "-p", "no:klaudbiusz", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*fixture 'klaud_app' not found*"])
    assert "klaudbiusz evaluation" not in result.stdout.str()
    assert not (pytester.path / "app-eval").exists()

    # its options are gone too
    result = run(pytester, "-p", "no:klaudbiusz", "--klaud-mode=mcp")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unrecognized arguments: --klaud-mode=mcp*"])
