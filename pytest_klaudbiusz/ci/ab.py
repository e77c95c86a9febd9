"""A/B test of two generation strategies on the apps both evaluated.

Pure: two evaluation reports in, an ``ABTest`` out (plain JSON, text, Markdown). The apps
are paired by name; an app one side lacks (or could not rate: infrastructure error, not
run) is listed as unpaired, never silently dropped.

For each check (and for "the app passes every check"), on the paired apps:

* the two pass rates;
* their difference B - A with a 95% confidence interval by **Newcombe's hybrid score
  method for paired proportions** (Newcombe 1998, Statistics in Medicine 17:2635, method
  10; the worked form of Altman et al., *Statistics with Confidence*, 2nd ed., p. 52):
  Wilson score intervals of both rates, combined with the phi correlation of the paired
  outcomes. Chosen over a bootstrap because it is deterministic, has no seed or resampling
  cost, keeps its coverage near 95% with a few dozen apps and rates near 0 or 1 (where the
  bootstrap's percentile interval collapses to a point), and can be checked by hand;
* the exact McNemar p-value of the discordant apps (``compare.mcnemar_exact``).

A difference is called a win only when both agree that it is not noise: the McNemar test
rejects at ``ALPHA`` and the interval excludes 0. Otherwise the verdict says "no detectable
difference", however large the point estimate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from pytest_klaudbiusz.ci.compare import ALPHA, mcnemar_exact
from pytest_klaudbiusz.results.markdown import markdown_table
from pytest_klaudbiusz.results.metrics import CHECKS, RATES
from pytest_klaudbiusz.results.text import markdown_cell

#: The two-sided 95% normal quantile (1.95996...).
Z95 = NormalDist().inv_cdf(0.975)
#: The pseudo-check "the app passes every check that applies to it".
ALL_CHECKS = "all_checks"
MINUS = "\u2212"  # the minus sign of the verdict line, as in the example


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def wilson(successes: int, n: int, z: float = Z95) -> Interval:
    """The Wilson score interval of a proportion (``n`` > 0)."""
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return Interval((centre - spread) / scale, (centre + spread) / scale)


def paired_difference_ci(
    both: int, only_a: int, only_b: int, neither: int, z: float = Z95
) -> Interval:
    """Newcombe's interval (method 10) for rate(B) - rate(A) on paired outcomes: ``both``
    apps pass on both sides, ``only_a`` pass only with A, ``only_b`` only with B."""
    n = both + only_a + only_b + neither
    if n == 0:
        raise ValueError("no paired app")
    rate_a, rate_b = (both + only_a) / n, (both + only_b) / n
    ci_a, ci_b = wilson(both + only_a, n, z), wilson(both + only_b, n, z)
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    phi = 0.0
    if margins > 0:
        cross = both * neither - only_a * only_b
        # Newcombe's continuity correction of phi: a positive association shrinks by n/2
        corrected = max(cross - n / 2, 0.0) if cross > 0 else float(cross)
        phi = corrected / math.sqrt(margins)
    diff = rate_b - rate_a
    below_b, above_b = rate_b - ci_b.low, ci_b.high - rate_b
    below_a, above_a = rate_a - ci_a.low, ci_a.high - rate_a
    low = diff - math.sqrt(below_b**2 - 2 * phi * below_b * above_a + above_a**2)
    high = diff + math.sqrt(above_b**2 - 2 * phi * above_b * below_a + below_a**2)
    return Interval(max(-1.0, low), min(1.0, high))


@dataclass
class PairedRate:
    """One check's outcomes over the apps rated on both sides."""

    check: str
    pairs: int
    passed_a: int
    passed_b: int
    only_a: list[str]  # apps that pass with A only
    only_b: list[str]  # apps that pass with B only

    @property
    def rate_a(self) -> float | None:
        return self.passed_a / self.pairs if self.pairs else None

    @property
    def rate_b(self) -> float | None:
        return self.passed_b / self.pairs if self.pairs else None

    @property
    def difference(self) -> float | None:
        return (self.passed_b - self.passed_a) / self.pairs if self.pairs else None

    @property
    def interval(self) -> Interval | None:
        if not self.pairs:
            return None
        both = self.passed_a - len(self.only_a)
        neither = self.pairs - both - len(self.only_a) - len(self.only_b)
        return paired_difference_ci(both, len(self.only_a), len(self.only_b), neither)

    @property
    def p_value(self) -> float | None:
        return mcnemar_exact(len(self.only_a), len(self.only_b)) if self.pairs else None

    @property
    def detectable(self) -> bool:
        """Not noise: McNemar rejects and the interval excludes 0."""
        interval, p = self.interval, self.p_value
        return interval is not None and p is not None and p < ALPHA and not interval.contains(0)

    @property
    def rate_name(self) -> str:
        return RATES.get(self.check, "all_checks_pass_rate")

    def to_dict(self) -> dict[str, Any]:
        interval = self.interval
        return {
            "check": self.check,
            "paired_apps": self.pairs,
            "rate_a": self.rate_a,
            "rate_b": self.rate_b,
            "difference": self.difference,
            "ci95": [interval.low, interval.high] if interval else None,
            "p_value": self.p_value,
            "only_a": self.only_a,
            "only_b": self.only_b,
            "detectable": self.detectable,
        }


