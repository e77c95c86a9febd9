"""A quality gate's verdict (the report's ``gate`` key) as people and MLflow read it:
terminal lines, Markdown (EVALUATION_REPORT.md, CI summaries) and the run's metrics and
tags. Pure: no pytest, no mlflow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_klaudbiusz.ci.gates import (
    BASELINE_OVERLAP,
    EPSILON,
    ERROR,
    MAX_DROP,
    MAX_NEW_FAILURES,
    PASSED,
)
from pytest_klaudbiusz.results.markdown import markdown_table
from pytest_klaudbiusz.results.metrics import format_amount, format_value
from pytest_klaudbiusz.results.text import markdown_cell


def _rule_values(rule: Mapping[str, Any]) -> tuple[str, str]:
    """(measured, limit) as text, in the rule's terms."""
    metric, kind = rule["metric"], rule["kind"]
    if kind == MAX_DROP:
        measured = (
            f"{format_value(metric, rule['current'])} vs {format_value(metric, rule['baseline'])}"
        )
        if rule["measured"] is not None:
            worse = rule["measured"]
            word = "worse" if worse > EPSILON else "better" if worse < -EPSILON else "same"
            measured += f" ({format_amount(metric, abs(worse))} {word})"
        return measured, f"{format_amount(metric, rule['limit'])} worse"
    if kind == MAX_NEW_FAILURES:
        return format_value(None, rule["measured"]), format_value(None, rule["limit"])
    if kind == BASELINE_OVERLAP:
        share = "n/a" if rule["measured"] is None else f"{100 * rule['measured']:.0f}%"
        return share, f"{100 * rule['limit']:.0f}%"
    return format_value(metric, rule["measured"]), format_value(metric, rule["limit"])


def _status(rule: Mapping[str, Any]) -> str:
    return {True: "passed", False: "FAILED", None: "skipped"}[rule["passed"]]


def _apps_text(apps: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(apps[:limit])
    return shown + (f" and {len(apps) - limit} more" if len(apps) > limit else "")


def headline(gate: Mapping[str, Any]) -> str:
    if gate["verdict"] == ERROR:
        return "quality gate: ERROR"
    failed = sum(1 for r in gate["rules"] if r["passed"] is False)
    text = f"quality gate: {gate['verdict'].upper()}"
    if failed:
        text += f" ({failed} of {len(gate['rules'])} rules failed)"
    if gate.get("informational"):
        text += " (informational)"
    return text


def terminal_lines(gate: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """Lines of the terminal's "quality gate" section with a colour ("red", "green")."""
    if gate["verdict"] == ERROR:
        return [(f"ERROR: {gate['error']}", "red")]
    lines: list[tuple[str, str | None]] = []
    base = gate.get("baseline")
    if base:
        lines.append((f"baseline: {_baseline_text(base)}", None))
    for rule in gate["rules"]:
        measured, limit = _rule_values(rule)
        text = f"{_status(rule):7} {rule['rule']}: measured {measured}, limit {limit}"
        if rule["note"]:
            text += f" [{rule['note']}]"
        colour = {True: "green", False: "red", None: "yellow"}[rule["passed"]]
        lines.append((text, colour))
        if rule["passed"] is False and rule["apps"]:
            lines.append((f"        apps: {_apps_text(rule['apps'])}", None))
    moves = gate.get("moved_apps")
    if moves:
        lines.append((moves_line(moves), None))
    return lines


def moves_line(moves: Mapping[str, Any]) -> str:
    regressed, fixed = moves["regressed"], moves["fixed"]
    parts = [
        f"{len(regressed)} regressed" + (f" ({_apps_text(list(regressed))})" if regressed else ""),
        f"{len(fixed)} fixed" + (f" ({_apps_text(list(fixed))})" if fixed else ""),
        f"{len(moves['new'])} new",
        f"{len(moves['gone'])} gone",
    ]
    return f"apps vs baseline ({moves['apps_in_common']} in common): " + ", ".join(parts)


def _baseline_text(base: Mapping[str, Any]) -> str:
    if base.get("missing"):
        return f"{base['ref']} (does not exist yet)"
    if base["kind"] == "file":
        return f"report file {base['ref']}" + (f" ({base['run_name']})" if base["run_name"] else "")
    what = "previous run" if base["kind"] == "previous" else "run"
    return f"{what} {base['run_id']} ({base['run_name']})"


def markdown_lines(gate: Mapping[str, Any], level: str = "##") -> list[str]:
    """The gate as a Markdown section (for EVALUATION_REPORT.md and CI summaries)."""
    if gate["verdict"] == ERROR:
        return [
            f"{level} Quality gate: error",
            "",
            f"The gate could not be checked: {gate['error']}",
        ]
    mark = "✅" if gate["verdict"] == PASSED else "❌"
    lines = [f"{level} {mark} {headline(gate)[0].upper()}{headline(gate)[1:]}", ""]
    if gate.get("informational"):
        lines += ["Informational: the gate does not decide the exit status.", ""]
    base = gate.get("baseline")
    if base:
        lines += [f"Baseline: {markdown_cell(_baseline_text(base))}.", ""]
    rows = []
    for rule in gate["rules"]:
        measured, limit = _rule_values(rule)
        if rule["note"]:
            measured += f" ({rule['note']})"
        apps = _apps_text(rule["apps"]) if rule["passed"] is False else ""
        rows.append((rule["rule"], _status(rule), measured, limit, apps or "-"))
    lines += markdown_table(("Rule", "Result", "Measured", "Limit", "Apps"), rows)
    moves = gate.get("moved_apps")
    if moves:
        lines += ["", markdown_cell(moves_line(moves)) + "."]
    return lines


def mlflow_fields(report: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """Metrics and tags of the gate for the report's MLflow run (empty without a gate)."""
    gate = report.get("gate")
    if not gate:
        return {}, {}
    failed = [r["rule"] for r in gate["rules"] if r["passed"] is False]
    metrics = {
        "gate_passed": 1.0 if gate["verdict"] == PASSED else 0.0,
        "gate_rules": float(len(gate["rules"])),
        "gate_rules_failed": float(len(failed)),
    }
    if gate.get("moved_apps"):
        metrics["gate_new_failures"] = float(len(gate["moved_apps"]["regressed"]))
    tags = {"gate_verdict": gate["verdict"]}
    if gate.get("informational"):
        tags["gate_informational"] = "true"
    if failed:
        tags["gate_failed_rules"] = "; ".join(failed)[:5000]
    base = gate.get("baseline")
    if base and not base.get("missing"):
        tags["gate_baseline"] = str(base.get("run_id") or base["ref"])
    return metrics, tags


def quality_markdown(report: Mapping[str, Any]) -> list[str]:
    """The gate and the trend chart (``trend.png`` beside the report) for EVALUATION_REPORT.md."""
    lines: list[str] = []
    if report.get("gate"):
        lines += markdown_lines(report["gate"])
    trend = report.get("trend")
    if trend:
        if lines:
            lines.append("")
        runs = len(trend["runs"])
        lines += [
            "## Trend",
            "",
            f"Rates of the last {runs} {trend['mode']} runs, this one included.",
            "",
            f"![rates of the last {runs} {trend['mode']} runs]({trend['image']})",
        ]
    return lines
