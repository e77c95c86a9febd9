"""The evaluation report's shape (the JSON source of truth), its check and its clock.

Shape of the report::

    {"schema_version": 1,
     "run": {"mode", "started_at", "finished_at", "plugin_version", "git_commit",
             "git_branch", "model_version", "apps_dir", "mlflow_run_id", ...},
     "summary": {metric name: number or null, ...},     # flat, MLflow-ready
     "counts": {check: {"passed": n, "checked": n}, ...},  # rate denominators
     "apps": [AppResult.to_dict(), ...],                 # sorted by app_name
     "gate": {...}, "trend": {...}}                      # when the evaluation had them

Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

from pytest_klaudbiusz.results.model import SCHEMA_VERSION

#: The report file's name: in the report folder, in an outbox entry, as an MLflow artifact.
REPORT_FILE = "evaluation_report.json"
FILE_NAMES = {
    "json": REPORT_FILE,
    "markdown": "EVALUATION_REPORT.md",
    "csv": "evaluation_report.csv",
}
#: The trend chart beside the report (its ``trend["image"]``).
TREND_FILE = "trend.png"
REPORT_KEYS = ("schema_version", "run", "summary", "counts", "apps")


class EvaluationReport(TypedDict):
    schema_version: int
    run: dict[str, Any]  # what ran, where and when; mlflow_run_id once tracked
    summary: dict[str, Any]  # metric name -> number or None
    counts: dict[str, dict[str, int]]  # check -> {"passed", "checked"}
    apps: list[dict[str, Any]]  # AppResult.to_dict() of each app, by name
    gate: NotRequired[dict[str, Any]]  # the quality gate's verdict (ci/gates.py)
    trend: NotRequired[dict[str, Any]]  # the trend chart's data (ci/compare.py)


#: The ``run`` fields that reproduce an evaluation: the report's Run table, MLflow tags.
REPRODUCIBILITY_FIELDS = (
    "git_commit",
    "git_branch",
    "plugin_version",
    "pytest_version",
    "python_version",
    "mlflow_version",
    "command",
    "sandbox",  # where the apps ran (bwrap or none) and under which limits
    "limits",
)


def report_problem(data: object) -> str | None:
    """Why ``data`` is not an evaluation report of this schema, or None when it is one."""
    if not isinstance(data, Mapping):
        return f"top level is a JSON {type(data).__name__}, not an object"
    if missing := [k for k in REPORT_KEYS if k not in data]:
        return "missing " + ", ".join(missing)
    if data["schema_version"] != SCHEMA_VERSION:
        return f"schema_version {data['schema_version']!r}, expected {SCHEMA_VERSION}"
    if not isinstance(data["apps"], list):
        return "apps is not a list"
    return None


#: How every moment is written: in reports, run names, the outbox.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_timestamp(moment: datetime | None = None) -> str:
    """``moment`` (default: now) in UTC as ``2026-11-26T06:10:12Z``."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime(TIMESTAMP_FORMAT)
