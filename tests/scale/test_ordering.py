"""The apps' running order in real pytest sessions: longest first from the previous report.

Each app's build appends its name to ``order.txt``, so the file holds the order the apps
really ran in (serial runs); under xdist, ``-v`` tells which worker ran which app.
The previous reports are written by hand with the durations a test needs, except in
the first test, which runs the apps twice.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import INI, NO_TRACKING, make_app, make_suite, read_report, run

NO_CACHE = ("-p", "no:cacheprovider")


def make_apps(pytester: pytest.Pytester, builds: dict[str, str]) -> None:
    """Apps without a server (their runtime check fails, which is beside the point here)."""
    order = pytester.path / "order.txt"
    for name, build in builds.items():
        make_app(pytester.path, name, start="", data=False, build=f"{build}echo {name} >> {order}")
    make_suite(pytester)


def ran(pytester: pytest.Pytester) -> list[str]:
    path = pytester.path / "order.txt"
    names = path.read_text(encoding="utf-8").split()
    path.unlink()
    return names


def write_previous_report(pytester: pytest.Pytester, durations: dict[str, float]) -> Path:
    apps = [
        {
            "app_name": name,
            "app_dir": str(pytester.path / "apps" / name),
            "status": "evaluated",
            "stages": [
                {"name": "build", "outcome": "passed", "duration_sec": seconds / 2},
                {"name": "test", "outcome": "passed", "duration_sec": seconds / 2},
            ],
        }
        for name, seconds in durations.items()
    ]
    folder = pytester.path / "app-eval"
    folder.mkdir(exist_ok=True)
    path = folder / "evaluation_report.json"
    report = {"schema_version": 1, "run": {}, "summary": {}, "counts": {}, "apps": apps}
    path.write_text(json.dumps(report), encoding="utf-8")
    return path


def quick_apps(pytester: pytest.Pytester, *names: str) -> None:
    make_apps(pytester, dict.fromkeys(names, ""))


def test_the_second_run_starts_with_the_apps_that_took_longest(
    pytester: pytest.Pytester,
) -> None:
    make_apps(pytester, {"a-quick": "", "b-slow": "sleep 1; ", "c-medium": "sleep 0.5; "})
    first = run(pytester, NO_TRACKING, *NO_CACHE)
    first.stdout.fnmatch_lines(["klaudbiusz: apps run in collected order (no previous report *)"])
    assert ran(pytester) == ["a-quick", "b-slow", "c-medium"]
    make_app(pytester.path, "0-new", start="", data=False)  # not in the report: first
    second = run(pytester, NO_TRACKING, *NO_CACHE, "-v")
    second.stdout.fnmatch_lines(
        [
            "klaudbiusz: apps run longest first (durations from *evaluation_report.json)",
            "*test_app?0-new? FAILED*",
            "*test_app?b-slow? FAILED*",
            "*test_app?c-medium? FAILED*",
            "*test_app?a-quick? FAILED*",
        ]
    )
    assert ran(pytester) == ["b-slow", "c-medium", "a-quick"]  # 0-new does not write
    assert [a["app_name"] for a in read_report(pytester.path / "app-eval")["apps"]] == [
        "0-new",
        "a-quick",
        "b-slow",
        "c-medium",
    ]  # the report keeps its own order


def test_collected_order_from_the_option_or_the_ini(pytester: pytest.Pytester) -> None:
    quick_apps(pytester, "a", "b", "c")
    write_previous_report(pytester, {"a": 1, "b": 3, "c": 2})
    result = run(pytester, NO_TRACKING, *NO_CACHE)
    assert ran(pytester) == ["b", "c", "a"]
    result = run(pytester, NO_TRACKING, *NO_CACHE, "--klaud-order=collected")
    result.stdout.fnmatch_lines(["klaudbiusz: apps run in collected order (--klaud-order)"])
    assert ran(pytester) == ["a", "b", "c"]
    pytester.makeini(INI + "klaud_order = collected\n")
    run(pytester, NO_TRACKING, *NO_CACHE)
    assert ran(pytester) == ["a", "b", "c"]
    write_previous_report(pytester, {"a": 1, "b": 3, "c": 2})  # each run writes its own
    run(pytester, NO_TRACKING, *NO_CACHE, "--klaud-order", "longest-first")  # option wins
    assert ran(pytester) == ["b", "c", "a"]


def test_an_unknown_order_is_a_one_line_usage_error(pytester: pytest.Pytester) -> None:
    quick_apps(pytester, "a")
    result = run(pytester, NO_TRACKING, "--klaud-order=fastest")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: invalid --klaud-order 'fastest': use longest-first or collected"]
    )
    assert "Traceback" not in result.stderr.str()


@pytest.mark.parametrize(
    "content",
    ['{"apps": [', '{"apps": [{"app_name": "a", "stages": [{"duration_sec": "x"}]}]}', "[]"],
)
def test_a_broken_previous_report_is_a_warning_and_the_apps_run_in_collected_order(
    pytester: pytest.Pytester, content: str
) -> None:
    quick_apps(pytester, "a", "b")
    path = write_previous_report(pytester, {})
    path.write_text(content, encoding="utf-8")
    result = run(pytester, NO_TRACKING, *NO_CACHE, "-q")
    result.assert_outcomes(failed=2)  # the apps' runtime checks, not the session
    result.stdout.fnmatch_lines(
        ["WARNING: previous report unusable, apps run in collected order: *"]
    )
    assert ran(pytester) == ["a", "b"]
    assert len(read_report(pytester.path / "app-eval")["apps"]) == 2  # and replaced


def test_keyword_selection_keeps_longest_first(pytester: pytest.Pytester) -> None:
    quick_apps(pytester, "a", "b", "c", "d")
    write_previous_report(pytester, {"a": 4, "b": 1, "c": 3, "d": 2})
    result = run(pytester, NO_TRACKING, *NO_CACHE, "-k", "not c")
    result.assert_outcomes(failed=3, deselected=1)
    assert ran(pytester) == ["a", "d", "b"]


def test_pytest_split_groups_the_collected_order_and_each_group_runs_longest_first(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("pytest_split")
    quick_apps(pytester, "a", "b", "c", "d")
    groups = []
    for group in ("1", "2"):  # each a CI job with the report of the full previous run
        write_previous_report(pytester, {"a": 1, "b": 2, "c": 3, "d": 4})
        run(pytester, NO_TRACKING, *NO_CACHE, "--splits", "2", "--group", group)
        groups.append(ran(pytester))
    # without test durations pytest-split cuts the order it is given in two halves:
    # reordered before it, group 1 would be the two longest apps
    assert groups == [["b", "a"], ["d", "c"]]


def workers_of(output: str) -> dict[str, set[str]]:
    apps: dict[str, set[str]] = {}
    for worker, app in re.findall(r"\[(gw\d)\] .*test_app\[(\w+)\]", output):
        apps.setdefault(worker, set()).add(app)
    return apps


def test_under_xdist_the_longest_apps_are_dealt_to_different_workers(
    pytester: pytest.Pytester,
) -> None:
    quick_apps(pytester, "a", "b", "c", "d")
    write_previous_report(pytester, {"a": 1, "b": 2, "c": 3, "d": 4})
    result = run(pytester, NO_TRACKING, *NO_CACHE, "-n", "2", "-v")
    result.assert_outcomes(failed=4)
    assert "Different tests collected" not in result.stdout.str()
    # xdist's load would give one worker d and c (its first two items); dealt as a snake,
    # the worker running the longest app gets the shortest as its second
    assert sorted(workers_of(result.stdout.str()).values(), key=sorted) == [
        {"a", "d"},
        {"b", "c"},
    ]
    assert len(read_report(pytester.path / "app-eval")["apps"]) == 4


def test_under_xdist_other_dist_modes_keep_their_scheduler(pytester: pytest.Pytester) -> None:
    quick_apps(pytester, "a", "b", "c", "d")
    write_previous_report(pytester, {"a": 1, "b": 2, "c": 3, "d": 4})
    result = run(pytester, NO_TRACKING, *NO_CACHE, "-n", "2", "-v", "--dist", "loadfile")
    result.assert_outcomes(failed=4)
    assert [set(apps) for apps in workers_of(result.stdout.str()).values()] == [
        {"a", "b", "c", "d"}
    ]  # one file, one worker
