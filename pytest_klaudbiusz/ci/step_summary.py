"""Markdown summaries for CI: written to ``--klaud-summary-md`` and appended to GitHub's
job summary (``$GITHUB_STEP_SUMMARY``); the evaluation's summary is built here too."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_klaudbiusz.ci import compare
    from pytest_klaudbiusz.results.report import EvaluationReport

STEP_SUMMARY = "GITHUB_STEP_SUMMARY"


def publish_markdown(
    text: str, path: Path | None, environ: Mapping[str, str], plain: str | None = None
) -> list[str]:
    """Write the Markdown to ``path`` and append it (``plain``: without local images) to
    ``$GITHUB_STEP_SUMMARY``; returns what was written where, for the user."""
    written = []
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(f"Markdown summary: {path}")
    step = environ.get(STEP_SUMMARY)
    if step:
        with open(step, "a", encoding="utf-8") as out:
            out.write((plain if plain is not None else text).rstrip("\n") + "\n\n")
        written.append(f"Markdown summary appended to ${STEP_SUMMARY}")
    return written


def evaluation_markdown(
    report: EvaluationReport,
    comparison: compare.Comparison | None,
    report_dir: Path,
    chart_link: Path | None = None,
) -> str:
    """An evaluation's Markdown summary: headline rates, the gate, the comparison with its
    baseline, the trend chart (an image linked from ``chart_link``'s folder, if given)."""
    from pytest_klaudbiusz.ci.comparison_report import render_markdown
    from pytest_klaudbiusz.ci.gate_report import markdown_lines
    from pytest_klaudbiusz.results.markdown import markdown_table
    from pytest_klaudbiusz.results.metrics import HEADLINE_METRICS, format_value

    run, summary = report["run"], report["summary"]
    lines = [
        f"# klaudbiusz evaluation: {run.get('mode')}, {str(run.get('started_at'))[:10]}",
        "",
        f"{summary.get('total_apps')} apps, {summary.get('evaluated')} evaluated,"
        f" {summary.get('infra_errors')} infrastructure errors.",
        "",
        *markdown_table(
            ("Metric", "Value"),
            [(m, format_value(m, summary[m])) for m in HEADLINE_METRICS if m in summary],
        ),
        "",
    ]
    if report.get("gate"):
        lines += [*markdown_lines(report["gate"]), ""]
    if comparison is not None:
        lines += render_markdown(comparison, sections=("latest", "apps", "tests"))
    if trend := report.get("trend"):
        chart = report_dir / trend["image"]
        lines += ["## Trend", ""]
        if chart_link is not None:
            rel = Path(os.path.relpath(chart, chart_link.parent)).as_posix()
            lines += [f"![rates of the last {run.get('mode')} runs]({rel})", ""]
        else:
            lines += [f"Trend chart: `{chart}` (also an MLflow artifact of the run).", ""]
    if run.get("mlflow_run_id"):
        lines += [f"MLflow run `{run['mlflow_run_id']}` in {run.get('experiment')}.", ""]
    return "\n".join(lines).rstrip("\n") + "\n"