@dataclass
class ABTest:
    """Strategy B compared with strategy A on the apps both evaluated."""

    label_a: str  # e.g. "mcp (run 3f2a...)"
    label_b: str
    paired: list[str]  # apps evaluated on both sides
    only_in_a: list[str]  # unpaired: B has no such app
    only_in_b: list[str]
    unrated: list[str]  # in both, but not evaluated on one side (infrastructure error, not run)
    overall: PairedRate  # the app passes every check
    checks: list[PairedRate]
    cost_per_passing_app: tuple[float | None, float | None]  # over the paired apps
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """One line; a difference within noise is never a win."""
        o = self.overall
        n = o.pairs
        if n == 0 or o.difference is None or o.interval is None:
            return "no paired apps: nothing to compare"
        estimate = f"{_pp(o.difference)} pp, 95% CI {_pp(o.interval.low)} to {_pp(o.interval.high)}"
        apps = f"{n} app{'s' * (n != 1)}"
        if not o.detectable:
            return f"no detectable difference on {apps}: {estimate}"
        winner = "B" if o.difference > 0 else "A"
        return (
            f"{winner} passes more apps on {apps}: {estimate}, McNemar p = {o.p_value:.3f}"
            f" (B = {self.label_b}, A = {self.label_a})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.label_a,
            "b": self.label_b,
            "verdict": self.verdict,
            "method": "Newcombe hybrid score interval (paired, method 10); exact McNemar",
            "paired_apps": self.paired,
            "only_in_a": self.only_in_a,
            "only_in_b": self.only_in_b,
            "unrated": self.unrated,
            "overall": self.overall.to_dict(),
            "checks": [c.to_dict() for c in self.checks],
            "cost_per_passing_app_usd": list(self.cost_per_passing_app),
        }


def _pp(fraction: float) -> str:
    """A difference in percentage points with its sign: "+3.3", or U+2212 and "8.1"."""
    text = f"{100 * fraction:+.1f}"
    return MINUS + text[1:] if text.startswith("-") else text


def _evaluated(app: Mapping[str, Any]) -> bool:
    return bool(app.get("status", "evaluated") == "evaluated")


def _passes(app: Mapping[str, Any]) -> bool:
    return not any(app.get("metrics", {}).get(c) is False for c in CHECKS)


def _cost_per_passing(apps: Sequence[Mapping[str, Any]]) -> float | None:
    """Generation cost of the apps that report one, per app among them that passes."""
    costed = [
        (float(cost), _passes(a))
        for a in apps
        if (cost := (a.get("generation_metrics") or {}).get("cost_usd")) is not None
    ]
    passing = sum(1 for _, ok in costed if ok)
    return math.fsum(c for c, _ in costed) / passing if passing else None


