"""One source for metric names and formats (results/metrics.py)."""

from __future__ import annotations

from pytest_klaudbiusz.results.aggregate import build_report
from pytest_klaudbiusz.results.metrics import (
    DISPLAY_ORDER,
    FRACTION_METRICS,
    METRIC_DIRECTIONS,
    RATES,
    format_amount,
    format_value,
)
from pytest_klaudbiusz.results.model import AppResult


def test_values_show_fractions_in_percent_numbers_plainly_and_missing_as_na() -> None:
    assert format_value("tests_pass_rate", 0.85) == "85.0%"
    assert format_value("overall_quality_score", 0.8) == "80.0%"
    assert format_value("tests_pass_rate", None) == "n/a"
    assert format_value("total_apps", 20.0) == "20"
    assert format_value("total_output_tokens", 1234567.0) == "1,234,567"
    assert format_value("avg_deployability_score", 3.25) == "3.25"
    assert format_value("avg_cost_per_app_usd", 0.12345) == "0.123"
    assert format_amount("tests_pass_rate", 0.05) == "5.0 pp"
    assert format_amount("avg_cost_per_app_usd", 0.5) == "0.5"


def test_every_summary_metric_of_a_report_is_known_and_shown_in_order() -> None:
    app = AppResult("a", "/apps/a", metrics={"build_success": True, "appeval_100": 70.0})
    summary = build_report([app], {"mode": "manual"})["summary"]
    unknown = [m for m in summary if m not in METRIC_DIRECTIONS]
    assert unknown == []
    assert set(RATES.values()) <= FRACTION_METRICS
    assert DISPLAY_ORDER[: len(RATES)] == tuple(RATES.values())
    assert len(set(DISPLAY_ORDER)) == len(DISPLAY_ORDER)
