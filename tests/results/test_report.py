"""Aggregating app results into the report summary (pytest_klaudbiusz.results.aggregate)."""

from __future__ import annotations

import json
import math

import pytest
from helpers import app, metrics, sample

from pytest_klaudbiusz.results.aggregate import apps_of, build_report, check_counts, summarize
from pytest_klaudbiusz.results.metrics import CHECKS, RATES
from pytest_klaudbiusz.results.model import SCHEMA_VERSION, AppStatus


def test_counts_and_totals() -> None:
    summary = summarize(sample())
    assert summary["total_apps"] == 5
    assert summary["evaluated"] == 3
    assert summary["infra_errors"] == 1
    assert summary["not_run"] == 1
    counts = check_counts(sample())
    assert set(counts) == set(CHECKS)
    assert counts["build_success"] == {"passed": 2, "checked": 3}
    assert counts["databricks_connectivity"] == {"passed": 1, "checked": 2}
    assert counts["type_safety"] == {"passed": 1, "checked": 1}
    assert counts["data_returned"] == {"passed": 1, "checked": 1}


def test_rates_over_evaluated_apps_where_the_check_applies() -> None:
    summary = summarize(sample())
    assert summary["build_success_rate"] == pytest.approx(2 / 3)
    assert summary["runtime_success_rate"] == pytest.approx(2 / 3)
    assert summary["tests_pass_rate"] == pytest.approx(2 / 3)
    assert summary["databricks_connectivity_rate"] == pytest.approx(1 / 2)
    assert summary["type_safety_rate"] == 1.0
    assert summary["data_returned_rate"] == 1.0
    assert set(RATES.values()) <= set(summary)


def test_rate_is_none_when_no_app_has_the_check_never_zero() -> None:
    apps = [app("a", metrics=metrics()), app("b", metrics=metrics(build_success=False))]
    summary = summarize(apps)
    assert summary["type_safety_rate"] is None
    assert summary["build_success_rate"] == 0.5
    no_data = [app("a", metrics=metrics(databricks_connectivity=None, data_returned=None))]
    summary = summarize(no_data)
    assert summary["databricks_connectivity_rate"] is None
    assert summary["data_returned_rate"] is None
    # overall quality: the mean of the rates that exist (build, runtime, tests)
    assert summary["overall_quality_score"] == 1.0


def test_all_failing_rate_is_zero_not_none() -> None:
    summary = summarize([app("a", metrics=metrics(tests_pass=False))])
    assert summary["tests_pass_rate"] == 0.0


def test_infra_errors_and_not_run_are_counted_not_rated() -> None:
    good = app("good", metrics=metrics())
    summary = summarize([good, *sample()[3:]])
    assert summary["total_apps"] == 3
    assert summary["evaluated"] == 1
    assert summary["build_success_rate"] == 1.0  # delta's stale build_success=False ignored
    assert summary["runtime_success_rate"] == 1.0  # echo's ignored
    assert summary["avg_appeval_100"] == 100.0
    assert "avg_ui_score" not in summary  # delta's custom metric is not averaged


def test_nothing_evaluated() -> None:
    summary = summarize(sample()[3:])
    assert summary["total_apps"] == 2 and summary["evaluated"] == 0
    assert all(summary[rate] is None for rate in RATES.values())
    assert summary["overall_quality_score"] is None
    assert summary["avg_appeval_100"] is None
    summary = summarize([])
    assert summary["total_apps"] == 0 and summary["overall_quality_score"] is None


def test_overall_quality_is_mean_of_build_runtime_tests_connectivity() -> None:
    summary = summarize(sample())
    # (2/3 + 2/3 + 2/3 + 1/2) / 4; type safety (1.0) and data returned (1.0) are not in it
    assert summary["overall_quality_score"] == pytest.approx(0.625)


def test_averages_over_evaluated_apps_with_a_value() -> None:
    summary = summarize(sample())
    assert summary["avg_local_runability_score"] == pytest.approx(3.0)  # (5 + 1 + 3) / 3
    assert summary["avg_deployability_score"] == pytest.approx(4.0)  # (5 + 2 + 5) / 3
    assert summary["avg_appeval_100"] == pytest.approx((100 + 0.5 + 90) / 3)
    assert summary["avg_build_time_sec"] == pytest.approx(20.0)
    assert summary["avg_startup_time_sec"] == pytest.approx(2.0)  # one app started
    assert summary["avg_test_coverage_pct"] == pytest.approx(60.0)


