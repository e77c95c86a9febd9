"""What the MLflow UI shows about an evaluation besides numbers: the run's description
(``mlflow.note.content``, rendered as Markdown on the run page), the experiment's, and the
uploaded Markdown report's image links.

MLflow's artifact preview renders Markdown images only from absolute ``http(s)`` URLs: a
relative link (``trend.png``) shows as the literal text ``[alt](trend.png)`` and ``data:``
URLs are dropped (``GenAIMarkdownRenderer``'s ``img`` and react-markdown's
``defaultUrlTransform`` in mlflow/server/js, 3.17). So the copy of the report uploaded to an
MLflow server links its images to the server's own ``get-artifact`` endpoint for the run;
the local report keeps relative links (they work beside the file).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from pytest_klaudbiusz.results.markdown import markdown_table
from pytest_klaudbiusz.results.metrics import CHECKS, RATES, percent

NOTE_TAG = "mlflow.note.content"  # MLflow's own: the description the UI shows and edits
MAX_NOTE_CHARS = 7500  # tag values beyond 8,000 characters are cut by some stores
ATTENTION_ROWS = 25

EXPERIMENT_DESCRIPTION = (
    "Evaluations of AI-generated apps by pytest-klaudbiusz. Each run is one evaluation: its"
    " metrics are the rates and averages over the apps (`overall_quality_score`,"
    " `build_success_rate`, ...), its description the summary and the apps needing"
    " attention, its artifacts the full reports. Each app is a trace of the run (Traces tab):"
    " one span per stage with its time, outcome and log, and one assessment per check"
    " (`build_success` ... `data_returned`), DevX score and `appeval_100`, so two"
    " evaluations compare app by app in the evaluation view."
)

_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def run_description(report: Mapping[str, Any]) -> str:
    """Markdown for the run page: headline numbers, rates, gate verdict, apps to look at."""
    from pytest_klaudbiusz.ci.gate_report import markdown_lines

    run, summary = report["run"], report["summary"]
    counts = report.get("counts") or {}
    appeval = summary.get("avg_appeval_100")
    headline = (
        f"**{run.get('mode')}** evaluation of {summary.get('total_apps')} apps"
        f" ({summary.get('evaluated')} evaluated, {summary.get('infra_errors', 0)} infrastructure"
        f" errors): overall quality {percent(summary.get('overall_quality_score'))},"
        f" average appeval_100 {'n/a' if appeval is None else f'{appeval:.1f}'}."
    )
    rates = [
        (
            rate,
            percent(summary.get(rate)),
            "{passed} / {checked}".format(**counts[check]) if check in counts else "-",
        )
        for check, rate in RATES.items()
    ]
    lines = [headline, "", *markdown_table(("Rate", "Value", "Passed / checked"), rates)]
    if report.get("gate"):
        lines += ["", *markdown_lines(report["gate"], level="####")]
    failing = [
        (
            app["app_name"],
            ", ".join(c for c in CHECKS if app["metrics"].get(c) is False)
            or app.get("error")
            or str(app.get("status")),
            "; ".join(app.get("issues") or []) or "-",
        )
        for app in report["apps"]
        if app.get("status") != "evaluated" or any(app["metrics"].get(c) is False for c in CHECKS)
    ]
    lines += ["", "#### Apps needing attention", ""]
    if failing:
        lines += markdown_table(("App", "Failed checks", "Issues"), failing[:ATTENTION_ROWS])
        if len(failing) > ATTENTION_ROWS:
            lines += ["", f"... and {len(failing) - ATTENTION_ROWS} more (see the Traces tab)."]
    else:
        lines.append("None: every evaluated app passed every applicable check.")
    lines += [
        "",
        "Each app is a trace of this run (Traces tab) with an assessment per check;"
        " the full report is `EVALUATION_REPORT.md` under Artifacts.",
    ]
    text = "\n".join(lines)
    if len(text) > MAX_NOTE_CHARS:
        text = text[: MAX_NOTE_CHARS - 40].rsplit("\n", 1)[0] + "\n\n... (cut: see the report)"
    return text


def artifact_image_links(markdown: str, uri: str, run_id: str) -> str:
    """The Markdown with relative image links pointing at the run's artifacts on the MLflow
    server ``uri``; unchanged for other stores (their UI's address is not known here)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return markdown
    netloc = parts.netloc.rpartition("@")[2]  # never put credentials into a report
    base = f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"

    def absolute(match: re.Match[str]) -> str:
        alt, target = match.groups()
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("/"):
            return match.group(0)
        link = f"{base}/get-artifact?path={quote(target)}&run_uuid={quote(run_id)}"
        return f"![{alt}]({link})"

    return _IMAGE.sub(absolute, markdown)
