"""The apps' running order, as a pure function of the previous report's durations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_klaudbiusz.scale.scheduling import (
    OrderError,
    app_durations,
    load_durations,
    longest_first,
    parse_order,
)


def entry(name: str, *seconds: float, status: str = "evaluated") -> dict[str, Any]:
    stages = [
        {"name": f"stage{i}", "outcome": "passed", "duration_sec": s} for i, s in enumerate(seconds)
    ]
    return {"app_name": name, "app_dir": f"/apps/{name}", "status": status, "stages": stages}


def test_an_apps_duration_is_the_sum_of_its_stages() -> None:
    report = {"apps": [entry("a", 1.5, 2.25), entry("b", 0.0), entry("c", 3)]}
    assert app_durations(report) == {"a": 3.75, "b": 0.0, "c": 3.0}


def test_apps_whose_evaluation_did_not_finish_have_no_duration() -> None:
    report = {
        "apps": [
            entry("crashed", 0.5, status="infra_error"),
            entry("interrupted", status="not_run"),
            entry("no-stages"),
            entry("done", 1),
        ]
    }
    assert app_durations(report) == {"done": 1.0}


@pytest.mark.parametrize(
    ("report", "reason"),
    [
        ([], "not an evaluation report"),
        ({"apps": {}}, "not an evaluation report"),
        ({"apps": [{"stages": []}]}, "an app entry has no app_name"),
        ({"apps": [{"app_name": "a", "stages": {}}]}, "app 'a': stages without a duration_sec"),
        ({"apps": [entry("a", -1)]}, "app 'a': stages without a duration_sec"),
        ({"apps": [entry("a", float("nan"))]}, "app 'a': stages without a duration_sec"),
        ({"apps": [{**entry("a"), "stages": [{"duration_sec": "3"}]}]}, "app 'a'"),
        ({"apps": [{**entry("a"), "stages": [{"duration_sec": True}]}]}, "app 'a'"),
    ],
)
def test_a_report_of_another_shape_is_refused_with_the_reason(report: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        app_durations(report)


def test_a_missing_report_is_no_durations_and_a_broken_one_an_error(tmp_path: Path) -> None:
    path = tmp_path / "evaluation_report.json"
    assert load_durations(path) is None
    path.write_text('{"apps": [', encoding="utf-8")
    with pytest.raises(ValueError, match=r"evaluation_report.json: not JSON \(.* at line 1\)"):
        load_durations(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="cannot read"):
        load_durations(path)
    path.write_text(json.dumps({"apps": [entry("a", 2)]}), encoding="utf-8")
    assert load_durations(path) == {"a": 2.0}


def test_longest_first_puts_new_apps_first_then_the_longest_ties_by_name() -> None:
    durations = {"a": 1.0, "b": 5.0, "c": 3.0, "d": 3.0, "gone": 9.0}
    items = ["a", "b", "c", "d", "new-z", "new-y"]
    assert longest_first(items, lambda item: item, durations) == [
        "new-y",
        "new-z",
        "b",
        "c",
        "d",
        "a",
    ]


def test_only_the_apps_trade_places_and_an_apps_cases_stay_in_their_order() -> None:
    durations = {"a": 1.0, "b": 2.0}
    items = ["setup", "test_x[a]", "test_x[b]", "plain", "test_y[a]", "test_y[b]"]

    def app_of(item: str) -> str | None:
        return item[-2] if item.endswith("]") else None

    assert longest_first(items, app_of, durations) == [
        "setup",
        "test_x[b]",
        "test_y[b]",
        "plain",
        "test_x[a]",
        "test_y[a]",
    ]


def test_the_order_depends_on_the_items_and_durations_only() -> None:
    durations = {f"app{i}": float(i % 4) for i in range(20)}
    items = sorted(durations, reverse=True)
    once = longest_first(items, lambda item: item, durations)
    assert once == longest_first(sorted(items), lambda item: item, durations)
    assert once == longest_first(once, lambda item: item, durations)


def test_the_order_setting_is_longest_first_unless_collected() -> None:
    assert parse_order(None) == parse_order("") == "longest-first"
    assert parse_order(" collected ") == "collected"
    with pytest.raises(
        OrderError, match="invalid --klaud-order 'fastest': use longest-first or collected"
    ):
        parse_order("fastest")
