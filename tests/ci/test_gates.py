"""Quality gate rules, directions and verdicts (pytest_klaudbiusz.ci.gates), on built reports."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from pytest_klaudbiusz.ci import gates
from pytest_klaudbiusz.ci.gate_report import headline, markdown_lines, mlflow_fields, terminal_lines
from pytest_klaudbiusz.ci.gates import (
    FAIL_OVER,
    FAIL_UNDER,
    MAX_DROP,
    MAX_NEW_FAILURES,
    Baseline,
    GateError,
    app_moves,
    evaluate_gate,
    parse_gate,
)
from pytest_klaudbiusz.results.aggregate import build_report
from pytest_klaudbiusz.results.metrics import (
    CHECKS,
    HIGHER,
    LOWER,
    METRIC_DIRECTIONS,
    RATES,
    direction,
)
from pytest_klaudbiusz.results.model import AppResult, AppStatus

RUN = {"mode": "mcp", "started_at": "2026-11-26T06:10:12Z", "finished_at": "2026-11-26T06:11:00Z"}


def app(
    name: str, failing: tuple[str, ...] = (), status: str = "evaluated", **extra: Any
) -> AppResult:
    metrics: dict[str, Any] = {c: c not in failing for c in CHECKS}
    metrics["type_safety"] = None if "type_safety" not in failing else False
    return AppResult(
        name,
        f"/apps/{name}",
        status=AppStatus(status),
        metrics=metrics if status == "evaluated" else {},
        **extra,
    )


def report_of(*apps: AppResult) -> dict[str, Any]:
    return build_report(list(apps), dict(RUN))


def baseline_of(report: dict[str, Any], apps: bool = True) -> Baseline:
    return Baseline(
        kind="file",
        ref="baseline/evaluation_report.json",
        summary=report["summary"],
        apps=report["apps"] if apps else None,
        run_name="eval_mcp_2026-11-25T06:00:00Z",
    )


# --- directions -------------------------------------------------------------------------


def test_every_rate_and_summary_metric_of_a_report_has_a_direction() -> None:
    report = report_of(app("a"), app("b", generation_metrics={"cost_usd": 1.0, "turns": 3}))
    missing = [m for m in report["summary"] if m not in METRIC_DIRECTIONS]
    assert missing == []
    assert all(METRIC_DIRECTIONS[rate] == HIGHER for rate in RATES.values())


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("build_success_rate", HIGHER),
        ("overall_quality_score", HIGHER),
        ("avg_appeval_100", HIGHER),
        ("evaluated", HIGHER),
        ("apps_per_dollar", HIGHER),
        ("infra_errors", LOWER),
        ("not_run", LOWER),
        ("avg_cost_per_app_usd", LOWER),
        ("generation_cost_usd", LOWER),
        ("avg_build_time_sec", LOWER),
        ("total_output_tokens", LOWER),
        ("avg_turns_per_app", LOWER),
        ("avg_lighthouse_score", HIGHER),  # a custom metric: higher unless configured
        ("build_rate", None),
        ("min_lighthouse_score", None),
    ],
)
def test_direction_of_known_and_custom_metrics(metric: str, expected: str | None) -> None:
    assert direction(metric) == expected


def test_configured_directions_win() -> None:
    assert direction("avg_latency_ms", lower=["avg_latency_ms"]) == LOWER
    assert direction("min_lighthouse_score", higher=["min_lighthouse_score"]) == HIGHER


# --- parsing ----------------------------------------------------------------------------


def test_rules_are_parsed_with_their_direction_and_later_rules_replace_earlier_ones() -> None:
    config = parse_gate(
        fail_under=["build_success_rate=0.9", " tests_pass_rate = 0.5 ", "build_success_rate=0.8"],
        fail_over=["avg_cost_per_app_usd=1.5"],
        max_drop=["tests_pass_rate=5%", "avg_cost_per_app_usd=0.25"],
        max_new_failures="2",
    )
    assert [(r.kind, r.metric, r.value, r.relative, r.higher_is_better) for r in config.rules] == [
        (FAIL_UNDER, "build_success_rate", 0.8, False, True),
        (FAIL_UNDER, "tests_pass_rate", 0.5, False, True),
        (FAIL_OVER, "avg_cost_per_app_usd", 1.5, False, False),
        (MAX_DROP, "tests_pass_rate", 5.0, True, True),
        (MAX_DROP, "avg_cost_per_app_usd", 0.25, False, False),
        (MAX_NEW_FAILURES, None, 2.0, False, True),
    ]
    assert [r.describe() for r in config.rules] == [
        "build_success_rate >= 0.8",
        "tests_pass_rate >= 0.5",
        "avg_cost_per_app_usd <= 1.5",
        "tests_pass_rate drops at most 5% of its baseline value vs baseline",
        "avg_cost_per_app_usd rises at most 0.25 vs baseline",
        "at most 2 apps newly failing a check vs baseline",
    ]
    assert config.active and config.needs_baseline and config.baseline_ref == "previous"
    assert not parse_gate().active
    assert not parse_gate(fail_under=["build_success_rate=1"]).needs_baseline


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"fail_under": ["build_rate=0.9"]},
            "--klaud-fail-under 'build_rate=0.9': unknown metric 'build_rate' (did you mean"
            " build_success_rate?)",
        ),
        ({"fail_under": ["build_success_rate"]}, "use METRIC=VALUE (e.g. build_success_rate=0.9)"),
        ({"fail_over": ["=1"]}, "--klaud-fail-over '=1': use METRIC=VALUE"),
        ({"fail_under": ["build_success_rate=high"]}, "value 'high' is not a number"),
        ({"fail_under": ["build_success_rate=nan"]}, "value 'nan' is not a number"),
        ({"fail_under": ["build_success_rate=90"]}, "write build_success_rate=0.9 for 90%"),
        ({"max_drop": ["tests_pass_rate=-5%"]}, "the amount must not be negative"),
        ({"max_drop": ["tests_pass_rate=x%"]}, "value 'x' is not a number"),
        ({"max_new_failures": "two"}, "--klaud-max-new-failures 'two': use a whole number"),
        ({"max_new_failures": "-1"}, "use a whole number of apps"),
        ({"baseline": "nonsense"}, "--klaud-baseline 'nonsense': use previous, an MLflow run id"),
        ({"update_baseline": True}, "--klaud-baseline-update needs --klaud-baseline=PATH"),
        ({"update_baseline": True, "baseline": "previous"}, "writes the report to a file"),
        ({"lower_is_better": ["a b"]}, "'a b' is not a metric name"),
        (
            {"lower_is_better": ["avg_x"], "higher_is_better": ["avg_x"]},
            "'avg_x' is both lower-is-better and higher-is-better",
        ),
    ],
)
def test_malformed_rules_are_gate_errors_naming_the_problem(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(GateError) as excinfo:
        parse_gate(**kwargs)
    assert message in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


@pytest.mark.parametrize(
    ("ref", "kind"),
    [
        ("previous", "previous"),
        ("0123456789abcdef0123456789abcdef", "run"),
        ("baseline.json", "file"),
        ("golden/evaluation_report.json", "file"),
        ("./golden", "file"),
    ],
)
def test_baseline_kinds(ref: str, kind: str) -> None:
    assert gates.classify_baseline(ref) == kind


# --- verdicts -----------------------------------------------------------------------------


def test_floors_and_ceilings_measure_the_summary_and_name_the_failing_apps() -> None:
    report = report_of(
        app("a"),
        app("b", failing=("build_success", "runtime_success")),
        app("c", failing=("tests_pass",)),
        app("d"),
        app("e", status="infra_error", error="npm is missing"),
    )
    config = parse_gate(
        fail_under=["build_success_rate=0.8", "tests_pass_rate=0.75"],
        fail_over=["infra_errors=0", "not_run=0"],
    )
    gate = evaluate_gate(config, report)
    rules = {r["rule"]: r for r in gate["rules"]}
    assert gate["verdict"] == "failed"
    assert {k: (r["measured"], r["limit"], r["passed"], r["apps"]) for k, r in rules.items()} == {
        "build_success_rate >= 0.8": (0.75, 0.8, False, ["b"]),
        "tests_pass_rate >= 0.75": (0.75, 0.75, True, []),
        "infra_errors <= 0": (1.0, 0.0, False, ["e"]),
        "not_run <= 0": (0.0, 0.0, True, []),
    }
    assert gate["baseline"] is None and gate["moved_apps"] is None
    assert (
        evaluate_gate(parse_gate(fail_under=["build_success_rate=0.75"]), report)["verdict"]
        == "passed"
    )


def test_a_metric_without_a_value_fails_its_rule_instead_of_counting_as_zero_or_passing() -> None:
    report = report_of(app("a"))  # no generation data, no app with types
    config = parse_gate(fail_over=["avg_cost_per_app_usd=1.5"], fail_under=["type_safety_rate=0.5"])
    gate = evaluate_gate(config, report)
    assert gate["verdict"] == "failed"
    assert [(r["measured"], r["passed"], r["note"]) for r in gate["rules"]] == [
        (None, False, "n/a: not measured in this evaluation"),
        (None, False, "n/a: not measured in this evaluation"),
    ]


def test_a_custom_metric_nobody_recorded_is_a_gate_error() -> None:
    report = report_of(app("a", custom_metrics={"lighthouse": 0.9}))
    assert report["summary"]["avg_lighthouse"] == 0.9
    ok = evaluate_gate(parse_gate(fail_under=["avg_lighthouse=0.8"]), report)
    assert ok["verdict"] == "passed"
    with pytest.raises(GateError, match=r"this evaluation has no metric 'avg_lighthuose'"):
        evaluate_gate(parse_gate(fail_under=["avg_lighthuose=0.8"]), report)


def test_max_drop_is_direction_aware_absolute_and_relative() -> None:
    before = report_of(*(app(f"app{i}") for i in range(10)))
    before["summary"]["avg_cost_per_app_usd"] = 1.00
    after = report_of(
        *(app(f"app{i}", failing=("tests_pass",) if i < 2 else ()) for i in range(10))
    )
    after["summary"]["avg_cost_per_app_usd"] = 1.04  # 4% more expensive
    config = parse_gate(
        max_drop=[
            "tests_pass_rate=0.2",  # dropped 0.2: holds (equal is allowed)
            "build_success_rate=0",  # unchanged: holds
            "overall_quality_score=5%",  # 1.0 -> 0.95: a 5% relative drop holds
            "avg_cost_per_app_usd=3%",  # rose 4% > 3%: fails
        ]
    )
    gate = evaluate_gate(config, after, baseline_of(before))
    rules = gate["rules"]
    assert [(r["metric"], r["passed"]) for r in rules] == [
        ("tests_pass_rate", True),
        ("build_success_rate", True),
        ("overall_quality_score", True),
        ("avg_cost_per_app_usd", False),
        (None, True),  # the automatic overlap rule
    ]
    assert rules[0]["measured"] == pytest.approx(0.2) and rules[0]["limit"] == 0.2
    assert rules[2]["limit"] == pytest.approx(0.05)
    assert rules[3]["measured"] == pytest.approx(0.04)
    assert rules[3]["limit"] == pytest.approx(0.03)
    assert (rules[3]["current"], rules[3]["baseline"]) == (1.04, 1.0)
    assert gate["verdict"] == "failed"
    tighter = evaluate_gate(
        parse_gate(max_drop=["tests_pass_rate=0.1"]), after, baseline_of(before)
    )
    assert tighter["rules"][0]["passed"] is False
    assert tighter["rules"][0]["apps"] == ["app0", "app1"]  # the apps that moved

    # an improvement is a negative drop and always holds
    improved = evaluate_gate(parse_gate(max_drop=["tests_pass_rate=0"]), before, baseline_of(after))
    assert improved["rules"][0]["measured"] == pytest.approx(-0.2)
    assert improved["verdict"] == "passed"


def test_new_failures_count_apps_that_went_from_pass_to_fail_on_any_check() -> None:
    before = report_of(app("a"), app("b"), app("c", failing=("tests_pass",)), app("d"), app("gone"))
    after = report_of(
        app("a", failing=("build_success", "runtime_success")),  # regressed on two checks
        app("b", failing=("databricks_connectivity",)),  # regressed
        app("c"),  # fixed
        app("d", status="infra_error", error="disk full"),  # not comparable, not a failure
        app("new", failing=("tests_pass",)),  # new: no baseline to fail against
    )
    moves = app_moves(before["apps"], after["apps"])
    assert moves.regressed == {
        "a": ["build_success", "runtime_success"],
        "b": ["databricks_connectivity"],
    }
    assert moves.fixed == {"c": ["tests_pass"]}
    assert (moves.new, moves.gone, moves.unrated, moves.common) == (["new"], ["gone"], ["d"], 3)

    gate = evaluate_gate(parse_gate(max_new_failures="1"), after, baseline_of(before))
    new_failures, overlap = gate["rules"]
    assert (new_failures["measured"], new_failures["limit"], new_failures["passed"]) == (
        2.0,
        1.0,
        False,
    )
    assert new_failures["apps"] == [
        "a (build_success, runtime_success)",
        "b (databricks_connectivity)",
    ]
    # 3 of the 4 evaluated apps were evaluated in the baseline too
    assert (overlap["kind"], overlap["measured"], overlap["passed"]) == (
        "baseline_overlap",
        0.75,
        True,
    )
    assert gate["moved_apps"]["regressed"] == moves.regressed
    assert evaluate_gate(parse_gate(max_new_failures="2"), after, baseline_of(before))[
        "verdict"
    ] == ("passed")


def test_a_baseline_of_other_apps_fails_the_gate_instead_of_passing_silently() -> None:
    before = report_of(app("a"), app("x1"), app("x2"))
    after = report_of(app("a"), app("b"), app("c"))
    gate = evaluate_gate(parse_gate(max_new_failures="0"), after, baseline_of(before))
    new_failures, overlap = gate["rules"]
    assert new_failures["passed"] is True  # nothing common regressed ...
    assert overlap["passed"] is False  # ... because almost nothing is common
    assert overlap["measured"] == pytest.approx(1 / 3)
    assert overlap["note"] == "1 of 3 evaluated apps are in the baseline"
    assert gate["verdict"] == "failed"


def test_baseline_rules_without_per_app_report_or_without_baseline() -> None:
    before, after = report_of(app("a")), report_of(app("a"))
    metrics_only = evaluate_gate(
        parse_gate(max_new_failures="0", max_drop=["build_success_rate=0"]),
        after,
        baseline_of(before, apps=False),
    )
    assert [(r["kind"], r["passed"], r["note"]) for r in metrics_only["rules"]] == [
        (MAX_DROP, True, None),
        (MAX_NEW_FAILURES, False, "n/a: the baseline has no per-app report"),
        ("baseline_overlap", False, "n/a: the baseline has no per-app report"),
    ]
    missing = Baseline("file", "new.json", missing=True)  # --klaud-baseline-update bootstrap
    gate = evaluate_gate(parse_gate(max_new_failures="0"), after, missing)
    assert [(r["passed"], r["note"]) for r in gate["rules"]] == [
        (None, "not checked: no baseline yet (this run becomes it)")
    ]
    assert gate["verdict"] == "passed"
    nothing = evaluate_gate(parse_gate(max_new_failures="0"), after, None)
    assert nothing["verdict"] == "failed"


def test_mlflow_fields_of_the_gate() -> None:
    before = report_of(app("a"), app("b"))
    after = report_of(app("a", failing=("tests_pass",)), app("b"))
    assert mlflow_fields(after) == ({}, {})
    after["gate"] = evaluate_gate(
        parse_gate(fail_under=["tests_pass_rate=0.9"], max_new_failures="0", informational=True),
        after,
        Baseline("run", "0" * 32, before["summary"], before["apps"], run_id="0" * 32),
    )
    metrics, tags = mlflow_fields(after)
    assert metrics == {
        "gate_passed": 0.0,
        "gate_rules": 3.0,
        "gate_rules_failed": 2.0,
        "gate_new_failures": 1.0,
    }
    assert tags == {
        "gate_verdict": "failed",
        "gate_informational": "true",
        "gate_failed_rules": "tests_pass_rate >= 0.9; at most 0 apps newly failing a check vs"
        " baseline",
        "gate_baseline": "0" * 32,
    }


def test_terminal_and_markdown_name_rule_measured_value_limit_and_apps() -> None:
    before = report_of(*(app(f"app{i}") for i in range(4)))
    after = report_of(
        *(app(f"app{i}", failing=("tests_pass",) if i == 3 else ()) for i in range(4))
    )
    gate = evaluate_gate(
        parse_gate(max_drop=["tests_pass_rate=0.1"], fail_under=["build_success_rate=0.9"]),
        after,
        baseline_of(before),
    )
    lines = [text for text, _ in terminal_lines(gate)]
    assert lines == [
        "baseline: report file baseline/evaluation_report.json (eval_mcp_2026-11-25T06:00:00Z)",
        "passed  build_success_rate >= 0.9: measured 100.0%, limit 90.0%",
        "FAILED  tests_pass_rate drops at most 0.1 vs baseline: measured 75.0% vs 100.0%"
        " (25.0 pp worse), limit 10.0 pp worse",
        "        apps: app3",
        "passed  at least 50% of the evaluated apps also in the baseline: measured 100%,"
        " limit 50% [4 of 4 evaluated apps are in the baseline]",
        "apps vs baseline (4 in common): 1 regressed (app3), 0 fixed, 0 new, 0 gone",
    ]
    assert headline(gate) == "quality gate: FAILED (1 of 3 rules failed)"
    markdown = "\n".join(markdown_lines(gate))
    assert "## ❌ Quality gate: FAILED (1 of 3 rules failed)" in markdown
    assert (
        "| tests_pass_rate drops at most 0.1 vs baseline | FAILED | 75.0% vs 100.0% (25.0 pp"
        " worse) | 10.0 pp worse | app3 |"
    ) in markdown


def test_importing_gates_and_compare_loads_neither_pytest_nor_mlflow() -> None:
    code = (
        "import sys, pytest_klaudbiusz.ci.gates, pytest_klaudbiusz.ci.compare\n"
        "print(sorted(m for m in ('pytest', 'mlflow', 'matplotlib') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
