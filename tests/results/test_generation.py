"""Generation cost: the bulk results file, joining it to apps, the summary and the cost view."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_klaudbiusz.results.aggregate import build_report, summarize
from pytest_klaudbiusz.results.generation import (
    GenerationResultsError,
    apply_generation_results,
    cost_quality_markdown,
    load_generation_results,
    model_of,
)
from pytest_klaudbiusz.results.metrics import CHECKS
from pytest_klaudbiusz.results.model import AppResult, AppStatus
from pytest_klaudbiusz.results.render import render_markdown

RUN = {"mode": "mcp", "started_at": "2026-01-02T03:04:05Z", "finished_at": "2026-01-02T03:09:05Z"}


def write_results(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "bulk_run_results.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


# --- the bulk results file ------------------------------------------------------------------


def test_bulk_results_are_keyed_by_app_folder_never_by_prompt(tmp_path: Path) -> None:
    path = write_results(tmp_path, [
        {"prompt": "Build a sales dashboard", "app_name": "sales-dashboard",
         "metrics": {"cost_usd": 0.42, "input_tokens": 1200, "output_tokens": 300, "turns": 14,
                     "model": "claude-a"}},
        {"prompt": "Build a sales dashboard", "app_dir": "/home/ci/out/sales-dashboard-2/",
         "metrics": {"cost_usd": 0.4, "unrelated": "x"}},
        {"app_dir": "C:\\gen\\out\\inventory", "model": "claude-b",
         "metrics": {"cost_usd": 0.31, "cache_read_tokens": 900, "generation_time_sec": 61.5}},
        {"app_name": "failed-generation", "metrics": None},  # generation failed: no metrics
        {"app_name": "  padded  ", "metrics": {"turns": 2}},
    ])  # fmt: skip
    assert load_generation_results(path) == {
        "sales-dashboard": {
            "cost_usd": 0.42,
            "input_tokens": 1200,
            "output_tokens": 300,
            "turns": 14,
            "model": "claude-a",
        },
        "sales-dashboard-2": {"cost_usd": 0.4},
        "inventory": {
            "cost_usd": 0.31,
            "cache_read_tokens": 900,
            "generation_time_sec": 61.5,
            "model": "claude-b",
        },
        "padded": {"turns": 2},
    }


def test_bulk_results_may_be_wrapped_in_a_results_key(tmp_path: Path) -> None:
    path = write_results(tmp_path, {"results": [{"app_name": "a", "metrics": {"turns": 1}}]})
    assert load_generation_results(path) == {"a": {"turns": 1}}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not valid JSON"),
        ({"apps": []}, 'expected a JSON list of {"app_name" or "app_dir", "metrics"} entries'),
        (["x"], "entry 0 is not an object"),
        ([{"metrics": {"turns": 1}}], "entry 0 names no app (app_name or app_dir)"),
        ([{"app_name": "a"}, {"app_dir": "/x/a"}], "entry 1: app 'a' appears twice"),
        (
            [{"app_name": "a", "metrics": {"cost_usd": "0.4"}}],
            "entry 0 (a) metrics: cost_usd is not a number",
        ),
        ([{"app_name": "a", "metrics": [1]}], "entry 0 (a) metrics is not an object"),
    ],
)
def test_unusable_bulk_results_say_why_in_one_line(
    tmp_path: Path, content: Any, reason: str
) -> None:
    path = write_results(tmp_path, content)
    with pytest.raises(GenerationResultsError) as info:
        load_generation_results(path)
    assert str(info.value) == f"generation results {path}: {reason}"


def test_missing_bulk_results_file(tmp_path: Path) -> None:
    with pytest.raises(GenerationResultsError, match="cannot read"):
        load_generation_results(tmp_path / "nope.json")


def test_an_apps_own_generation_metrics_win_over_the_bulk_file() -> None:
    own = AppResult("own", "/apps/own", generation_metrics={"cost_usd": 1.0})
    bulk_only = AppResult("bulk", "/apps/bulk")
    neither = AppResult("neither", "/apps/neither")
    by_app = {"own": {"cost_usd": 9.0}, "bulk": {"cost_usd": 0.5, "turns": 3}}

    assert apply_generation_results([own, bulk_only, neither], by_app) == 1

    assert own.generation_metrics == {"cost_usd": 1.0}
    assert bulk_only.generation_metrics == {"cost_usd": 0.5, "turns": 3}
    assert neither.generation_metrics is None
    bulk_only.generation_metrics["turns"] = 4  # a copy: the bulk data is not shared
    assert by_app["bulk"]["turns"] == 3


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        (["claude-a", "claude-a"], "claude-a"),
        (["claude-a", "claude-b"], None),
        (["claude-a", None], None),  # one app without generation data: not all agree
        ([], None),
    ],
)
def test_model_is_known_only_when_every_app_agrees(
    models: list[str | None], expected: str | None
) -> None:
    apps = [
        AppResult(f"a{i}", f"/a{i}", generation_metrics={"model": m} if m else None)
        for i, m in enumerate(models)
    ]
    assert model_of(apps) == expected


# --- the summary --------------------------------------------------------------------------


def passing(**overrides: Any) -> dict[str, Any]:
    return {**dict.fromkeys(CHECKS, True), "appeval_100": 100.0, **overrides}


def test_each_generation_average_is_over_the_apps_that_report_it() -> None:
    apps = [
        AppResult("a", "/a", metrics=passing(),
                  generation_metrics={"cost_usd": 1.0, "input_tokens": 10, "turns": 4,
                                      "cache_read_tokens": 7, "generation_time_sec": 30.0}),
        AppResult("b", "/b", metrics=passing(tests_pass=False),
                  generation_metrics={"cost_usd": 3.0, "output_tokens": 5}),
        # tokens but no cost: not a free app
        AppResult("c", "/c", metrics=passing(), generation_metrics={"turns": 8}),
        AppResult("d", "/d", metrics=passing()),
    ]  # fmt: skip
    summary = summarize(apps)
    generation = {k: v for k, v in summary.items() if k not in summarize([]) or "gen" in k}
    assert generation == {
        "apps_with_generation_metrics": 3,
        "generation_cost_usd": 4.0,
        "avg_cost_per_app_usd": 2.0,  # over a and b, not over a, b and c
        "total_input_tokens": 10,
        "total_output_tokens": 5,
        "avg_turns_per_app": 6.0,
        "apps_per_dollar": 0.5,
        "cost_per_passing_app_usd": 4.0,  # a passes; c passes but has no cost
        "total_cache_read_tokens": 7,
        "avg_generation_time_sec": 30.0,
    }


# --- the Markdown view --------------------------------------------------------------------


def cost_report() -> dict[str, Any]:
    apps = [
        AppResult("cheap-good", "/a", metrics=passing(appeval_100=100.0),
                  generation_metrics={"cost_usd": 0.25, "turns": 5, "output_tokens": 12000}),
        AppResult("pricey-broken", "/b",
                  metrics=passing(build_success=False, runtime_success=False, appeval_100=1.5),
                  generation_metrics={"cost_usd": 1.25, "turns": 30}),
        AppResult("infra", "/c", status=AppStatus.INFRA_ERROR, error="npm missing",
                  generation_metrics={"cost_usd": 0.5}),
        AppResult("no-cost", "/d", metrics=passing(), generation_metrics={"turns": 3}),
    ]  # fmt: skip
    return build_report(apps, RUN)


def test_cost_vs_quality_per_mode_and_per_app() -> None:
    lines = cost_quality_markdown(cost_report())
    assert lines == [
        "## Cost vs quality",
        "",
        "Quality is over the apps with cost data; a passing app passes every applicable check.",
        "",
        "| Mode | Apps with cost | Total USD | USD per app | Passing apps | USD per passing app"
        " | Avg appeval_100 |",
        "|---|---|---|---|---|---|---|",
        "| mcp | 3 / 4 | 2.00 | 0.67 | 1 / 2 | 2.00 | 50.8 |",
        "",
        "| App | USD | Turns | Output tokens | appeval_100 | Verdict |",
        "|---|---|---|---|---|---|",
        "| pricey-broken | 1.25 | 30 | n/a | 1.5 | fails build_success, runtime_success |",
        "| infra | 0.50 | n/a | n/a | n/a | infra error |",
        "| cheap-good | 0.25 | 5 | 12,000 | 100.0 | passes |",
    ]


def test_cost_view_is_in_the_markdown_report_only_with_cost_data() -> None:
    assert "## Cost vs quality" in render_markdown(cost_report())
    without = build_report([AppResult("a", "/a", metrics=passing())], RUN)
    assert cost_quality_markdown(without) == []
    assert "Cost vs quality" not in render_markdown(without)
