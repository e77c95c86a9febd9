"""Compare evaluation runs: side-by-side metrics, latest vs previous, apps that moved, and
whether a change in a rate is distinguishable from noise (exact McNemar test).

Works on ``RunRecord``s (a run's name, mode, date and metrics, from MLflow or from a
report file) and on evaluation reports (for the per-app diff). Pure: no pytest, no
mlflow; ``history`` reads the records, ``quality`` prints them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from pytest_klaudbiusz.ci import gates
from pytest_klaudbiusz.results.metrics import (
    CHECKS,
    DISPLAY_ORDER,
    FRACTION_METRICS,
    HIGHER,
    RATES,
    direction,
)

#: Significance level of the McNemar test.
ALPHA = 0.05

#: Summary values that are bookkeeping of the gate, not quality: not compared.
HIDDEN_PREFIXES = ("gate_",)


@dataclass
class RunRecord:
    """One evaluation as the comparison sees it."""

    name: str
    mode: str
    started_at: str  # ISO 8601, UTC
    metrics: dict[str, float | None]
    run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    source: str | None = None  # the report file it was read from

    @property
    def date(self) -> str:
        try:
            moment = datetime.fromisoformat(self.started_at.replace("Z", "+00:00"))
        except ValueError:
            return self.started_at
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")

    @property
    def ref(self) -> str:
        return self.run_id or self.source or self.name


def record_from_report(report: Mapping[str, Any], source: str | None = None) -> RunRecord:
    run = report.get("run", {})
    mode = str(run.get("mode") or "unknown")
    started = str(run.get("started_at") or "")
    metrics = {
        k: (float(v) if v is not None else None)
        for k, v in report.get("summary", {}).items()
        if v is None or (isinstance(v, int | float) and not isinstance(v, bool))
    }
    tags = {"mode": mode}
    if run.get("git_branch"):
        tags["git_branch"] = str(run["git_branch"])
    gate = report.get("gate")
    if gate:
        tags["gate_verdict"] = str(gate.get("verdict"))
    return RunRecord(
        name=f"eval_{mode}_{started}",
        mode=mode,
        started_at=started,
        metrics=metrics,
        run_id=run.get("mlflow_run_id"),
        tags=tags,
        source=source,
    )


# --- statistics -------------------------------------------------------------------------


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value on the discordant pairs ``b`` and ``c``:
    ``min(1, 2 * P[X <= min(b, c)])`` with ``X ~ Binomial(b + c, 1/2)``."""
    if b < 0 or c < 0:
        raise ValueError("discordant counts must not be negative")
    n = b + c
    if n == 0:
        return 1.0
    tail = Fraction(sum(math.comb(n, k) for k in range(min(b, c) + 1)), 2**n)
    return float(min(Fraction(1), 2 * tail))


@dataclass
class PairedTest:
    """One check's paired outcomes over the apps evaluated in both runs."""

    check: str
    rate: str
    before: float | None  # the rate in each run's summary
    after: float | None
    pairs: int  # apps with a pass/fail outcome of this check in both runs
    pass_to_fail: int  # b
    fail_to_pass: int  # c
    p_value: float

    @property
    def significant(self) -> bool:
        return self.pairs > 0 and self.p_value < ALPHA

    @property
    def p_text(self) -> str:
        return f"{self.p_value:.3f}" if self.pairs else "n/a"

    @property
    def verdict(self) -> str:
        if self.pairs == 0:
            return "n/a (no app checked in both runs)"
        if self.pass_to_fail == self.fail_to_pass == 0:
            return "no change"
        if not self.significant:
            return "within noise"
        return "real: better" if self.fail_to_pass > self.pass_to_fail else "real: worse"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "before": self.before,
            "after": self.after,
            "paired_apps": self.pairs,
            "pass_to_fail": self.pass_to_fail,
            "fail_to_pass": self.fail_to_pass,
            "p_value": self.p_value if self.pairs else None,
            "verdict": self.verdict,
        }


