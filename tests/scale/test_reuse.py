"""Reusing earlier results: the result cache (--klaud-cache) and --klaud-rerun=infra.

Every synthetic app's build appends its name to ``runs.log`` outside the apps folder,
so a test can tell which apps a pytest run really evaluated.
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    INI,
    NO_TRACKING,
    TEST_FILE,
    apps_by_name,
    make_app,
    make_suite,
    path_without_npm,
    read_report,
    run,
)

from pytest_klaudbiusz.apps.evaluation import EvalOptions
from pytest_klaudbiusz.results.model import DEFAULT_TIMEOUTS
from pytest_klaudbiusz.scale.reuse import result_key

CACHE = "--klaud-cache"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EVAL_MODE", "DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_WAREHOUSE_ID"):
        monkeypatch.delenv(name, raising=False)


def counted_app(pytester: pytest.Pytester, name: str, **kwargs: Any) -> Path:
    """An app whose build appends its name to ``runs.log``."""
    log = shlex.quote(str(pytester.path / "runs.log"))
    return make_app(pytester.path, name, build=f"echo {name} >> {log}", **kwargs)


def evaluated_apps(pytester: pytest.Pytester) -> list[str]:
    """The apps whose build ran since the last call, sorted."""
    log = pytester.path / "runs.log"
    if not log.exists():
        return []
    names = sorted(log.read_text().split())
    log.unlink()
    return names


def without_reuse_marks(report: dict[str, Any]) -> dict[str, Any]:
    apps = [{k: v for k, v in app.items() if k != "reused_from"} for app in report["apps"]]
    summary = {k: v for k, v in report["summary"].items() if k != "reused"}
    return {"summary": summary, "counts": report["counts"], "apps": apps}


def cached_entries(pytester: pytest.Pytester) -> list[Path]:
    return sorted((pytester.path / ".pytest_cache" / "d" / "klaudbiusz").glob("*.json"))


# --- the result cache ----------------------------------------------------------------


def test_second_run_reuses_every_result_and_runs_no_command(pytester: pytest.Pytester) -> None:
    counted_app(pytester, "good")
    counted_app(pytester, "failing", test="echo 'expected 3 got 2 MARKER-9'; exit 1")
    make_suite(pytester)

    first = run(pytester, NO_TRACKING, CACHE, "--klaud-report-dir=first")
    assert evaluated_apps(pytester) == ["failing", "good"]
    second = run(pytester, NO_TRACKING, CACHE, "--klaud-report-dir=second")
    assert evaluated_apps(pytester) == []  # nothing built, so nothing ran

    for result in (first, second):
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(
            [
                "failing: failed tests_pass",
                "  test: failed (exited non-zero)",
                "--- test log ---",
                "expected 3 got 2 MARKER-9",
            ]
        )
    first_report = read_report(pytester.path / "first")
    second_report = read_report(pytester.path / "second")
    assert without_reuse_marks(first_report) == without_reuse_marks(second_report)
    assert [a["reused_from"] for a in first_report["apps"]] == [None, None]
    assert [a["reused_from"] for a in second_report["apps"]] == ["cache", "cache"]
    assert (first_report["summary"]["reused"], second_report["summary"]["reused"]) == (0, 2)
    assert "reused" not in first.stdout.str()
    second.stdout.fnmatch_lines(
        ["apps: 2 total, 2 evaluated, 0 infra errors, 0 not run; 2 reused*"]
    )
    csv_header = (pytester.path / "second" / "evaluation_report.csv").read_text().splitlines()[0]
    assert "reused_from" in csv_header.split(",")
    assert "| reused | 2 |" in (pytester.path / "second" / "EVALUATION_REPORT.md").read_text()


def test_a_changed_file_reruns_only_its_app(pytester: pytest.Pytester) -> None:
    for name in ("alpha", "beta", "gamma"):
        counted_app(pytester, name, start="", data=False)
    pytester.makeini(INI + "klaud_cache = true\n")  # the ini setting, not the flag
    pytester.makepyfile(test_evals=TEST_FILE)
    run(pytester, NO_TRACKING)
    assert evaluated_apps(pytester) == ["alpha", "beta", "gamma"]

    (pytester.path / "apps" / "beta" / "notes.txt").write_text("one more file\n")
    run(pytester, NO_TRACKING)
    assert evaluated_apps(pytester) == ["beta"]
    manifest = pytester.path / "apps" / "gamma" / "klaud.toml"
    manifest.write_text(manifest.read_text() + "# a comment is a change too\n")
    run(pytester, NO_TRACKING)
    assert evaluated_apps(pytester) == ["gamma"]
    # the same files in another place are the same app
    shutil.move(pytester.path / "apps" / "alpha", pytester.path / "apps" / "alpha-moved")
    run(pytester, NO_TRACKING)
    assert evaluated_apps(pytester) == []
    moved = apps_by_name(read_report(pytester.path / "app-eval"))["alpha-moved"]
    assert moved["app_dir"] == str(pytester.path / "apps" / "alpha-moved")
    assert moved["reused_from"] == "cache"


def test_changed_check_settings_rerun_every_app(pytester: pytest.Pytester) -> None:
    for name in ("alpha", "beta"):
        counted_app(pytester, name, start="", data=False)
    make_suite(pytester)
    run(pytester, NO_TRACKING, CACHE)
    assert evaluated_apps(pytester) == ["alpha", "beta"]
    run(pytester, NO_TRACKING, CACHE, "--klaud-timeout=build=100")
    assert evaluated_apps(pytester) == ["alpha", "beta"]
    run(pytester, NO_TRACKING, CACHE, "--klaud-timeout=build=100")
    assert evaluated_apps(pytester) == []
    run(pytester, NO_TRACKING, CACHE, "--klaud-timeout=build=100", "--klaud-env-passthrough=X_*")
    assert evaluated_apps(pytester) == ["alpha", "beta"]


def test_infrastructure_errors_are_never_cached(pytester: pytest.Pytester) -> None:
    counted_app(pytester, "good", start="", data=False)
    make_app(pytester.path, "needs-tool", install="npm install --no-audit", start="")
    make_suite(pytester)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", path_without_npm(pytester.path))
        run(pytester, NO_TRACKING, CACHE)
        second = run(pytester, NO_TRACKING, CACHE)
    assert len(cached_entries(pytester)) == 1  # the good app's result only
    apps = apps_by_name(read_report(pytester.path / "app-eval"))
    assert (apps["needs-tool"]["status"], apps["needs-tool"]["reused_from"]) == (
        "infra_error",
        None,
    )
    assert apps["good"]["reused_from"] == "cache"
    second.assert_outcomes(failed=1, errors=1)
    second.stdout.fnmatch_lines(["*infrastructure error (not the app's fault): npm is not*"])


def test_cache_clear_empties_the_cache_before_the_session(pytester: pytest.Pytester) -> None:
    counted_app(pytester, "alpha", start="", data=False)
    make_suite(pytester)
    run(pytester, NO_TRACKING, CACHE)
    assert evaluated_apps(pytester) == ["alpha"]
    run(pytester, NO_TRACKING, "--klaud-cache-clear")  # clears, and does not use, the cache
    assert (evaluated_apps(pytester), cached_entries(pytester)) == (["alpha"], [])
    run(pytester, NO_TRACKING, CACHE, "--klaud-cache-clear")
    assert evaluated_apps(pytester) == ["alpha"]
    assert read_report(pytester.path / "app-eval")["summary"]["reused"] == 0
    run(pytester, NO_TRACKING, CACHE)
    assert evaluated_apps(pytester) == []


@pytest.mark.parametrize("flag", ["--klaud-cache", "--klaud-cache-clear"])
def test_cache_without_pytests_cache_is_a_usage_error(pytester: pytest.Pytester, flag: str) -> None:
    counted_app(pytester, "alpha", start="", data=False)
    make_suite(pytester)
    result = run(pytester, NO_TRACKING, flag, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {flag} needs pytest's cache: drop -p no:cacheprovider"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert evaluated_apps(pytester) == []


def test_cache_and_rerun_under_xdist(pytester: pytest.Pytester) -> None:
    counted_app(pytester, "good")
    for name in ("alpha", "beta"):
        counted_app(pytester, name, start="", data=False)
    make_suite(pytester)
    first = run(pytester, NO_TRACKING, CACHE, "-n", "2", "--klaud-report-dir=first")
    assert evaluated_apps(pytester) == ["alpha", "beta", "good"]
    second = run(pytester, NO_TRACKING, CACHE, "-n", "2", "--klaud-report-dir=second")
    assert evaluated_apps(pytester) == []
    assert without_reuse_marks(read_report(pytester.path / "first")) == without_reuse_marks(
        read_report(pytester.path / "second")
    )
    rerun = run(
        pytester, NO_TRACKING, "--klaud-rerun=infra", "-n", "2", "--klaud-report-dir=second"
    )
    assert evaluated_apps(pytester) == []
    for result in (first, second, rerun):
        result.assert_outcomes(passed=1, failed=2)
        assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    apps = read_report(pytester.path / "second")["apps"]
    assert [a["reused_from"] for a in apps] == ["report"] * 3


# --- the cache key --------------------------------------------------------------------


def test_result_key_sees_files_and_settings_not_the_place_or_the_machine(tmp_path: Path) -> None:
    app = make_app(tmp_path, "app", files={"src/main.py": "print(1)\n"})
    environ = {"PATH": "/usr/bin", "HOME": "/root", "DATABRICKS_HOST": "https://a"}
    base = result_key(app, EvalOptions(environ))

    def key(**changes: Any) -> str:
        return result_key(app, EvalOptions(**{"environ": environ, **changes}))

    copy = tmp_path / "elsewhere" / "other-name"
    shutil.copytree(app, copy)
    assert result_key(copy, EvalOptions(environ)) == base
    assert key(environ={**environ, "PATH": "/opt/bin", "HOME": "/home/x"}) == base
    assert key(environ={**environ, "DATABRICKS_TOKEN": "dapi-123456"}) == key(
        environ={**environ, "DATABRICKS_TOKEN": "dapi-rotated"}
    )  # a secret's value does not count, only that the app gets one
    assert key(environ={**environ, "DATABRICKS_HOST": "https://b"}) != base
    assert key(timeouts={**DEFAULT_TIMEOUTS, "test": 1.0}) != base
    assert key(env_passthrough=("FEATURE_*",)) != base
    assert key(env_passthrough=("FEATURE_*",), environ={**environ, "FEATURE_X": "1"}) != key(
        env_passthrough=("FEATURE_*",), environ={**environ, "FEATURE_X": "2"}
    )
    (copy / "src" / "main.py").write_text("print(2)\n")
    assert result_key(copy, EvalOptions(environ)) != base
    (copy / "node_modules").mkdir()  # the working copy gets it: so does the key
    (copy / "node_modules" / "left-pad.js").write_text("module.exports = 1\n")
    (copy / "src" / "main.py").write_text("print(1)\n")
    assert result_key(copy, EvalOptions(environ)) != base


# --- --klaud-rerun=infra ----------------------------------------------------------------


def fake_npm(root: Path) -> str:
    """A folder with an ``npm`` that succeeds and logs itself in ``runs.log``."""
    folder = root / "bin-fake-npm"
    folder.mkdir()
    npm = folder / "npm"
    npm.write_text(f"#!/bin/sh\necho needs-tool >> {shlex.quote(str(root / 'runs.log'))}\n")
    npm.chmod(0o755)
    return str(folder)


def test_rerun_infra_evaluates_only_the_apps_without_a_verdict(pytester: pytest.Pytester) -> None:
    counted_app(pytester, "good")
    counted_app(pytester, "failing", start="", data=False)
    counted_app(pytester, "gone", start="", data=False)
    make_app(pytester.path, "needs-tool", install="npm install --no-audit", start="", data=False)
    make_suite(pytester)
    python_only = path_without_npm(pytester.path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", python_only)
        run(pytester, NO_TRACKING)
    assert evaluated_apps(pytester) == ["failing", "gone", "good"]
    last = apps_by_name(read_report(pytester.path / "app-eval"))
    assert last["needs-tool"]["status"] == "infra_error"

    shutil.rmtree(pytester.path / "apps" / "gone")
    counted_app(pytester, "new", start="", data=False)
    fixed_path = f"{python_only}:{fake_npm(pytester.path)}"  # the machine has npm now
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", fixed_path)
        result = run(pytester, NO_TRACKING, "--klaud-rerun=infra")
    assert evaluated_apps(pytester) == ["needs-tool", "new"]
    result.stdout.fnmatch_lines(
        [
            "klaudbiusz rerun: evaluating 2 apps without a verdict in "
            f"{pytester.path / 'app-eval' / 'evaluation_report.json'} (infrastructure error,"
            " not run or new): needs-tool, new; 2 results reused",
        ]
    )
    result.assert_outcomes(passed=1, failed=3)
    report = read_report(pytester.path / "app-eval")
    apps = apps_by_name(report)
    assert {name: (app["status"], app["reused_from"]) for name, app in apps.items()} == {
        "failing": ("evaluated", "report"),
        "good": ("evaluated", "report"),
        "needs-tool": ("evaluated", None),
        "new": ("evaluated", None),
    }
    for name in ("failing", "good"):
        assert {k: v for k, v in apps[name].items() if k != "reused_from"} == {
            k: v for k, v in last[name].items() if k != "reused_from"
        }
    assert (report["summary"]["infra_errors"], report["summary"]["reused"]) == (0, 2)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", fixed_path)
        again = run(pytester, NO_TRACKING, "--klaud-rerun=infra")
    assert evaluated_apps(pytester) == []
    again.stdout.fnmatch_lines(
        ["klaudbiusz rerun: no infrastructure errors in *: nothing rerun, 4 results reused"]
    )
    again.assert_outcomes(passed=1, failed=3)
    assert read_report(pytester.path / "app-eval")["summary"]["reused"] == 4


@pytest.mark.parametrize(
    ("args", "report", "message"),
    [
        (
            ["--klaud-rerun=infra", "--klaud-report-dir=nowhere"],
            None,
            "ERROR: --klaud-rerun=infra: no last report at */nowhere/evaluation_report.json:"
            " run the evaluation first, or pass the --klaud-report-dir it wrote to",
        ),
        (
            ["--klaud-rerun=infra"],
            "{not json",
            "ERROR: --klaud-rerun=infra: */app-eval/evaluation_report.json: not an evaluation"
            " report (not JSON: *)",
        ),
        (
            ["--klaud-rerun=infra"],
            json.dumps({"schema_version": 1, "run": {}, "summary": {}, "counts": {}, "apps": [1]}),
            "ERROR: --klaud-rerun=infra: */evaluation_report.json: not an evaluation report"
            " (malformed apps)",
        ),
        (
            ["--klaud-rerun=failed"],
            None,
            "ERROR: invalid --klaud-rerun 'failed': use infra (rerun the apps whose last result"
            " was an infrastructure error)",
        ),
    ],
)
def test_rerun_usage_errors(
    pytester: pytest.Pytester, args: list[str], report: str | None, message: str
) -> None:
    counted_app(pytester, "alpha", start="", data=False)
    make_suite(pytester)
    if report is not None:
        (pytester.path / "app-eval").mkdir()
        (pytester.path / "app-eval" / "evaluation_report.json").write_text(report)
    result = run(pytester, NO_TRACKING, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert evaluated_apps(pytester) == []
