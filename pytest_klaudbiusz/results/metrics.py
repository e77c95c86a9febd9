"""Every metric's name, direction and format, in one place: a new metric is one edit here.

* ``CHECKS``/``RATES``: the per-app pass/fail checks and the summary rate of each;
* ``APP_METRICS``: an app's ``metrics`` keys, in report order (CSV columns, MLflow table);
* ``AVERAGED``: the app metrics the summary averages (``avg_<name>``);
* ``SUMMARY_METRICS``: every known summary metric in the order people read them, with
  whether higher is better (gates, comparisons) and whether it is a fraction (percent);
* ``format_value``/``format_amount``: a metric value and a change of it, as printed.

Pure: standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

#: Per-app boolean checks; ``False`` fails the app's pytest case, ``None`` means
#: "not applicable" (no types to check, no data endpoints) and fails nothing.
CHECKS = (
    "build_success",
    "runtime_success",
    "type_safety",
    "tests_pass",
    "databricks_connectivity",
    "data_returned",
    "ui_renders",
)

#: The stage whose outcome decides each check.
CHECK_STAGES = {
    "build_success": "build",
    "runtime_success": "runtime",
    "type_safety": "typecheck",
    "tests_pass": "test",
    "databricks_connectivity": "data",
    "data_returned": "data_returned",
    "ui_renders": "ui",
}

#: Summary rate name for each check.
RATES = {check: f"{check}_rate" for check in CHECKS}

#: The checks whose rates make up ``overall_quality_score``.
QUALITY_CHECKS = ("build_success", "runtime_success", "tests_pass", "databricks_connectivity")

#: The app metrics the summary averages over the evaluated apps, as ``avg_<name>``.
AVERAGED = (
    "local_runability_score",
    "deployability_score",
    "appeval_100",
    "build_time_sec",
    "startup_time_sec",
    "test_coverage_pct",
)

#: An app's ``metrics`` keys in report order; ``TABLE`` ones go to MLflow's apps table too.
APP_METRICS = (
    *CHECKS,
    "local_runability_score",
    "deployability_score",
    "test_coverage_pct",
    "build_time_sec",
    "startup_time_sec",
    "total_loc",
    "has_dockerfile",
    "has_tests",
    "appeval_100",
)
TABLE_METRICS = tuple(m for m in APP_METRICS if m != "has_dockerfile")

#: An app's generation data that reports and tables show (``generation_metrics`` keys).
GENERATION_KEYS = ("cost_usd", "input_tokens", "output_tokens", "turns")

HIGHER = "higher"
LOWER = "lower"


@dataclass(frozen=True)
class SummaryMetric:
    name: str
    better: str  # HIGHER or LOWER
    fraction: bool = False  # a share in 0-1, shown in percent
    headline: bool = False  # in the short tables (Markdown summary of a CI job)


_H, _L = HIGHER, LOWER

#: The usual summary metrics, in the order comparisons show them.
_USUAL = (
    *(SummaryMetric(rate, _H, fraction=True, headline=True) for rate in RATES.values()),
    SummaryMetric("overall_quality_score", _H, fraction=True, headline=True),
    SummaryMetric("avg_appeval_100", _H, headline=True),
    SummaryMetric("avg_local_runability_score", _H),
    SummaryMetric("avg_deployability_score", _H),
    SummaryMetric("avg_test_coverage_pct", _H),
    SummaryMetric("total_apps", _H),
    SummaryMetric("evaluated", _H),
    SummaryMetric("infra_errors", _L),
    SummaryMetric("not_run", _L),
    SummaryMetric("avg_build_time_sec", _L),
    SummaryMetric("avg_startup_time_sec", _L),
    SummaryMetric("generation_cost_usd", _L),
    SummaryMetric("avg_cost_per_app_usd", _L, headline=True),
    SummaryMetric("cost_per_passing_app_usd", _L),
    SummaryMetric("apps_per_dollar", _H),
    SummaryMetric("total_input_tokens", _L),
    SummaryMetric("total_output_tokens", _L),
    SummaryMetric("avg_turns_per_app", _L),
)
#: Known too, shown after the usual ones (sorted, with any custom metric).
_OTHER = (
    SummaryMetric("reused", _L),  # results from the cache or the last report: staler
    SummaryMetric("apps_with_generation_metrics", _H),
    SummaryMetric("avg_total_loc", _H),
    SummaryMetric("total_cache_read_tokens", _L),
    SummaryMetric("total_cache_creation_tokens", _L),
    SummaryMetric("avg_generation_time_sec", _L),
    SummaryMetric("avg_input_tokens_per_app", _L),
    SummaryMetric("avg_output_tokens_per_app", _L),
    SummaryMetric("avg_evaluation_time_sec", _L),
)
SUMMARY_METRICS = (*_USUAL, *_OTHER)

#: Whether a bigger value of each known summary metric is better or worse.
METRIC_DIRECTIONS = {m.name: m.better for m in SUMMARY_METRICS}
#: Summary metrics that are fractions in 0-1 (shown as percentages, limits in 0-1).
FRACTION_METRICS = frozenset(m.name for m in SUMMARY_METRICS if m.fraction)
#: The order comparisons show metrics in; any other metric follows, sorted.
DISPLAY_ORDER = tuple(m.name for m in _USUAL)
#: The few metrics of a short summary table.
HEADLINE_METRICS = tuple(m.name for m in SUMMARY_METRICS if m.headline)


#: Custom metrics recorded by a suite reach the summary as ``avg_<name>``.
CUSTOM_METRIC = re.compile(r"avg_[A-Za-z_][A-Za-z0-9_]*")


def direction(metric: str, lower: Iterable[str] = (), higher: Iterable[str] = ()) -> str | None:
    """``HIGHER`` or ``LOWER`` is better, or ``None`` for a metric nobody knows (a custom
    metric, ``avg_<name>``, is higher-is-better unless declared otherwise)."""
    if metric in set(higher):
        return HIGHER
    if metric in set(lower):
        return LOWER
    if metric in METRIC_DIRECTIONS:
        return METRIC_DIRECTIONS[metric]
    if CUSTOM_METRIC.fullmatch(metric):
        return HIGHER
    return None


def percent(fraction: float | None) -> str:
    """A share in 0-1 as people read it: 80.0%."""
    return "n/a" if fraction is None else f"{100 * fraction:.1f}%"


def format_value(metric: str | None, value: float | None) -> str:
    """A metric value as people read it: fractions in percent (80.0%), whole numbers with
    thousands separators, others to three decimals at most; "n/a" when missing."""
    if value is None:
        return "n/a"
    if metric in FRACTION_METRICS:
        return percent(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def format_amount(metric: str | None, amount: float | None) -> str:
    """A difference of a metric: percentage points for fractions."""
    if amount is None:
        return "n/a"
    if metric in FRACTION_METRICS:
        return f"{100 * amount:.1f} pp"
    return format_value(None, amount)
