"""Comparing runs: exact McNemar p-values, per-app diffs, direction-aware changes, the text and
Markdown layout (pytest_klaudbiusz.ci.compare), and reading runs back from a real SQLite store
(pytest_klaudbiusz.tracking.history) and drawing their trend (pytest_klaudbiusz.results.trend)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from pytest_klaudbiusz.ci.compare import (
    Comparison,
    RunRecord,
    change,
    mcnemar_exact,
    mode_means,
    paired_tests,
    record_from_report,
    shown_metrics,
    trend_data,
)
from pytest_klaudbiusz.ci.comparison_report import render_markdown, render_text
from pytest_klaudbiusz.results.aggregate import build_report
from pytest_klaudbiusz.results.metrics import CHECKS
from pytest_klaudbiusz.results.model import AppResult


def app(name: str, failing: tuple[str, ...] = ()) -> AppResult:
    metrics: dict[str, Any] = {c: c not in failing for c in CHECKS}
    metrics["type_safety"] = None
    return AppResult(name, f"/apps/{name}", metrics=metrics)


def report_of(apps: list[AppResult], mode: str = "mcp", started: str = "2026-11-26T06:00:00Z"):
    run = {"mode": mode, "started_at": started, "finished_at": started, "mlflow_run_id": None}
    return build_report(apps, run)


def failing_tests(n_apps: int, failing: set[int], **kw: Any) -> dict[str, Any]:
    return report_of(
        [app(f"app{i:02d}", ("tests_pass",) if i in failing else ()) for i in range(n_apps)], **kw
    )


# --- exact McNemar ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("b", "c", "expected"),
    [
        (0, 0, 1.0),  # no discordant app: no evidence of change
        (1, 0, 1.0),  # 2 * 1/2
        (0, 5, 2 / 32),  # 2 * C(5,0)/2^5 = 0.0625: not significant
        (0, 6, 2 / 64),  # 0.03125: significant at 0.05
        (6, 0, 2 / 64),  # symmetric
        (1, 9, 2 * (1 + 10) / 1024),  # 0.021484375
        (3, 1, 2 * (1 + 4) / 16),  # 0.625
        (2, 1, 1.0),  # 2 * (1 + 3) / 8 = 1.0, capped at 1
        (3, 3, 1.0),  # 2 * 42/64 > 1: capped
        (2, 8, 2 * (1 + 10 + 45) / 1024),  # 0.109375
        (0, 30, 2 / 2**30),
    ],
)
def test_mcnemar_exact_p_values(b: int, c: int, expected: float) -> None:
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_is_exact_for_large_counts() -> None:
    b, c = 40, 70
    tail = Fraction(sum(__import__("math").comb(110, k) for k in range(41)), 2**110)
    assert mcnemar_exact(b, c) == float(2 * tail)
    assert 0 < mcnemar_exact(b, c) < 0.01
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


def test_80_to_77_percent_on_30_apps_is_within_noise() -> None:
    # 24/30 pass before; after: two of them fail, one failing app is fixed -> 23/30
    before = failing_tests(30, {0, 1, 2, 3, 4, 5})
    after = failing_tests(30, {0, 1, 2, 3, 4, 6, 7})  # app05 fixed; app06, app07 regressed
    assert before["summary"]["tests_pass_rate"] == pytest.approx(0.8)
    assert after["summary"]["tests_pass_rate"] == pytest.approx(23 / 30)
    tests = {t.rate: t for t in paired_tests(before, after)}
    t = tests["tests_pass_rate"]
    assert (t.pairs, t.pass_to_fail, t.fail_to_pass) == (30, 2, 1)
    assert t.p_value == 1.0
    assert t.verdict == "within noise"
    assert tests["build_success_rate"].verdict == "no change"
    assert tests["type_safety_rate"].verdict == "n/a (no app checked in both runs)"
    assert tests["type_safety_rate"].to_dict()["p_value"] is None


def test_a_large_one_sided_change_is_real() -> None:
    before = failing_tests(30, set())
    after = failing_tests(30, {0, 1, 2, 3, 4, 5})
    t = {t.rate: t for t in paired_tests(before, after)}["tests_pass_rate"]
    assert (t.pass_to_fail, t.fail_to_pass, t.p_value) == (6, 0, 0.03125)
    assert t.verdict == "real: worse"
    back = {t.rate: t for t in paired_tests(after, before)}["tests_pass_rate"]
    assert back.verdict == "real: better"


def test_pairs_are_matched_by_name_and_only_over_apps_evaluated_in_both() -> None:
    before = report_of([app("a"), app("b"), app("gone")])
    after = report_of([app("a", ("tests_pass",)), app("b"), app("new", ("tests_pass",))])
    t = {t.rate: t for t in paired_tests(before, after)}["tests_pass_rate"]
    assert (t.pairs, t.pass_to_fail, t.fail_to_pass) == (2, 1, 0)


# --- changes and values -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "latest", "previous", "expected"),
    [
        ("build_success_rate", 0.9, 0.8, ("+10.0 pp", "better")),
        ("build_success_rate", 0.8, 0.9, ("-10.0 pp", "worse")),
        ("avg_cost_per_app_usd", 1.1, 1.0, ("+10.0%", "worse")),  # lower is better
        ("avg_cost_per_app_usd", 0.9, 1.0, ("-10.0%", "better")),
        ("infra_errors", 2, 0, ("+2.00", "worse")),
        ("avg_appeval_100", 80.0, 80.0, ("0", "unchanged")),
        ("databricks_connectivity_rate", None, 0.9, ("n/a", "n/a")),  # never a fake 0
        ("min_lighthouse", 2.0, 1.0, ("+100.0%", "")),  # unknown direction: no verdict
    ],
)
def test_changes_are_direction_aware(
    metric: str, latest: float | None, previous: float | None, expected: tuple[str, str]
) -> None:
    assert change(metric, latest, previous) == expected


def test_configured_direction_decides_for_custom_metrics() -> None:
    assert change("avg_latency_ms", 120.0, 100.0) == ("+20.0%", "better")
    assert change("avg_latency_ms", 120.0, 100.0, lower=["avg_latency_ms"]) == ("+20.0%", "worse")


def record(name: str, mode: str, started: str, **metrics: float | None) -> RunRecord:
    return RunRecord(name=name, mode=mode, started_at=started, metrics=dict(metrics), run_id=name)


def test_shown_metrics_and_means_by_mode() -> None:
    runs = [
        record("r1", "mcp", "2026-11-26T06:00:00Z", tests_pass_rate=0.9, avg_x=1.0, gate_passed=1),
        record("r2", "vanilla", "2026-11-25T06:00:00Z", tests_pass_rate=0.5, total_apps=10),
        record("r3", "mcp", "2026-11-24T06:00:00Z", tests_pass_rate=0.7, avg_x=None),
    ]
    assert shown_metrics(runs) == ["tests_pass_rate", "total_apps", "avg_x"]  # no gate_*
    assert mode_means(runs, ["tests_pass_rate", "avg_x", "total_apps"]) == [
        ("mcp", 2, {"tests_pass_rate": pytest.approx(0.8), "avg_x": 1.0, "total_apps": None}),
        ("vanilla", 1, {"tests_pass_rate": 0.5, "avg_x": None, "total_apps": 10}),
    ]
    trend = trend_data(runs, "mcp")
    assert [r["run_name"] for r in trend["runs"]] == ["r3", "r1"]  # oldest first
    assert trend["runs"][1]["values"]["tests_pass_rate"] == 0.9


def comparison_of(before: dict[str, Any], after: dict[str, Any]) -> Comparison:
    latest, previous = record_from_report(after, "after.json"), record_from_report(before, "b.json")
    return Comparison(
        runs=[latest, previous],
        where="report files",
        latest=latest,
        previous=previous,
        latest_report=after,
        previous_report=before,
    )


def test_text_layout_follows_the_seed_document() -> None:
    before = failing_tests(4, {3}, started="2026-11-25T06:00:00Z")
    after = failing_tests(4, {2, 3}, mode="vanilla_sdk", started="2026-11-26T07:30:00Z")
    after["summary"]["databricks_connectivity_rate"] = None
    lines = render_text(comparison_of(before, after))
    text = "\n".join(lines)
    assert lines[:2] == ["MLflow Evaluation Run Comparison", "=================================="]
    for title in ("Recent Runs", "Metrics Comparison", "Latest vs Previous Run",
                  "Mean by Mode (over the runs shown)", "Apps: Latest vs Previous"):  # fmt: skip
        assert f"\n{title}\n==================================\n" in text
    assert "#1  eval_vanilla_sdk_2026-11-26T07:30:00Z  vanilla_sdk    2026-11-26 07:30:00" in text
    assert "#2  eval_mcp_2026-11-25T06:00:00Z          mcp            2026-11-25 06:00:00" in text
    assert "tests_pass_rate                       50.0%       75.0%       -25.0 pp worse" in lines
    assert "databricks_connectivity_rate          n/a         100.0%      n/a" in lines
    assert "build_success_rate                    100.0%      100.0%      unchanged" in lines
    assert "  app02                               tests_pass" in lines
    test_line = next(
        line for line in lines if line.startswith("tests_pass_rate") and "noise" in line
    )
    assert test_line.split() == [
        "tests_pass_rate", "75.0%", "50.0%", "4", "1", "0", "1.000", "within", "noise",
    ]  # fmt: skip
    coloured = "\n".join(render_text(comparison_of(before, after), color=True))
    assert "\x1b[31m-25.0 pp worse\x1b[0m" in coloured
    assert "\x1b[" not in text


def test_markdown_has_the_same_sections() -> None:
    before = failing_tests(4, {3})
    after = failing_tests(4, {2, 3})
    markdown = "\n".join(render_markdown(comparison_of(before, after)))
    for heading in ("## Recent runs", "## Metrics", "## Latest vs Previous Run",
                    "## Apps: latest vs previous", "## Is the change real?"):  # fmt: skip
        assert heading in markdown
    assert "| tests_pass_rate | 50.0% | 75.0% | -25.0 pp 🔴 worse |" in markdown
    assert "| app02 | regressed (pass → fail) | tests_pass |" in markdown
    assert "| tests_pass_rate | 75.0% | 50.0% | 4 | 1 | 0 | 1.000 | within noise |" in markdown


# --- reading runs from a real store -------------------------------------------------------


def log(uri: str, report: dict[str, Any], folder: Path, experiment: str = "exp") -> str:
    from pytest_klaudbiusz.results.files import write_reports
    from pytest_klaudbiusz.tracking.runs import log_report

    files = write_reports(report, folder)
    return log_report(report, [files["json"]], uri, experiment)


def test_history_reads_the_latest_runs_of_a_mode_and_their_reports(
    sqlite_tracking_uri: str, tmp_path: Path
) -> None:
    from pytest_klaudbiusz.tracking.history import History, HistoryError

    ids = {}
    for i, (mode, failing) in enumerate(
        [("mcp", {0}), ("vanilla", set()), ("mcp", {1}), ("mcp", {0, 1}), ("vanilla", {2})]
    ):
        report = failing_tests(4, failing, mode=mode, started=f"2026-11-2{i}T06:00:00Z")
        ids[i] = log(sqlite_tracking_uri, report, tmp_path / str(i))
    history = History(sqlite_tracking_uri, "exp")
    latest = history.recent(2)
    assert [r.run_id for r in latest] == [ids[4], ids[3]]
    assert [r.mode for r in latest] == ["vanilla", "mcp"]
    assert latest[0].started_at == "2026-11-24T06:00:00Z"
    assert latest[1].metrics["tests_pass_rate"] == 0.5
    mcp = history.recent(5, mode="mcp")
    assert [r.run_id for r in mcp] == [ids[3], ids[2], ids[0]]
    assert history.recent(5, mode="mcp", branch="nope") == []
    report = history.report(ids[3])
    assert report is not None
    assert [a["metrics"]["tests_pass"] for a in report["apps"]] == [False, False, True, True]
    assert history.run(ids[1]).mode == "vanilla"
    with pytest.raises(HistoryError, match="does not exist"):
        history.run("0" * 32)
    with pytest.raises(HistoryError, match=r"experiment 'other' does not exist"):
        History(sqlite_tracking_uri, "other").recent(3)
    with pytest.raises(HistoryError, match="no MLflow store at"):
        History(f"sqlite:///{tmp_path}/absent/mlflow.db", "exp")


def test_trend_chart_is_a_png_with_one_line_per_rate(tmp_path: Path) -> None:
    from pytest_klaudbiusz.results.trend import write_trend_png

    runs = [
        record("r1", "mcp", "2026-11-24T06:00:00Z", build_success_rate=0.9, tests_pass_rate=0.5),
        record("r2", "mcp", "2026-11-25T06:00:00Z", build_success_rate=1.0, tests_pass_rate=None),
        record("r3", "mcp", "2026-11-26T06:00:00Z", build_success_rate=0.8, tests_pass_rate=0.7),
    ]
    trend = trend_data(runs, "mcp")
    json.dumps(trend)  # plain JSON: it goes into the report
    path = write_trend_png(trend, tmp_path / "charts" / "trend.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000
