"""Aggregate app results into the evaluation report (the JSON source of truth).

The report's shape is ``report.EvaluationReport``. A rate is over the evaluated apps the
check applies to; ``null`` when it applies to none. Infrastructure errors and apps that
never ran are counted, never rated.
``reused`` counts the results taken from the cache or the last report (``reused_from``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from statistics import fmean
from typing import Any

from pytest_klaudbiusz.results.metrics import AVERAGED, CHECKS, QUALITY_CHECKS, RATES
from pytest_klaudbiusz.results.model import SCHEMA_VERSION, AppResult, AppStatus
from pytest_klaudbiusz.results.report import EvaluationReport


def _mean(values: Iterable[float | int | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return fmean(present) if present else None


def check_counts(apps: list[AppResult]) -> dict[str, dict[str, int]]:
    evaluated = [a for a in apps if a.status is AppStatus.EVALUATED]
    counts = {}
    for check in CHECKS:
        values = [a.metrics.get(check) for a in evaluated]
        counts[check] = {
            "passed": sum(v is True for v in values),
            "checked": sum(v is not None for v in values),
        }
    return counts


def generation_summary(apps: list[AppResult]) -> dict[str, float | int | None]:
    """Cost and token totals over the apps that have generation data; each average is over
    the apps that report that value (an app without ``cost_usd`` does not count as free)."""
    gens = [a.generation_metrics for a in apps if a.generation_metrics]
    if not gens:
        return {"apps_with_generation_metrics": 0}

    def values(key: str) -> list[float]:
        return [float(g[key]) for g in gens if g.get(key) is not None]

    costs = values("cost_usd")
    cost = sum(costs)
    passing = sum(
        1
        for a in apps
        if (a.generation_metrics or {}).get("cost_usd") is not None
        and a.status is AppStatus.EVALUATED
        and not a.failed_checks()
    )
    summary: dict[str, float | int | None] = {
        "apps_with_generation_metrics": len(gens),
        "generation_cost_usd": cost if costs else None,
        "avg_cost_per_app_usd": cost / len(costs) if costs else None,
        "total_input_tokens": round(sum(values("input_tokens"))),
        "total_output_tokens": round(sum(values("output_tokens"))),
        "avg_turns_per_app": _mean(values("turns")),
        "apps_per_dollar": len(costs) / cost if cost > 0 else None,
        "cost_per_passing_app_usd": cost / passing if passing else None,
    }
    for key in ("cache_read_tokens", "cache_creation_tokens"):
        if present := values(key):
            summary[f"total_{key}"] = round(sum(present))
    if times := values("generation_time_sec"):
        summary["avg_generation_time_sec"] = _mean(times)
    return summary


def summarize(apps: list[AppResult]) -> dict[str, float | int | None]:
    evaluated = [a for a in apps if a.status is AppStatus.EVALUATED]
    counts = check_counts(apps)
    summary: dict[str, float | int | None] = {
        "total_apps": len(apps),
        "evaluated": len(evaluated),
        "infra_errors": sum(a.status is AppStatus.INFRA_ERROR for a in apps),
        "not_run": sum(a.status is AppStatus.NOT_RUN for a in apps),
        "reused": sum(a.reused_from is not None for a in apps),  # earlier results, not run
    }
    for check, rate in RATES.items():
        c = counts[check]
        summary[rate] = c["passed"] / c["checked"] if c["checked"] else None
    quality = [summary[RATES[c]] for c in QUALITY_CHECKS]
    summary["overall_quality_score"] = _mean(quality)
    for key in AVERAGED:
        summary[f"avg_{key}"] = _mean(a.metrics.get(key) for a in evaluated)
    summary.update(generation_summary(apps))
    for name in sorted({n for a in evaluated for n in a.custom_metrics}):
        summary.setdefault(f"avg_{name}", _mean(a.custom_metrics.get(name) for a in evaluated))
    return {k: v for k, v in summary.items() if v is None or math.isfinite(v)}


def build_report(apps: list[AppResult], run: dict[str, Any]) -> EvaluationReport:
    ordered = sorted(apps, key=lambda a: a.app_name)
    return {
        "schema_version": SCHEMA_VERSION,
        "run": run,
        "summary": summarize(ordered),
        "counts": check_counts(ordered),
        "apps": [a.to_dict() for a in ordered],
    }


def apps_of(report: EvaluationReport) -> list[AppResult]:
    return [AppResult.from_dict(a) for a in report["apps"]]
