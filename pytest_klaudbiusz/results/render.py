"""Render the evaluation report (the JSON source of truth) as Markdown, CSV and terminal lines.

Everything here is computed from the report alone, so any output can be rebuilt from
``evaluation_report.json`` (``files.py`` writes and reads the files). Standard library
only: no pytest, no mlflow.
"""

from __future__ import annotations

import csv
import html
import io
from collections import Counter
from pathlib import Path

from pytest_klaudbiusz.results.aggregate import apps_of
from pytest_klaudbiusz.results.generation import cost_quality_markdown
from pytest_klaudbiusz.results.markdown import markdown_table
from pytest_klaudbiusz.results.metrics import APP_METRICS, GENERATION_KEYS, RATES, percent
from pytest_klaudbiusz.results.model import AppResult, AppStatus, Outcome
from pytest_klaudbiusz.results.report import FILE_NAMES, REPRODUCIBILITY_FIELDS, EvaluationReport
from pytest_klaudbiusz.results.screenshots import LEFT_OUT, SCREENSHOT_LINK, attention_first
from pytest_klaudbiusz.results.text import csv_cell, markdown_cell

FUNNEL_STAGES = ("install", "build", "runtime", "data", "data_returned", "ui", "test")


def _num(value: float | None, fmt: str = ".1f", unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{fmt}}{unit}"


def _stars(score: int | None) -> str:
    return "n/a" if score is None else "★" * score + "☆" * (5 - score) + f" {score}/5"


def _failed_criteria(app: AppResult) -> str:
    parts = []
    for key, label in (("local_runability", "local"), ("deployability", "deploy")):
        failed = [c["criterion"] for c in app.details.get(key, []) if not c["passed"]]
        if failed:
            parts.append(f"{label}: " + ", ".join(failed))
    return "; ".join(parts) or "-"


def _executive_summary(report: EvaluationReport) -> list[str]:
    summary, counts = report["summary"], report["counts"]
    rates = [
        (
            rate,
            percent(summary.get(rate)),
            f"{counts[check]['passed']} / {counts[check]['checked']}",
        )
        for check, rate in RATES.items()
    ]
    overview = [
        ("total_apps", summary["total_apps"]),
        ("evaluated", summary["evaluated"]),
        ("infra_errors", summary["infra_errors"]),
        ("not_run", summary.get("not_run", 0)),
        ("reused", summary.get("reused", 0)),
        ("overall_quality_score", percent(summary.get("overall_quality_score"))),
        ("avg_appeval_100", _num(summary.get("avg_appeval_100"))),
    ]
    overview += [
        (key, _num(summary.get(key), unit=unit))
        for key, unit in (
            ("avg_local_runability_score", " / 5"),
            ("avg_deployability_score", " / 5"),
            ("avg_build_time_sec", " s"),
            ("avg_startup_time_sec", " s"),
            ("avg_test_coverage_pct", "%"),
        )
    ]
    return [
        "## Executive summary",
        "",
        "Rates are over the evaluated apps each check applies to; n/a means it applied to none.",
        "",
        *markdown_table(("Rate", "Value", "Passed / checked"), rates),
        "",
        *markdown_table(("Metric", "Value"), overview),
    ]


def _stage_funnel(apps: list[AppResult]) -> list[str]:
    evaluated = [a for a in apps if a.status is AppStatus.EVALUATED]
    rows = []
    for name in FUNNEL_STAGES:
        outcomes = Counter(s.outcome for a in evaluated if (s := a.stage(name)))
        rows.append((name, *(outcomes[o] for o in Outcome)))
    return [
        "## Stage funnel",
        "",
        f"Stage outcomes over the {len(evaluated)} evaluated apps.",
        "",
        *markdown_table(("Stage", "Passed", "Failed", "Skipped", "Not applicable"), rows),
    ]


def _quality_distribution(apps: list[AppResult]) -> list[str]:
    buckets = {"0": 0, "1-2": 0, "3-4": 0, "5+": 0}
    for app in apps:
        if app.status is AppStatus.EVALUATED:
            n = len(app.issues)
            buckets["0" if n == 0 else "1-2" if n <= 2 else "3-4" if n <= 4 else "5+"] += 1
    return ["## Quality distribution", "", *markdown_table(("Issues", "Apps"), buckets.items())]


