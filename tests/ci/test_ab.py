"""A/B tests of generation strategies (pytest_klaudbiusz.ci.ab): the paired interval and
the verdict checked against hand-computed cases, unpaired apps, cost per passing app, and
``pytest --klaud-ab`` on two report files (with its Markdown summary)."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import pytest

from pytest_klaudbiusz.ci import ab
from pytest_klaudbiusz.results.aggregate import build_report
from pytest_klaudbiusz.results.metrics import CHECKS
from pytest_klaudbiusz.results.model import AppResult, AppStatus


def report(
    passing: set[int], n_apps: int = 30, mode: str = "mcp", names: str = "app{:02d}", **extra: Any
) -> dict[str, Any]:
    """``n_apps`` apps; those not in ``passing`` fail only ``tests_pass``."""
    apps = []
    for i in range(n_apps):
        metrics: dict[str, Any] = {c: True for c in CHECKS}
        metrics["tests_pass"] = i in passing
        metrics["type_safety"] = None  # not applicable: no pair, never a failure
        apps.append(AppResult(names.format(i), f"/apps/{i}", metrics=metrics, **extra))
    run = {"mode": mode, "started_at": "2026-11-30T06:00:00Z", "mlflow_run_id": None}
    return build_report(apps, run)


# --- the interval, by hand ---------------------------------------------------------------


def test_wilson_interval_by_hand() -> None:
    # 12/30, z = 1.959964: centre 0.4 + z^2/60 = 0.464024; spread z*sqrt(0.24/30 + z^2/3600)
    # = 1.959964 * 0.095556 = 0.187287; divided by 1 + z^2/30 = 1.128047
    interval = ab.wilson(12, 30)
    assert interval.low == pytest.approx(0.245906, abs=1e-6)
    assert interval.high == pytest.approx(0.576796, abs=1e-6)


def test_newcombe_paired_interval_not_significant_by_hand() -> None:
    """12/30 (A) vs 18/30 (B) on the same 30 apps: 10 pass with both, 2 with A only, 8 with
    B only, 10 with neither. Wilson: A 0.245906 to 0.576796, B 0.423204 to 0.754094.
    phi: ad - bc = 100 - 16 = 84, corrected 84 - 30/2 = 69, over sqrt(12*18*18*12) = 216:
    0.319444. D = 0.2; lower = 0.2 - sqrt(0.176796^2 - 2*phi*0.176796*0.176796 + 0.176796^2)
    = 0.2 - 0.206262 = -0.006262; upper = 0.2 + sqrt(0.154094^2 - 2*phi*0.154094*0.154094
    + 0.154094^2) = 0.379776."""
    interval = ab.paired_difference_ci(both=10, only_a=2, only_b=8, neither=10)
    assert interval.low == pytest.approx(-0.006262, abs=1e-6)
    assert interval.high == pytest.approx(0.379776, abs=1e-6)


def test_newcombe_paired_interval_significant_by_hand() -> None:
    """10/30 vs 18/30: 10 both, 0 A only, 8 B only, 12 neither. phi = (120 - 15) /
    sqrt(10*20*18*12) = 105 / 207.846 = 0.505181; interval 0.089750 to 0.413898."""
    interval = ab.paired_difference_ci(both=10, only_a=0, only_b=8, neither=12)
    assert interval.low == pytest.approx(0.089750, abs=1e-6)
    assert interval.high == pytest.approx(0.413898, abs=1e-6)


def test_negative_association_uses_the_uncorrected_phi() -> None:
    # ad - bc = 0 - 25 < 0: phi = -25 / sqrt(5*5*5*5) = -1, the widest combination
    interval = ab.paired_difference_ci(both=0, only_a=5, only_b=5, neither=0)
    half = 0.5 - ab.wilson(5, 10).low
    assert interval.low == pytest.approx(-2 * half)
    assert interval.high == pytest.approx(2 * half)


def test_no_pair_is_refused() -> None:
    with pytest.raises(ValueError):
        ab.paired_difference_ci(0, 0, 0, 0)


# --- the test of two reports ----------------------------------------------------------------

# A passes apps 0-11 (12/30); B passes 0-9 and 12-19 (18/30): 2 with A only, 8 with B only
A_12 = set(range(12))
B_18 = set(range(10)) | set(range(12, 20))


def test_within_noise_is_never_a_win() -> None:
    test = ab.ab_test(report(A_12), report(B_18, mode="vanilla"), "mcp", "vanilla")
    o = test.overall
    assert (o.pairs, o.passed_a, o.passed_b) == (30, 12, 18)
    assert (o.only_a, o.only_b) == (["app10", "app11"], [f"app{i}" for i in range(12, 20)])
    assert o.p_value == float(Fraction(2 * (1 + 10 + 45), 1024))  # 0.109375
    assert not o.detectable
    assert (
        test.verdict == "no detectable difference on 30 apps: +20.0 pp, 95% CI \u22120.6 to +38.0"
    )
    assert [c.check for c in test.checks] == [c for c in CHECKS if c != "type_safety"]
    tests_pass = next(c for c in test.checks if c.check == "tests_pass")
    assert tests_pass.to_dict() == o.to_dict() | {"check": "tests_pass"}
    build = next(c for c in test.checks if c.check == "build_success")
    assert (build.difference, build.p_value, build.detectable) == (0.0, 1.0, False)


def test_a_real_difference_names_the_winner() -> None:
    b_wins = ab.ab_test(report(set(range(10))), report(B_18), "mcp", "vanilla")
    assert b_wins.overall.p_value == pytest.approx(2 / 256)
    assert b_wins.verdict == (
        "B passes more apps on 30 apps: +26.7 pp, 95% CI +9.0 to +41.4, McNemar p = 0.008"
        " (B = vanilla, A = mcp)"
    )
    a_wins = ab.ab_test(report(B_18), report(set(range(10))), "vanilla", "mcp")
    assert a_wins.verdict.startswith("A passes more apps on 30 apps: \u221226.7 pp")


def test_unpaired_and_unrated_apps_are_listed_not_dropped() -> None:
    a = report(set(range(5)), n_apps=5)
    b = report(set(range(5)), n_apps=6)  # app05 only in B
    a["apps"].append({**b["apps"][0], "app_name": "only-a"})
    b["apps"][1]["status"] = AppStatus.INFRA_ERROR.value  # app01: not rated in B
    test = ab.ab_test(a, b, "A", "B")
    assert (test.only_in_a, test.only_in_b, test.unrated) == (["only-a"], ["app05"], ["app01"])
    assert test.overall.pairs == 4
    text = "\n".join(ab.render_text(test))
    assert "unpaired, only in A: 1 (only-a)" in text
    assert "unpaired, only in B: 1 (app05)" in text
    assert "not rated on one side (infrastructure error, not run): 1 (app01)" in text


def test_cost_per_passing_app_over_the_paired_apps() -> None:
    gen = {"generation_metrics": {"cost_usd": 0.5}}
    test = ab.ab_test(report(A_12, **gen), report(B_18, **gen), "A", "B")
    assert test.cost_per_passing_app == (pytest.approx(15 / 12), pytest.approx(15 / 18))
    assert "cost per passing app (paired apps): A $1.25, B $0.83" in ab.render_text(test)
    assert ab.ab_test(report(A_12), report(B_18), "A", "B").cost_per_passing_app == (None, None)


def test_no_shared_app() -> None:
    test = ab.ab_test(report(set(), names="a{}"), report(set(), names="b{}"), "A", "B")
    assert test.verdict == "no paired apps: nothing to compare"
    assert test.overall.interval is None and test.checks == []


def test_markdown_holds_the_verdict_and_the_table() -> None:
    test = ab.ab_test(report(A_12), report(B_18), "mcp | x", "vanilla")
    markdown = "\n".join(ab.render_markdown(test))
    assert f"**{test.verdict}**" in markdown
    assert "| all_checks_pass_rate | 30 | 40.0% | 60.0% | +20.0 pp |" in markdown
    assert "mcp \\| x" in markdown  # cells escaped


# --- pytest --klaud-ab ----------------------------------------------------------------------


def test_klaud_ab_on_report_files(pytester: pytest.Pytester) -> None:
    for name, passing in (("a", A_12), ("b", B_18)):
        folder = pytester.path / name
        folder.mkdir()
        (folder / "evaluation_report.json").write_text(json.dumps(report(passing, mode=name)))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--klaud-ab", "a", "b/evaluation_report.json",
        "--klaud-summary-md", "ab.md",
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str()
    verdict = "verdict: no detectable difference on 30 apps: +20.0 pp, 95% CI \u22120.6 to +38.0"
    result.stdout.fnmatch_lines(["A: a (*)", "B: b (*)", "all_checks_pass_rate *", verdict])
    assert verdict.removeprefix("verdict: ") in (pytester.path / "ab.md").read_text()


def test_klaud_ab_bad_report_is_a_usage_error(pytester: pytest.Pytester) -> None:
    (pytester.path / "bad.json").write_text("{not json")
    result = pytester.runpytest_subprocess("--klaud-ab", "bad.json", "bad.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    result.stderr.fnmatch_lines(["ERROR: --klaud-ab: *bad.json*"])
