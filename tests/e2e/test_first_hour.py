"""A new user's first hour (issue 13): the commands of the README, tried where a user
tries them, work without a surprise."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import INI, NO_TRACKING, TEST_FILE, make_app, read_report, run


def test_an_apps_folder_without_a_test_file_is_evaluated(pytester: pytest.Pytester) -> None:
    """``pytest --klaud-apps ./my-apps`` in a folder with no test file: the plugin's own
    case evaluates each app (not "collected 0 items", exit 5)."""
    make_app(pytester.path, "good")
    make_app(pytester.path, "broken", build="false", start="", data=False)
    result = run(pytester, "--klaud-apps", "./apps", "--klaud-mode=mcp", NO_TRACKING)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED klaudbiusz::test_app?broken? - *"])
    report = read_report(pytester.path / "app-eval")
    assert [a["app_name"] for a in report["apps"]] == ["broken", "good"]
    assert report["run"]["mode"] == "mcp"


def test_a_suite_with_its_own_case_gets_no_second_one(pytester: pytest.Pytester) -> None:
    make_app(pytester.path, "good")
    pytester.makepyfile(test_evals=TEST_FILE)
    result = run(pytester, "--klaud-apps=apps", NO_TRACKING, "-v")
    result.assert_outcomes(passed=1)
    assert "klaudbiusz::" not in result.stdout.str()


def test_the_configured_apps_are_not_collected_when_another_folder_is_evaluated(
    pytester: pytest.Pytester,
) -> None:
    """``pytest evals/ --klaud-apps=/elsewhere`` in this repository: the sample apps'
    own test files (their ``tests/``) are data, never collected."""
    make_app(pytester.path, "sample", files={"tests/test_app.py": "import not_installed\n"})
    elsewhere = pytester.path / "elsewhere"
    make_app(elsewhere, "other")
    pytester.makeini(INI)  # klaud_apps = apps
    pytester.makepyfile(test_evals=TEST_FILE)
    result = run(pytester, ".", f"--klaud-apps={elsewhere / 'apps'}", NO_TRACKING)
    result.assert_outcomes(passed=1)
    assert "collected 1 item" in result.stdout.str()  # not the sample app's test file
    report = read_report(pytester.path / "app-eval")
    assert [a["app_name"] for a in report["apps"]] == ["other"]


@pytest.mark.parametrize("form", ["spaced", "equals"])
def test_the_tracking_store_stays_in_the_current_folder_whatever_the_option_form(
    pytester: pytest.Pytester, _initialised_mlflow_db: Path, form: str
) -> None:
    """``--klaud-apps X`` and ``--klaud-apps=X`` (pytest guesses its rootdir from the
    first): ``mlflow.db``, ``mlruns/`` and the outbox stay here, and the terminal says so."""
    make_app(pytester.path, "good")
    shutil.copyfile(_initialised_mlflow_db, pytester.path / "mlflow.db")  # initialised: fast
    option = ["--klaud-apps", "apps"] if form == "spaced" else ["--klaud-apps=apps"]
    result = run(pytester, *option)
    result.assert_outcomes(passed=1)
    apps = pytester.path / "apps"
    assert not {"mlflow.db", "mlruns", ".klaud-outbox"} & {p.name for p in apps.iterdir()}
    assert (pytester.path / "mlruns").is_dir()
    result.stdout.fnmatch_lines(
        [f"MLflow experiment *--backend-store-uri sqlite:///{pytester.path}/mlflow.db*"
         f" (the run's files are in {pytester.path}/mlruns)"]
    )  # fmt: skip


def test_a_second_mode_says_it_replaced_the_first_modes_reports(pytester: pytest.Pytester) -> None:
    make_app(pytester.path, "good")
    first = run(pytester, "--klaud-apps=apps", "--klaud-mode=mcp", NO_TRACKING)
    again = run(pytester, "--klaud-apps=apps", "--klaud-mode=mcp", NO_TRACKING)
    second = run(pytester, "--klaud-apps=apps", "--klaud-mode=vanilla", NO_TRACKING)
    assert "were replaced" not in first.stdout.str() + again.stdout.str()
    second.stdout.fnmatch_lines(
        ["the mcp reports in * were replaced by these vanilla ones; keep each mode's with"
         " --klaud-report-dir app-eval/vanilla"]
    )  # fmt: skip
    assert read_report(pytester.path / "app-eval")["run"]["mode"] == "vanilla"