def _devx(apps: list[AppResult]) -> list[str]:
    rows = [
        (
            a.app_name,
            _stars(a.metrics.get("local_runability_score")),
            _stars(a.metrics.get("deployability_score")),
            _failed_criteria(a),
        )
        for a in apps
        if a.status is AppStatus.EVALUATED
    ]
    header = ("App", "Local runability", "Deployability", "Failed criteria")
    return ["## DevX stars", "", *markdown_table(header, rows)]


def _common_issues(apps: list[AppResult]) -> list[str]:
    counts = Counter(issue for a in apps for issue in a.issues)
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    body = markdown_table(("Issue", "Count"), rows) if rows else ["No issues."]
    return ["## Most common issues", "", *body]


def _attention(apps: list[AppResult]) -> list[str]:
    failing = [
        (a.app_name, a.template_type, ", ".join(a.failed_checks()), "; ".join(a.issues) or "-")
        for a in apps
        if a.status is AppStatus.EVALUATED and a.failed_checks()
    ]
    infra = [
        (a.app_name, a.error or "unknown error") for a in apps if a.status is AppStatus.INFRA_ERROR
    ]
    not_run = [a.app_name for a in apps if a.status is AppStatus.NOT_RUN]
    lines = ["## Apps needing attention", ""]
    if failing:
        lines += markdown_table(("App", "Template", "Failed checks", "Issues"), failing)
    else:
        lines.append("Every evaluated app passed every applicable check.")
    if infra:
        lines += [
            "",
            "### Infrastructure errors (not the app's fault)",
            "",
            "The harness or the machine failed; these apps are counted but not rated.",
            "",
            *markdown_table(("App", "Error"), infra),
        ]
    if not_run:
        lines += ["", "### Not run", "", "Collected but never run: " + ", ".join(not_run) + "."]
    return lines


def _screenshots(apps: list[AppResult]) -> list[str]:
    """The gallery: each app's page as the browser saw it, the apps needing attention first."""
    rows, left_out = [], []
    for app in attention_first(apps):
        link, ui = app.details.get(SCREENSHOT_LINK), app.stage("ui")
        if app.details.get(LEFT_OUT):
            left_out.append(f"{app.app_name} ({app.details[LEFT_OUT]})")
        if not isinstance(link, str) or ui is None:
            continue
        verdict = ui.outcome.value + (f": {ui.reason}" if ui.reason else "")
        image = f'<img src="{html.escape(link)}" alt="{html.escape(app.app_name)}" width="400">'
        rows.append((app.app_name, verdict, image))
    if not rows and not left_out:
        return []
    lines = [
        "## Screenshots",
        "",
        "Each app's page in a headless browser (1280x800, the whole page when it is short);"
        " apps needing attention first.",
        "",
        *markdown_table(("App", "UI", "Page"), rows),
    ]
    if left_out:
        lines += ["", "Not kept: " + markdown_cell("; ".join(left_out)) + "."]
    return lines


def _generation(report: EvaluationReport) -> list[str]:
    summary = report["summary"]
    with_data = summary.get("apps_with_generation_metrics", 0)
    if not with_data:
        return []
    rows = [
        ("Total cost", _num(summary["generation_cost_usd"], ",.2f", " USD")),
        ("Avg cost per app", _num(summary["avg_cost_per_app_usd"], ",.2f", " USD")),
        ("Cost per passing app", _num(summary.get("cost_per_passing_app_usd"), ",.2f", " USD")),
        ("Input tokens", _num(summary["total_input_tokens"], ",")),
        ("Output tokens", _num(summary["total_output_tokens"], ",")),
        ("Avg turns per app", _num(summary.get("avg_turns_per_app"))),
        ("Apps per dollar", _num(summary.get("apps_per_dollar"), ".2f")),
    ]
    return [
        "## Generation cost",
        "",
        f"{with_data} of {summary['total_apps']} apps have generation data; "
        "each average is over the apps that report that value.",
        "",
        *markdown_table(("Metric", "Value"), rows),
    ]


def _run(report: EvaluationReport) -> list[str]:
    run = report["run"]
    rows = [
        (key, run.get(key) or "n/a")
        for key in (
            "mode",
            "model_version",
            *REPRODUCIBILITY_FIELDS,
            "started_at",
            "finished_at",
            "apps_dir",
        )
    ]
    if dataset := run.get("dataset"):
        rows.append(
            ("dataset", f"{dataset.get('name')} digest {dataset.get('digest')} "
             f"({dataset.get('apps')} apps, {dataset.get('files')} files)")
        )  # fmt: skip
    if run.get("shard"):
        rows.append(
            ("shard", f"{run['shard']} (a part of an evaluation: merge with --klaud-merge)")
        )
    if shards := run.get("shards"):
        labels = ", ".join(str(s.get("shard") or s.get("report")) for s in shards)
        rows.append(("shards", f"{len(shards)} merged: {labels}"))
    if run.get("mlflow_run_id"):
        keys = ("mlflow_run_id", "tracking_uri", "experiment")
        rows += [(key, run.get(key) or "n/a") for key in keys]
    rows.append(("schema_version", report["schema_version"]))
    return ["## Run", "", *markdown_table(("Field", "Value"), rows)]