def paired_tests(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[PairedTest]:
    """The exact McNemar test of every check rate between two reports (apps by name)."""
    old = {a["app_name"]: a for a in before["apps"] if a.get("status") == "evaluated"}
    new = {a["app_name"]: a for a in after["apps"] if a.get("status") == "evaluated"}
    common = sorted(old.keys() & new.keys())
    tests = []
    for check in CHECKS:
        pairs = [
            (old[n]["metrics"].get(check), new[n]["metrics"].get(check))
            for n in common
            if old[n]["metrics"].get(check) is not None and new[n]["metrics"].get(check) is not None
        ]
        b = sum(1 for was, now in pairs if was and not now)
        c = sum(1 for was, now in pairs if not was and now)
        rate = RATES[check]
        tests.append(
            PairedTest(
                check=check,
                rate=rate,
                before=before["summary"].get(rate),
                after=after["summary"].get(rate),
                pairs=len(pairs),
                pass_to_fail=b,
                fail_to_pass=c,
                p_value=mcnemar_exact(b, c),
            )
        )
    return tests


# --- values and changes ---------------------------------------------------------------


def change(
    metric: str,
    latest: float | None,
    previous: float | None,
    lower: Iterable[str] = (),
    higher: Iterable[str] = (),
) -> tuple[str, str]:
    """(the change as text, "better" / "worse" / "unchanged" / "n/a" / "")."""
    if latest is None or previous is None:
        return "n/a", "n/a"
    delta = latest - previous
    if abs(delta) < 1e-12:
        return "0", "unchanged"
    if metric in FRACTION_METRICS:
        text = f"{100 * delta:+.1f} pp"
    elif previous != 0:
        text = f"{100 * delta / abs(previous):+.1f}%"
    else:
        text = f"{delta:+.2f}"
    better = direction(metric, lower, higher)
    if better is None:
        return text, ""
    return text, "better" if (delta > 0) == (better == HIGHER) else "worse"


def shown_metrics(runs: Sequence[RunRecord], only: Sequence[str] | None = None) -> list[str]:
    """The metrics any of the runs has: the usual ones first, then the others, sorted;
    ``only``: those of these names, in their order."""
    present = {
        name
        for run in runs
        for name, value in run.metrics.items()
        if value is not None and not name.startswith(HIDDEN_PREFIXES)
    }
    if only is not None:
        return [m for m in only if m in present]
    ordered = [m for m in DISPLAY_ORDER if m in present]
    return ordered + sorted(present - set(ordered))


def mode_means(
    runs: Sequence[RunRecord], metrics: Sequence[str]
) -> list[tuple[str, int, dict[str, float | None]]]:
    """(mode, runs, mean of each metric over that mode's runs that have it), by mode."""
    by_mode: dict[str, list[RunRecord]] = {}
    for run in runs:
        by_mode.setdefault(run.mode, []).append(run)
    result = []
    for mode, group in by_mode.items():
        means: dict[str, float | None] = {}
        for metric in metrics:
            values = [v for r in group if (v := r.metrics.get(metric)) is not None]
            means[metric] = math.fsum(values) / len(values) if values else None
        result.append((mode, len(group), means))
    return result


def trend_data(runs: Sequence[RunRecord], mode: str) -> dict[str, Any]:
    """The rates of a mode's runs, oldest first: what the trend chart draws (plain JSON)."""
    chosen = sorted((r for r in runs if r.mode == mode), key=lambda r: r.started_at)
    return {
        "mode": mode,
        "metrics": list(RATES.values()),
        "runs": [
            {
                "run_id": r.run_id,
                "run_name": r.name,
                "started_at": r.started_at,
                "values": {m: r.metrics.get(m) for m in RATES.values()},
            }
            for r in chosen
        ],
    }


# --- the comparison -------------------------------------------------------------------


@dataclass
class Comparison:
    runs: list[RunRecord]  # newest first: the runs shown
    where: str  # "experiment X at URI", "report files"
    latest: RunRecord | None = None
    previous: RunRecord | None = None
    latest_report: Mapping[str, Any] | None = None
    previous_report: Mapping[str, Any] | None = None
    mode: str | None = None  # the mode filter, if any
    lower_is_better: frozenset[str] = frozenset()
    higher_is_better: frozenset[str] = frozenset()
    notes: list[str] = field(default_factory=list)  # e.g. why the per-app diff is missing
    titles: tuple[str, str] = ("Latest", "Previous")  # column titles: latest, previous
    heading: str = "Latest vs Previous Run"
    intro: str | None = None  # what is compared, when not "the N most recent runs"
    metrics: tuple[str, ...] | None = None  # the metrics shown (--klaud-metrics); None: all

    def shown(self, runs: Sequence[RunRecord]) -> list[str]:
        return shown_metrics(runs, self.metrics)

    @property
    def scope(self) -> str:
        if self.intro:
            return self.intro
        which = f"mode {self.mode}" if self.mode else "all modes"
        return f"{len(self.runs)} most recent finished runs ({which}) in {self.where}"

    def change(self, metric: str) -> tuple[str, str]:
        assert self.latest is not None and self.previous is not None
        return change(
            metric,
            self.latest.metrics.get(metric),
            self.previous.metrics.get(metric),
            self.lower_is_better,
            self.higher_is_better,
        )

    @property
    def moves(self) -> gates.AppMoves | None:
        if self.latest_report is None or self.previous_report is None:
            return None
        return gates.app_moves(self.previous_report["apps"], self.latest_report["apps"])

    @property
    def tests(self) -> list[PairedTest]:
        if self.latest_report is None or self.previous_report is None:
            return []
        return paired_tests(self.previous_report, self.latest_report)

    def to_dict(self) -> dict[str, Any]:
        """The comparison's findings as plain JSON."""
        moves = self.moves
        return {
            "runs": [r.ref for r in self.runs],
            "latest": self.latest.ref if self.latest else None,
            "previous": self.previous.ref if self.previous else None,
            "changes": (
                {m: self.change(m)[1] for m in self.shown([self.latest, self.previous])}
                if self.latest and self.previous
                else {}
            ),
            "moved_apps": moves.to_dict() if moves else None,
            "tests": [t.to_dict() for t in self.tests],
        }