def ab_test(
    report_a: Mapping[str, Any], report_b: Mapping[str, Any], label_a: str, label_b: str
) -> ABTest:
    """Pair the two reports' apps by name and test every check."""
    apps_a = {a["app_name"]: a for a in report_a["apps"]}
    apps_b = {a["app_name"]: a for a in report_b["apps"]}
    common = sorted(apps_a.keys() & apps_b.keys())
    paired = [n for n in common if _evaluated(apps_a[n]) and _evaluated(apps_b[n])]
    unrated = [n for n in common if n not in paired]

    def rate(check: str) -> PairedRate:
        outcomes = []
        for name in paired:
            if check == ALL_CHECKS:
                outcomes.append((name, _passes(apps_a[name]), _passes(apps_b[name])))
                continue
            was = apps_a[name]["metrics"].get(check)
            now = apps_b[name]["metrics"].get(check)
            if was is not None and now is not None:
                outcomes.append((name, bool(was), bool(now)))
        return PairedRate(
            check=check,
            pairs=len(outcomes),
            passed_a=sum(1 for _, a, _ in outcomes if a),
            passed_b=sum(1 for _, _, b in outcomes if b),
            only_a=[n for n, a, b in outcomes if a and not b],
            only_b=[n for n, a, b in outcomes if b and not a],
        )

    return ABTest(
        label_a=label_a,
        label_b=label_b,
        paired=paired,
        only_in_a=sorted(apps_a.keys() - apps_b.keys()),
        only_in_b=sorted(apps_b.keys() - apps_a.keys()),
        unrated=unrated,
        overall=rate(ALL_CHECKS),
        checks=[r for r in map(rate, CHECKS) if r.pairs],
        cost_per_passing_app=(
            _cost_per_passing([apps_a[n] for n in paired]),
            _cost_per_passing([apps_b[n] for n in paired]),
        ),
    )


# --- output -------------------------------------------------------------------------------


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def usd(value: float | None) -> str:
    return "n/a" if value is None else f"${value:.2f}"


def row(r: PairedRate) -> list[str]:
    interval = r.interval
    return [
        r.rate_name,
        str(r.pairs),
        _rate(r.rate_a),
        _rate(r.rate_b),
        "n/a" if r.difference is None else f"{_pp(r.difference)} pp",
        "n/a" if interval is None else f"{_pp(interval.low)} to {_pp(interval.high)}",
        "n/a" if r.p_value is None else f"{r.p_value:.3f}",
        str(len(r.only_a)),
        str(len(r.only_b)),
        "yes" if r.detectable else "no",
    ]


HEADER = ["Rate", "Apps", "A", "B", "B - A", "95% CI", "McNemar p", "Only A", "Only B", "Real"]
METHOD = (
    "Paired on the apps both evaluated; 95% CI: Newcombe's hybrid score interval for paired"
    f" proportions; a difference is real when the exact McNemar p < {ALPHA} and the CI excludes 0."
)


def app_lists(t: ABTest) -> list[tuple[str, list[str]]]:
    return [
        ("pass with A only (all checks)", t.overall.only_a),
        ("pass with B only (all checks)", t.overall.only_b),
        ("unpaired, only in A", t.only_in_a),
        ("unpaired, only in B", t.only_in_b),
        ("not rated on one side (infrastructure error, not run)", t.unrated),
    ]


def render_text(t: ABTest) -> list[str]:
    rows = [row(t.overall), *map(row, t.checks)]
    widths = [max(len(str(c)) for c in col) for col in zip(HEADER, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return (
            f"{first:<{widths[0]}}"
            + "".join(f"  {c:>{w}}" for c, w in zip(rest, widths[1:], strict=True))
        ).rstrip()

    lines = [
        "A/B test of generation strategies",
        "=" * 34,
        f"A: {t.label_a}",
        f"B: {t.label_b}",
        "",
        line(HEADER),
        "-" * len(line(HEADER)),
        *map(line, rows),
        "",
        f"cost per passing app (paired apps): A {usd(t.cost_per_passing_app[0])},"
        f" B {usd(t.cost_per_passing_app[1])}",
    ]
    for title, names in app_lists(t):
        if names:
            lines.append(f"{title}: {len(names)} ({', '.join(names)})")
    lines += [*t.notes, METHOD, "", f"verdict: {t.verdict}"]
    return lines


def render_markdown(t: ABTest, level: str = "##") -> list[str]:
    rows = [row(t.overall), *map(row, t.checks)]
    lines = [
        f"{level} A/B test: B vs A",
        "",
        f"**{markdown_cell(t.verdict)}**",
        "",
        f"A: {markdown_cell(t.label_a)}; B: {markdown_cell(t.label_b)}.",
        "",
        *markdown_table(HEADER, rows),
        "",
        f"Cost per passing app (paired apps): A {usd(t.cost_per_passing_app[0])},"
        f" B {usd(t.cost_per_passing_app[1])}.",
        "",
    ]
    listed = [[title, str(len(names)), ", ".join(names)] for title, names in app_lists(t) if names]
    if listed:
        lines += [*markdown_table(["Apps", "Count", "Names"], listed), ""]
    lines += [*(markdown_cell(n) for n in t.notes), METHOD, ""]
    return lines
