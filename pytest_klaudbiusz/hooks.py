"""Hooks pytest-klaudbiusz offers to a suite's ``conftest.py`` (registered by the plugin)."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from pytest_klaudbiusz.results.report import EvaluationReport


@pytest.hookspec
def pytest_klaud_summary(
    summary: dict[str, Any], results: list[dict[str, Any]], config: pytest.Config
) -> None:
    """Add or change summary metrics before the reports are written and the run is logged.

    Called once per evaluation, on the controller (never on an xdist worker), after every
    app's result is in, before the quality gate is checked. Change ``summary`` in place:
    add metrics or change their values, which must be finite numbers or ``None`` (anything
    else is dropped with a warning); removed built-in metrics are kept. Names become MLflow
    metric names (characters MLflow refuses become ``_``). If the hook raises, the summary
    stays as computed and the terminal summary says why.

    :param summary: the flat summary, metric name to number (``report["summary"]``).
    :param results: one dict per app, as in ``evaluation_report.json`` (``app_name``,
        ``status``, ``metrics``, ``custom_metrics``, ``generation_metrics``, ...);
        read-only.
    :param config: the pytest config.

    Example, in the suite's ``conftest.py`` (``optionalhook`` keeps the conftest loadable
    when the plugin is disabled with ``-p no:klaudbiusz``)::

        @pytest.hookimpl(optionalhook=True)
        def pytest_klaud_summary(summary, results):
            scores = [r["custom_metrics"]["lighthouse_score"] for r in results
                      if "lighthouse_score" in r["custom_metrics"]]
            summary["min_lighthouse_score"] = min(scores) if scores else None
    """


def call_summary_hook(config: pytest.Config, report: EvaluationReport) -> list[str]:
    """Run ``pytest_klaud_summary`` on the report's summary; return the problems, one line
    each. The summary changes only if every implementation succeeds; values that are not
    finite numbers or None are dropped, and metrics a hook removed are kept (the reports
    and the gates rely on the built-in ones)."""
    original = report["summary"]
    summary = copy.deepcopy(original)
    try:
        config.hook.pytest_klaud_summary(
            summary=summary, results=copy.deepcopy(report["apps"]), config=config
        )
    except Exception as exc:
        return [f"pytest_klaud_summary failed ({type(exc).__name__}: {exc}); summary unchanged"]
    problems = []
    kept: dict[str, Any] = {}
    for name in original:
        if name not in summary:
            problems.append(f"pytest_klaud_summary: kept {name} (a hook may not remove metrics)")
            kept[name] = original[name]
    for name, value in summary.items():
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not isinstance(name, str) or not name:
            problems.append(f"pytest_klaud_summary: dropped key {name!r} (not a name)")
        elif value is None or (number and math.isfinite(value)):
            kept[name] = value
        else:
            problems.append(f"pytest_klaud_summary: dropped {name}={value!r} (not a finite number)")
            if name in original:
                kept[name] = original[name]
    report["summary"] = {k: kept[k] for k in [*original, *summary] if k in kept}
    return problems