def test_generation_summary() -> None:
    summary = summarize(sample())
    assert summary["apps_with_generation_metrics"] == 3  # alpha, bravo and delta (infra)
    assert summary["generation_cost_usd"] == pytest.approx(4.0)
    assert summary["avg_cost_per_app_usd"] == pytest.approx(4.0 / 3)
    assert summary["total_input_tokens"] == 4500
    assert summary["total_output_tokens"] == 450
    assert summary["avg_turns_per_app"] == pytest.approx(15.0)  # delta has no turns
    assert summary["apps_per_dollar"] == pytest.approx(3 / 4.0)
    assert summary["cost_per_passing_app_usd"] == pytest.approx(4.0)  # only alpha passes


def test_generation_summary_without_data_or_cost_or_passing_app() -> None:
    plain = summarize([app("a", metrics=metrics())])
    assert plain["apps_with_generation_metrics"] == 0
    assert "generation_cost_usd" not in plain and "apps_per_dollar" not in plain
    free = summarize([app("a", metrics=metrics(tests_pass=False),
                          generation_metrics={"cost_usd": 0.0, "turns": 3})])  # fmt: skip
    assert free["generation_cost_usd"] == 0.0
    assert free["apps_per_dollar"] is None  # never a division by zero
    assert free["cost_per_passing_app_usd"] is None  # no app passed


def test_custom_metrics_are_averaged_over_evaluated_apps() -> None:
    summary = summarize(sample())
    assert summary["avg_ui_score"] == pytest.approx(0.75)  # delta's 0.0 (infra) left out
    assert summary["avg_latency_ms"] == pytest.approx(120.0)  # only alpha recorded it


def test_custom_metric_cannot_replace_a_builtin_average() -> None:
    apps = [app("a", metrics=metrics(), custom_metrics={"appeval_100": 1.0})]
    assert summarize(apps)["avg_appeval_100"] == 100.0


def test_summary_is_json_safe_even_with_non_finite_values() -> None:
    # the fixture refuses non-finite values; the summary still never emits one
    apps = [
        app("a", metrics=metrics(), custom_metrics={"score": 1.0}),
        app("b", metrics=metrics(), custom_metrics={"broken": math.inf, "nan": math.nan}),
    ]
    summary = summarize(apps)
    json.dumps(summary, allow_nan=False)
    assert summary["avg_score"] == 1.0
    assert all(v is None or math.isfinite(v) for v in summary.values())


def test_build_report_sorted_json_safe_and_round_trips() -> None:
    run = {"mode": "mcp", "started_at": "2025-01-01T00:00:00+00:00"}
    apps = [*sample(), app("Émile", metrics=metrics()), app("app 2", metrics=metrics())]
    report = build_report(apps, run)
    assert report["schema_version"] == SCHEMA_VERSION
    assert report["run"] == run
    names = [a["app_name"] for a in report["apps"]]
    assert (
        names == sorted(names) == ["alpha", "app 2", "bravo", "charlie", "delta", "echo", "Émile"]
    )
    assert report["summary"] == summarize(apps)
    assert report["counts"] == check_counts(apps)
    assert report["summary"]["total_apps"] == len(apps)
    text = json.dumps(report, allow_nan=False)
    loaded = json.loads(text)
    assert [a.app_name for a in apps_of(loaded)] == names
    assert apps_of(loaded) == sorted(apps, key=lambda a: a.app_name)
    assert apps_of(loaded)[names.index("delta")].status is AppStatus.INFRA_ERROR


def test_reused_results_are_counted_and_old_reports_load_without_the_mark() -> None:
    apps = [
        app("alpha", metrics=metrics(), reused_from="cache"),
        app("bravo", metrics=metrics(), reused_from="report"),
        app("charlie", metrics=metrics()),
    ]
    report = build_report(apps, {"mode": "mcp"})
    assert report["summary"]["reused"] == 2
    assert [a["reused_from"] for a in report["apps"]] == ["cache", "report", None]
    old = [{k: v for k, v in a.items() if k != "reused_from"} for a in report["apps"]]
    assert [a.reused_from for a in apps_of({"apps": old})] == [None, None, None]