def _quality_gate_and_trend(report: EvaluationReport) -> list[str]:
    """The quality gate's verdict and the trend chart, when the evaluation had them."""
    if not (report.get("gate") or report.get("trend")):
        return []
    from pytest_klaudbiusz.ci.gate_report import quality_markdown

    return quality_markdown(report)


def render_markdown(report: EvaluationReport) -> str:
    """``EVALUATION_REPORT.md``: a self-contained human-readable report."""
    apps = apps_of(report)
    run = report["run"]
    date = str(run.get("started_at") or "")[:10]
    sections = [
        [f"# App evaluation report: {run.get('mode', 'n/a')}, {date}"],
        [f"> **{line}**" for line in _incomplete(report)],
        _executive_summary(report),
        _quality_gate_and_trend(report),
        _stage_funnel(apps),
        _quality_distribution(apps),
        _devx(apps),
        _common_issues(apps),
        _attention(apps),
        _screenshots(apps),
        _generation(report),
        cost_quality_markdown(report),
        _run(report),
    ]
    return "\n\n".join("\n".join(s) for s in sections if s) + "\n"


def render_csv(report: EvaluationReport) -> str:
    """``evaluation_report.csv``: one row per app, metrics flattened into columns."""
    apps = report["apps"]
    fixed = ("app_name", "app_dir", "template_type", "status")
    seen = {key for app in apps for key in app["metrics"]}
    metrics = [*APP_METRICS, *sorted(seen - set(APP_METRICS) - set(fixed))]
    custom = sorted({k for app in apps for k in app.get("custom_metrics") or {}})
    taken = {*fixed, *metrics, "issues", *GENERATION_KEYS, "error", "reused_from"}
    custom_columns = [f"custom_{k}" if k in taken else k for k in custom]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [*fixed, *metrics, "issues", *GENERATION_KEYS, "error", "reused_from", *custom_columns]
    )
    for app in apps:
        generation = app["generation_metrics"] or {}
        row = [
            *(app[k] for k in fixed),
            *(app["metrics"].get(k) for k in metrics),
            "; ".join(app["issues"]),
            *(generation.get(k) for k in GENERATION_KEYS),
            app["error"],
            app.get("reused_from"),
            *((app.get("custom_metrics") or {}).get(k) for k in custom),
        ]
        writer.writerow([csv_cell(v) for v in row])
    return out.getvalue()


def _incomplete(report: EvaluationReport) -> list[str]:
    if report["run"].get("status") != "interrupted":
        return []
    summary = report["summary"]
    return [
        f"INCOMPLETE: the evaluation was interrupted; {summary.get('not_run', 0)} of"
        f" {summary['total_apps']} apps have no result"
    ]


def render_terminal_summary(report: EvaluationReport, report_dir: str) -> list[str]:
    """A short block for pytest's terminal summary."""
    summary, counts, run = report["summary"], report["counts"], report["run"]
    rows = [
        (
            rate,
            percent(summary.get(rate)),
            f"  ({counts[check]['passed']}/{counts[check]['checked']})",
        )
        for check, rate in RATES.items()
    ]
    rows += [
        ("overall_quality_score", percent(summary.get("overall_quality_score")), ""),
        ("avg_appeval_100", _num(summary.get("avg_appeval_100")), ""),
    ]
    width = max(len(name) for name, _, _ in rows)
    reused = summary.get("reused", 0)
    lines = [
        *_incomplete(report),
        f"apps: {summary['total_apps']} total, {summary['evaluated']} evaluated, "
        f"{summary['infra_errors']} infra errors, {summary.get('not_run', 0)} not run"
        + (f"; {reused} reused (not run again)" if reused else ""),
        *(f"{name.ljust(width)}  {value:>6}{extra}" for name, value, extra in rows),
        f"reports: {Path(report_dir) / FILE_NAMES['markdown']} (also .json, .csv)",
    ]
    if run.get("mlflow_run_id"):
        lines.append(f"mlflow run: {run['mlflow_run_id']}")
    return lines
