"""What the dashboard shows, as plain rows: shaped from ``RunRecord``s (read by
``tracking.history``, as ``--klaud-compare`` reads them) and evaluation reports.

Pure: no Streamlit, no mlflow, so that every table of the dashboard is unit-tested here and
``app.py`` only lays them out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

from pytest_klaudbiusz.ci.compare import RunRecord, mode_means
from pytest_klaudbiusz.results.metrics import CHECKS, RATES

QUALITY = "overall_quality_score"
COST_PER_APP = "avg_cost_per_app_usd"
COST_PER_PASSING_APP = "cost_per_passing_app_usd"
NO_GATE = "no gate"
PASS, FAIL, INFRA, NOT_RUN, ABSENT = "pass", "FAIL", "infra error", "not run", ""


def run_label(run: RunRecord) -> str:
    """How a run is named in menus and column headers: date, mode, short id."""
    return f"{run.date} {run.mode} ({(run.run_id or run.ref)[:8]})"


def modes(runs: Sequence[RunRecord]) -> list[str]:
    """The modes of the runs, the most recently run first."""
    seen: dict[str, None] = {}
    for run in sorted(runs, key=lambda r: r.started_at, reverse=True):
        seen.setdefault(run.mode, None)
    return list(seen)


def trend_rows(runs: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One row per run, oldest first: its quality, rates, cost and gate outcome."""
    return [
        {
            "started_at": run.started_at,
            "run": run_label(run),
            "run_id": run.run_id,
            "mode": run.mode,
            "gate": run.tags.get("gate_verdict", NO_GATE),
            QUALITY: run.metrics.get(QUALITY),
            COST_PER_APP: run.metrics.get(COST_PER_APP),
            COST_PER_PASSING_APP: run.metrics.get(COST_PER_PASSING_APP),
            **{rate: run.metrics.get(rate) for rate in RATES.values()},
        }
        for run in sorted(runs, key=lambda r: r.started_at)
    ]


def cost_vs_quality(runs: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """Per mode: how many runs, and the mean quality and cost over them."""
    metrics = (QUALITY, COST_PER_APP, COST_PER_PASSING_APP)
    return [
        {"mode": mode, "runs": count, **means} for mode, count, means in mode_means(runs, metrics)
    ]


def app_state(app: Mapping[str, Any] | None) -> str:
    if app is None:
        return ABSENT
    status = app.get("status", "evaluated")
    if status == "infra_error":
        return INFRA
    if status != "evaluated":
        return NOT_RUN
    return FAIL if any(app["metrics"].get(c) is False for c in CHECKS) else PASS


def app_grid(
    evaluations: Sequence[tuple[RunRecord, Mapping[str, Any]]],
) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows): each app's outcome in each evaluation (oldest first), with how often
    it flipped between pass and fail; the apps that flip most come first."""
    ordered = sorted(evaluations, key=lambda e: e[0].started_at)
    labels = [run_label(run) for run, _ in ordered]
    by_run = [{a["app_name"]: a for a in report["apps"]} for _, report in ordered]
    rows = []
    for name in sorted({n for apps in by_run for n in apps}):
        states = [app_state(apps.get(name)) for apps in by_run]
        rated = [s for s in states if s in (PASS, FAIL)]
        flips = sum(1 for a, b in pairwise(rated) if a != b)
        rows.append({"app": name, "flips": flips, **dict(zip(labels, states, strict=True))})
    rows.sort(key=lambda r: (-r["flips"], r["app"]))
    return ["app", "flips", *labels], rows


def failing_apps(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The apps of one evaluation that failed a check or could not be evaluated, with why."""
    rows = []
    for app in report["apps"]:
        state = app_state(app)
        if state == PASS:
            continue
        failed = [c for c in CHECKS if app.get("metrics", {}).get(c) is False]
        reasons = [
            f"{s['name']}: {s.get('reason') or s['outcome']}"
            for s in app.get("stages", [])
            if s.get("outcome") == "failed"
        ]
        if app.get("error"):
            reasons.append(str(app["error"]))
        rows.append(
            {
                "app": app["app_name"],
                "state": state,
                "failed checks": ", ".join(failed),
                "reasons": "; ".join(reasons),
            }
        )
    return rows


def screenshots_by_app(
    apps: Sequence[str], files: Sequence[Path], root: Path
) -> dict[str, list[Path]]:
    """The images under ``root`` (a run's ``screenshots`` folder) of each app: in a folder
    named after the app, or named after it (``<app>.png``, ``<app>-home.png``)."""
    found: dict[str, list[Path]] = {}
    longest_first = sorted(apps, key=len, reverse=True)  # "shop-2" before "shop"
    for path in files:
        if path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
            continue
        relative = path.relative_to(root)
        for app in longest_first:
            folder = len(relative.parts) > 1 and relative.parts[0] == app
            stem = relative.stem
            named = stem == app or stem.startswith((f"{app}-", f"{app}_", f"{app}."))
            if folder or (len(relative.parts) == 1 and named):
                found.setdefault(app, []).append(path)
                break
    return found
