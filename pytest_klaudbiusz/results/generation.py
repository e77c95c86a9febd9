"""Generation cost: the bulk results file of a generation run, and cost against quality.

Per-app data normally sits beside the app (``<app>/generation_metrics.json``, read by the
evaluation). A generator that writes one results file for the whole batch instead (a JSON
list of ``{"app_name" | "app_dir": ..., "metrics": {...}}``, as ``bulk_run.py`` does) is
read with ``--klaud-generation-results FILE`` and joined **by app folder name**, never by
prompt text. An app's own ``generation_metrics.json`` wins over the bulk entry.

Standard library only: no pytest, no mlflow.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from pytest_klaudbiusz.apps.scoring import parse_generation_metrics
from pytest_klaudbiusz.results.markdown import markdown_table
from pytest_klaudbiusz.results.model import AppResult, AppStatus
from pytest_klaudbiusz.results.report import EvaluationReport


class GenerationResultsError(ValueError):
    """The bulk results file cannot be used; the message is one line saying why."""


def _app_name(entry: dict[str, Any]) -> str | None:
    name = entry.get("app_name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    app_dir = entry.get("app_dir")
    if isinstance(app_dir, str) and app_dir.strip():
        # written on another machine, perhaps another OS: the last path part is the folder
        path = app_dir.strip().rstrip("/\\")
        return (PureWindowsPath(path) if "\\" in path else PurePosixPath(path)).name or None
    return None


def load_generation_results(path: Path) -> dict[str, dict[str, Any]]:
    """``{app folder name: generation metrics}`` from a bulk results file.

    Entries without metrics (a generation that failed) are left out; an entry that names no
    app, a name given twice, or a metric that is not a number make the file unusable.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GenerationResultsError(
            f"generation results {path}: cannot read ({exc.strerror or exc})"
        ) from None
    except (ValueError, UnicodeDecodeError):
        raise GenerationResultsError(f"generation results {path}: not valid JSON") from None
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        data = data["results"]
    if not isinstance(data, list):
        raise GenerationResultsError(
            f"generation results {path}: expected a JSON list of "
            '{"app_name" or "app_dir", "metrics"} entries'
        )
    by_app: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for index, entry in enumerate(data):
        where = f"generation results {path}: entry {index}"
        if not isinstance(entry, dict):
            raise GenerationResultsError(f"{where} is not an object")
        name = _app_name(entry)
        if name is None:
            raise GenerationResultsError(f"{where} names no app (app_name or app_dir)")
        if name in seen:
            raise GenerationResultsError(f"{where}: app {name!r} appears twice")
        seen.add(name)
        raw = entry.get("metrics")
        if raw is None:
            continue
        try:
            metrics = parse_generation_metrics(raw, f"{where} ({name}) metrics")
        except ValueError as exc:
            raise GenerationResultsError(str(exc)) from None
        if "model" not in metrics and isinstance(entry.get("model"), str):
            metrics["model"] = entry["model"]
        if metrics:
            by_app[name] = metrics
    return by_app


def apply_generation_results(
    results: Iterable[AppResult], by_app: dict[str, dict[str, Any]]
) -> int:
    """Give apps without their own generation data the bulk file's; return how many got it."""
    joined = 0
    for result in results:
        if result.generation_metrics is None and result.app_name in by_app:
            result.generation_metrics = dict(by_app[result.app_name])
            joined += 1
    return joined


def model_of(results: Sequence[AppResult]) -> str | None:
    """The generating model when every app's generation data names the same one."""
    models = {(r.generation_metrics or {}).get("model") for r in results}
    if len(models) == 1 and None not in models:
        return str(models.pop())
    return None


# --- the Markdown view ------------------------------------------------------------------


def _usd(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}"


def cost_quality_markdown(report: EvaluationReport) -> list[str]:
    """``## Cost vs quality``: what the mode's apps cost against how good they are.

    One row per mode (a report holds one mode; the same columns line up across reports),
    then one row per app with generation data, most expensive first. Empty when no app
    has cost data.
    """
    summary, run = report["summary"], report["run"]
    apps = [AppResult.from_dict(a) for a in report["apps"]]
    costed = [a for a in apps if (a.generation_metrics or {}).get("cost_usd") is not None]
    if not costed:
        return []
    evaluated = [a for a in costed if a.status is AppStatus.EVALUATED]
    passing = [a for a in evaluated if not a.failed_checks()]
    scores = [a.metrics.get("appeval_100") for a in evaluated]
    present = [float(s) for s in scores if s is not None]
    avg_score = sum(present) / len(present) if present else None
    cost = sum(float((a.generation_metrics or {})["cost_usd"]) for a in costed)
    mode_row = (
        run.get("mode", "n/a"),
        f"{len(costed)} / {summary['total_apps']}",
        _usd(cost),
        _usd(cost / len(costed)),
        f"{len(passing)} / {len(evaluated)}",
        _usd(cost / len(passing) if passing else None),
        "n/a" if avg_score is None else f"{avg_score:.1f}",
    )
    mode_header = (
        "Mode",
        "Apps with cost",
        "Total USD",
        "USD per app",
        "Passing apps",
        "USD per passing app",
        "Avg appeval_100",
    )

    def app_row(app: AppResult) -> tuple[object, ...]:
        generation = app.generation_metrics or {}
        if app.status is AppStatus.EVALUATED:
            failed = app.failed_checks()
            verdict = "passes" if not failed else "fails " + ", ".join(failed)
            score = app.metrics.get("appeval_100")
        else:
            verdict, score = str(app.status).replace("_", " "), None
        return (
            app.app_name,
            _usd(generation["cost_usd"]),
            generation.get("turns", "n/a"),
            f"{generation['output_tokens']:,}" if "output_tokens" in generation else "n/a",
            "n/a" if score is None else f"{score:.1f}",
            verdict,
        )

    ordered = sorted(
        costed, key=lambda a: (-float((a.generation_metrics or {})["cost_usd"]), a.app_name)
    )
    return [
        "## Cost vs quality",
        "",
        "Quality is over the apps with cost data; a passing app passes every applicable check.",
        "",
        *markdown_table(mode_header, [mode_row]),
        "",
        *markdown_table(
            ("App", "USD", "Turns", "Output tokens", "appeval_100", "Verdict"),
            (app_row(a) for a in ordered),
        ),
    ]
