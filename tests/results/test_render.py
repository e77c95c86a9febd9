"""Rendering the evaluation report as Markdown, CSV, terminal lines and files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from pytest_klaudbiusz.results.aggregate import build_report
from pytest_klaudbiusz.results.files import load_report, write_reports
from pytest_klaudbiusz.results.metrics import RATES
from pytest_klaudbiusz.results.model import AppResult, AppStatus, Outcome, StageOutcome
from pytest_klaudbiusz.results.render import render_csv, render_markdown, render_terminal_summary

RUN = {
    "mode": "mcp",
    "started_at": "2025-03-04T10:00:00+00:00",
    "finished_at": "2025-03-04T10:05:00+00:00",
    "plugin_version": "0.1.0",
    "git_commit": "abc1234",
    "git_branch": "main",
    "model_version": "claude-test",
    "apps_dir": "evals/apps",
    "mlflow_run_id": "run-42",
    "tracking_uri": "sqlite:///mlflow.db",
    "experiment": "/Shared/klaudbiusz-evaluations",
}
NON_ASCII = "café 東京"


def stages(**outcomes: str) -> list[StageOutcome]:
    return [StageOutcome(name, Outcome(o), duration_sec=1.0) for name, o in outcomes.items()]


def criteria(passed: int, prefix: str) -> list[dict[str, Any]]:
    return [{"criterion": f"{prefix} {i}", "passed": i < passed} for i in range(5)]


def metrics(**values: Any) -> dict[str, Any]:
    base = {
        "build_success": True,
        "runtime_success": True,
        "type_safety": None,  # no typecheck command anywhere: the rate is n/a
        "tests_pass": True,
        "databricks_connectivity": True,
        "data_returned": True,
        "ui_renders": None,
        "local_runability_score": 5,
        "deployability_score": 5,
        "test_coverage_pct": 80.0,
        "build_time_sec": 10.0,
        "startup_time_sec": 2.0,
        "total_loc": 500,
        "has_dockerfile": False,
        "has_tests": True,
        "appeval_100": 100.0,
    }
    return {**base, **values}


ALL_STAGES = dict.fromkeys(
    ("install", "build", "runtime", "data", "data_returned", "test"), "passed"
) | {"typecheck": "not_applicable"}


def sample_apps() -> list[AppResult]:
    return [
        AppResult(
            "alpha",
            "evals/apps/alpha",
            "trpc",
            stages=stages(**ALL_STAGES),
            metrics=metrics(),
            details={"local_runability": criteria(5, "l"), "deployability": criteria(5, "d")},
            generation_metrics={
                "cost_usd": 1.5,
                "input_tokens": 1000,
                "output_tokens": 400,
                "turns": 10,
            },
        ),
        AppResult(
            "bravo",
            "evals/apps/bravo",
            "dbx-sdk",
            stages=stages(
                install="passed",
                build="failed",
                typecheck="not_applicable",
                runtime="skipped",
                data="skipped",
                data_returned="skipped",
                test="failed",
            ),
            metrics=metrics(
                build_success=False,
                runtime_success=False,
                tests_pass=False,
                databricks_connectivity=None,
                data_returned=None,
                local_runability_score=2,
                appeval_100=5.0,
            ),
            issues=["build: build failed", "tests: no test command"],
            details={"local_runability": criteria(2, "l"), "deployability": criteria(5, "d")},
            generation_metrics={
                "cost_usd": 0.5,
                "input_tokens": 3000,
                "output_tokens": 600,
                "turns": 20,
            },
        ),
        AppResult(
            NON_ASCII,
            f"evals/apps/{NON_ASCII}",
            "python",
            stages=stages(**ALL_STAGES | {"data_returned": "failed", "test": "failed"}),
            metrics=metrics(data_returned=False, tests_pass=False, deployability_score=3),
            issues=["data: empty | no rows", "tests: no test command", "coverage: low"],
            details={"local_runability": criteria(5, "l"), "deployability": criteria(3, "d")},
        ),
        AppResult(
            "delta",
            "evals/apps/delta",
            status=AppStatus.INFRA_ERROR,
            error="npm not found on PATH\ninstall Node.js",
        ),
        AppResult("echo", "evals/apps/echo", status=AppStatus.NOT_RUN),
    ]


@pytest.fixture
def report() -> dict[str, Any]:
    return build_report(sample_apps(), RUN)


def section(markdown: str, title: str) -> str:
    """The text of one section, from its heading to the next heading of any level."""
    start = markdown.index(title)
    end = markdown.find("\n#", start + len(title))
    return markdown[start : end if end != -1 else None]


def test_markdown_executive_summary(report: dict[str, Any]) -> None:
    md = render_markdown(report)
    assert md.startswith("# App evaluation report: mcp, 2025-03-04\n")
    assert "| build_success_rate | 66.7% | 2 / 3 |" in md
    assert "| tests_pass_rate | 33.3% | 1 / 3 |" in md
    assert "| databricks_connectivity_rate | 100.0% | 2 / 2 |" in md
    assert "| data_returned_rate | 50.0% | 1 / 2 |" in md
    assert "| type_safety_rate | n/a | 0 / 0 |" in md
    for row in (
        "| total_apps | 5 |",
        "| evaluated | 3 |",
        "| infra_errors | 1 |",
        "| not_run | 1 |",
        "| avg_local_runability_score | 4.0 / 5 |",
    ):
        assert row in md
    # mean of build 2/3, runtime 2/3, tests 1/3, connectivity 1
    assert "| overall_quality_score | 66.7% |" in md


def test_markdown_funnel_distribution_and_stars(report: dict[str, Any]) -> None:
    md = render_markdown(report)
    funnel = section(md, "## Stage funnel")
    assert "Stage outcomes over the 3 evaluated apps." in funnel
    assert "| build | 2 | 1 | 0 | 0 |" in funnel
    assert "| runtime | 2 | 0 | 1 | 0 |" in funnel
    assert "| test | 1 | 2 | 0 | 0 |" in funnel
    distribution = section(md, "## Quality distribution")
    for row in ("| 0 | 1 |", "| 1-2 | 1 |", "| 3-4 | 1 |", "| 5+ | 0 |"):
        assert row in distribution
    stars = section(md, "## DevX stars")
    assert f"| {NON_ASCII} | ★★★★★ 5/5 | ★★★☆☆ 3/5 | deploy: d 3, d 4 |" in stars
    assert "| bravo | ★★☆☆☆ 2/5 | ★★★★★ 5/5 | local: l 2, l 3, l 4 |" in stars
    assert "delta" not in stars


def test_markdown_issues_attention_and_infra(report: dict[str, Any]) -> None:
    md = render_markdown(report)
    issues = section(md, "## Most common issues")
    order = [
        "tests: no test command | 2",
        "build: build failed | 1",
        "coverage: low | 1",
        "data: empty \\| no rows | 1",
    ]
    assert sorted(order, key=issues.index) == order
    attention = section(md, "## Apps needing attention")
    assert "| bravo | dbx-sdk | build_success, runtime_success, tests_pass |" in attention
    assert f"| {NON_ASCII} | python | tests_pass, data_returned |" in attention
    assert "alpha" not in attention and "delta" not in attention
    infra = section(md, "### Infrastructure errors (not the app's fault)")
    assert "| delta | npm not found on PATH install Node.js |" in infra
    assert "Collected but never run: echo." in section(md, "### Not run")


def test_markdown_generation_and_run(report: dict[str, Any]) -> None:
    md = render_markdown(report)
    generation = section(md, "## Generation cost")
    assert "2 of 5 apps have generation data" in generation
    assert "| Total cost | 2.00 USD |" in generation
    assert "| Input tokens | 4,000 |" in generation
    assert "| Apps per dollar | 1.00 |" in generation
    run = section(md, "## Run")
    assert "| mlflow_run_id | run-42 |" in run and "| git_commit | abc1234 |" in run


def test_markdown_without_generation_or_mlflow() -> None:
    apps = [a for a in sample_apps() if a.app_name == NON_ASCII]
    md = render_markdown(build_report(apps, {**RUN, "mlflow_run_id": None}))
    assert "## Generation cost" not in md
    assert "mlflow_run_id" not in md
    assert "Infrastructure errors" not in md


def test_csv_round_trips_through_dictreader(report: dict[str, Any]) -> None:
    rows = {r["app_name"]: r for r in csv.DictReader(io.StringIO(render_csv(report)))}
    assert list(rows) == ["alpha", "bravo", NON_ASCII, "delta", "echo"]
    bravo, cafe, delta = rows["bravo"], rows[NON_ASCII], rows["delta"]
    assert (bravo["build_success"], bravo["type_safety"]) == ("false", "")
    assert (bravo["total_loc"], bravo["appeval_100"]) == ("500", "5.0")
    assert (bravo["cost_usd"], bravo["input_tokens"], bravo["turns"]) == ("0.5", "3000", "20")
    assert bravo["issues"] == "build: build failed; tests: no test command"
    assert cafe["issues"] == "data: empty | no rows; tests: no test command; coverage: low"
    assert (cafe["app_dir"], cafe["has_tests"], cafe["cost_usd"]) == (
        f"evals/apps/{NON_ASCII}",
        "true",
        "",
    )
    assert delta["status"] == "infra_error"
    assert delta["error"] == "npm not found on PATH\ninstall Node.js"
    assert delta["build_success"] == ""


def test_csv_column_order_puts_extra_metrics_last() -> None:
    apps = sample_apps()
    apps[0].metrics |= {"zeta_custom": 1, "aaa_custom": 2}
    header = next(csv.reader(io.StringIO(render_csv(build_report(apps, RUN)))))
    assert header[:6] == [
        "app_name",
        "app_dir",
        "template_type",
        "status",
        "build_success",
        "runtime_success",
    ]
    assert header[-10:] == [
        "appeval_100",
        "aaa_custom",
        "zeta_custom",
        "issues",
        "cost_usd",
        "input_tokens",
        "output_tokens",
        "turns",
        "error",
        "reused_from",
    ]


def test_terminal_summary_is_short_and_aligned(report: dict[str, Any]) -> None:
    lines = render_terminal_summary(report, "app-eval")
    assert len(lines) < 20
    assert lines[0] == "apps: 5 total, 3 evaluated, 1 infra errors, 1 not run"
    build = next(line for line in lines if line.startswith("build_success_rate "))
    assert build.endswith(" 66.7%  (2/3)")
    type_safety = next(line for line in lines if line.startswith("type_safety_rate "))
    assert type_safety.endswith("   n/a  (0/0)")
    rate_lines = [line for line in lines if "_rate " in line]
    assert len(rate_lines) == len(RATES)
    assert len({line.index("(") for line in rate_lines}) == 1
    assert any(line.startswith("reports: app-eval/EVALUATION_REPORT.md") for line in lines)
    assert lines[-1] == "mlflow run: run-42"
    no_mlflow = render_terminal_summary({**report, "run": {**RUN, "mlflow_run_id": None}}, "x")
    assert not any("mlflow" in line for line in no_mlflow)


def test_write_reports_and_load_report_round_trip(report: dict[str, Any], tmp_path: Path) -> None:
    paths = write_reports(report, tmp_path / "nested" / "app-eval")
    folder = tmp_path / "nested" / "app-eval"
    assert sorted(p.name for p in folder.iterdir()) == [
        "EVALUATION_REPORT.md",
        "evaluation_report.csv",
        "evaluation_report.json",
    ]
    assert paths == {
        "json": folder / "evaluation_report.json",
        "markdown": folder / "EVALUATION_REPORT.md",
        "csv": folder / "evaluation_report.csv",
    }
    assert load_report(paths["json"]) == report
    assert NON_ASCII in paths["json"].read_text(encoding="utf-8")
    assert paths["markdown"].read_text(encoding="utf-8") == render_markdown(report)
    assert paths["csv"].read_bytes().decode("utf-8") == render_csv(report)


def test_write_reports_refuses_nan_and_keeps_old_files(
    report: dict[str, Any], tmp_path: Path
) -> None:
    write_reports(report, tmp_path)
    bad = {**report, "summary": {**report["summary"], "avg_appeval_100": float("nan")}}
    with pytest.raises(ValueError):
        write_reports(bad, tmp_path)
    assert load_report(tmp_path / "evaluation_report.json") == report
    assert len(list(tmp_path.iterdir())) == 3


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not JSON: "),
        ("[1, 2]", "top level is a JSON list"),
        (json.dumps({"schema_version": 1, "run": {}}), "missing summary, counts, apps"),
        (
            json.dumps({"schema_version": 9, "run": {}, "summary": {}, "counts": {}, "apps": []}),
            "schema_version 9, expected 1",
        ),
        (None, "cannot read"),
    ],
)
def test_load_report_rejects_garbage(tmp_path: Path, content: str | None, reason: str) -> None:
    path = tmp_path / "evaluation_report.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as excinfo:
        load_report(path)
    message = str(excinfo.value)
    assert message.startswith(f"{path}: ")
    assert reason in message
    assert "\n" not in message
