"""Quality gates: rules on the report's summary, a baseline to compare with, and a verdict.

A gate is a list of rules, each checked against the finished evaluation report:

* ``fail_under``  ``METRIC=VALUE``: the metric is at least VALUE;
* ``fail_over``   ``METRIC=VALUE``: the metric is at most VALUE (lower-is-better metrics);
* ``max_drop``    ``METRIC=AMOUNT``: versus the baseline the metric got worse by at most
  AMOUNT, absolute (``0.05``) or relative to the baseline value (``5%``); "worse" follows
  the metric's direction (a drop of a rate, a rise of a cost);
* ``max_new_failures`` ``N``: at most N apps (matched by name) went from pass to fail on
  any check versus the baseline.

Rules that compare with a baseline also get a ``baseline_overlap`` rule: at least half of
the evaluated apps must have been evaluated in the baseline too, so that a baseline of
other apps fails the gate instead of letting it pass by comparing nothing.

The direction of every known summary metric is in ``results.metrics``. Pure: no
pytest, no mlflow; the verdict is plain JSON (the report's top-level ``gate`` key).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_klaudbiusz.results.metrics import (
    CHECKS,
    FRACTION_METRICS,
    HIGHER,
    METRIC_DIRECTIONS,
    QUALITY_CHECKS,
    RATES,
    direction,
)

#: The per-app checks behind a summary metric: the apps that explain its value.
METRIC_CHECKS: dict[str, tuple[str, ...]] = {
    **{rate: (check,) for check, rate in RATES.items()},
    "overall_quality_score": QUALITY_CHECKS,
}

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

FAIL_UNDER = "fail_under"
FAIL_OVER = "fail_over"
MAX_DROP = "max_drop"
MAX_NEW_FAILURES = "max_new_failures"
BASELINE_OVERLAP = "baseline_overlap"
BASELINE_KINDS = (MAX_DROP, MAX_NEW_FAILURES)

#: A baseline must have evaluated at least this share of the apps evaluated now.
MIN_COMMON_FRACTION = 0.5

PASSED = "passed"
FAILED = "failed"
ERROR = "error"

OPTIONS = {
    FAIL_UNDER: "--klaud-fail-under",
    FAIL_OVER: "--klaud-fail-over",
    MAX_DROP: "--klaud-max-drop",
    MAX_NEW_FAILURES: "--klaud-max-new-failures",
}
_EXAMPLES = {
    FAIL_UNDER: "build_success_rate=0.9",
    FAIL_OVER: "avg_cost_per_app_usd=1.5",
    MAX_DROP: "tests_pass_rate=0.05 or tests_pass_rate=5%",
}
EPSILON = 1e-9  # float noise: 0.9 - 0.85 is 0.05000000000000004


class GateError(ValueError):
    """A gate that cannot be checked as written; the message is one line saying what to fix."""


@dataclass(frozen=True)
class Rule:
    kind: str
    metric: str | None  # None for max_new_failures and baseline_overlap
    value: float  # the limit as written (a percentage for relative drops)
    text: str  # the value as written: "0.9", "5%", "0"
    relative: bool = False
    higher_is_better: bool = True

    def describe(self) -> str:
        if self.kind == FAIL_UNDER:
            return f"{self.metric} >= {self.text}"
        if self.kind == FAIL_OVER:
            return f"{self.metric} <= {self.text}"
        if self.kind == MAX_DROP:
            verb = "drops" if self.higher_is_better else "rises"
            of = " of its baseline value" if self.relative else ""
            return f"{self.metric} {verb} at most {self.text}{of} vs baseline"
        if self.kind == MAX_NEW_FAILURES:
            return f"at most {self.text} apps newly failing a check vs baseline"
        return f"at least {self.text} of the evaluated apps also in the baseline"


@dataclass(frozen=True)
class GateConfig:
    rules: tuple[Rule, ...] = ()
    baseline: str | None = None  # as given; None means "previous" when a rule needs one
    same_branch: bool = False
    informational: bool = False
    update_baseline: bool = False
    lower_is_better: frozenset[str] = frozenset()
    higher_is_better: frozenset[str] = frozenset()

    @property
    def active(self) -> bool:
        """Whether a gate is configured (and so decides the exit status)."""
        return bool(self.rules)

    @property
    def needs_baseline(self) -> bool:
        return any(r.kind in BASELINE_KINDS for r in self.rules)

    @property
    def wants_baseline(self) -> bool:
        """A rule needs one, or one was named (to compare with, or to update)."""
        return self.needs_baseline or self.baseline is not None

    @property
    def baseline_ref(self) -> str:
        return self.baseline or "previous"


@dataclass
class Baseline:
    """What the current evaluation is compared with."""

    kind: str  # "previous", "run" or "file"
    ref: str  # as given: "previous", a run id, a path
    summary: Mapping[str, Any] = field(default_factory=dict)
    apps: list[dict[str, Any]] | None = None  # None: no per-app report (metrics only)
    run_id: str | None = None
    run_name: str | None = None
    started_at: str | None = None
    missing: bool = False  # the file does not exist yet (--klaud-baseline-update writes it)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ref": self.ref,
            "run_id": self.run_id,
            "run_name": self.run_name,
            "started_at": self.started_at,
            "has_apps": self.apps is not None,
            "missing": self.missing,
        }


# --- parsing ---------------------------------------------------------------------------


def classify_baseline(ref: str) -> str:
    """``previous``, ``run`` (an MLflow run id) or ``file`` (a report path)."""
    if ref == "previous":
        return "previous"
    if re.fullmatch(r"[0-9a-f]{32}", ref):
        return "run"
    if ref.endswith(".json") or "/" in ref or "\\" in ref:
        return "file"
    raise GateError(
        f"--klaud-baseline {ref!r}: use previous, an MLflow run id (32 hex digits), or the"
        " path of an evaluation_report.json"
    )


def _unknown_metric(option: str, item: str, metric: str) -> GateError:
    close = difflib.get_close_matches(metric, METRIC_DIRECTIONS, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return GateError(
        f"{option} {item!r}: unknown metric {metric!r}{hint}; use a summary metric such as"
        " build_success_rate or avg_cost_per_app_usd, avg_<name> for a custom metric, or"
        " declare a metric of your own with --klaud-higher-is-better/--klaud-lower-is-better"
    )


def _number(option: str, item: str, text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise GateError(f"{option} {item!r}: {what} {text!r} is not a number")
    return value


def _metric_rule(kind: str, item: str, lower: frozenset[str], higher: frozenset[str]) -> Rule:
    option = OPTIONS[kind]
    metric, sep, text = (part.strip() for part in item.partition("="))
    if not sep or not metric or not text:
        raise GateError(f"{option} {item!r}: use METRIC=VALUE (e.g. {_EXAMPLES[kind]})")
    better = direction(metric, lower, higher)
    if better is None:
        raise _unknown_metric(option, item, metric)
    relative = kind == MAX_DROP and text.endswith("%")
    value = _number(option, item, text[:-1].strip() if relative else text, "value")
    if kind == MAX_DROP and value < 0:
        raise GateError(f"{option} {item!r}: the amount must not be negative")
    if metric in FRACTION_METRICS and not relative and not 0 <= value <= 1:
        raise GateError(
            f"{option} {item!r}: {metric} is a fraction from 0 to 1"
            f" (write {metric}={value / 100:g} for {value:g}%)"
        )
    return Rule(kind, metric, value, text, relative, better == HIGHER)


def parse_gate(
    *,
    fail_under: Sequence[str] = (),
    fail_over: Sequence[str] = (),
    max_drop: Sequence[str] = (),
    max_new_failures: str | None = None,
    baseline: str | None = None,
    same_branch: bool = False,
    informational: bool = False,
    update_baseline: bool = False,
    lower_is_better: Sequence[str] = (),
    higher_is_better: Sequence[str] = (),
) -> GateConfig:
    """Validate every rule; a later rule on the same metric replaces an earlier one (the
    command line comes after the ini file). Raises ``GateError``."""
    lower = frozenset(name.strip() for name in lower_is_better if name.strip())
    higher = frozenset(name.strip() for name in higher_is_better if name.strip())
    for name in sorted(lower | higher):
        if not _NAME.fullmatch(name):
            raise GateError(
                f"--klaud-lower-is-better/--klaud-higher-is-better: {name!r} is not"
                " a metric name (letters, digits and '_')"
            )
    if both := sorted(lower & higher):
        raise GateError(f"metric {both[0]!r} is both lower-is-better and higher-is-better")
    rules: dict[tuple[str, str | None], Rule] = {}
    for kind, items in ((FAIL_UNDER, fail_under), (FAIL_OVER, fail_over), (MAX_DROP, max_drop)):
        for item in items:
            rule = _metric_rule(kind, item, lower, higher)
            rules[(kind, rule.metric)] = rule
    if max_new_failures not in (None, ""):
        text = str(max_new_failures).strip()
        if not text.isdigit():
            raise GateError(
                f"--klaud-max-new-failures {max_new_failures!r}: use a whole number of apps"
                " (e.g. 0)"
            )
        rules[(MAX_NEW_FAILURES, None)] = Rule(MAX_NEW_FAILURES, None, float(text), text)
    if baseline is not None:
        baseline = baseline.strip()
        kind = classify_baseline(baseline)
        if update_baseline and kind != "file":
            raise GateError(
                "--klaud-baseline-update writes the report to a file: pass"
                " --klaud-baseline=PATH/evaluation_report.json"
            )
    elif update_baseline:
        raise GateError(
            "--klaud-baseline-update needs --klaud-baseline=PATH (the report file to write)"
        )
    return GateConfig(
        rules=tuple(rules.values()),
        baseline=baseline,
        same_branch=same_branch,
        informational=informational,
        update_baseline=update_baseline,
        lower_is_better=lower,
        higher_is_better=higher,
    )


# --- apps that moved --------------------------------------------------------------------


@dataclass
class AppMoves:
    """How the apps changed from one report to another, matched by name."""

    regressed: dict[str, list[str]]  # app -> checks that went pass -> fail
    fixed: dict[str, list[str]]  # app -> checks that went fail -> pass
    new: list[str]  # only in the later report
    gone: list[str]  # only in the earlier report
    unrated: list[str]  # in both, but not evaluated in one (infra error, not run)
    common: int  # apps evaluated in both

    def to_dict(self) -> dict[str, Any]:
        return {
            "regressed": self.regressed,
            "fixed": self.fixed,
            "new": self.new,
            "gone": self.gone,
            "unrated": self.unrated,
            "apps_in_common": self.common,
        }


def _evaluated(app: Mapping[str, Any]) -> bool:
    return bool(app.get("status", "evaluated") == "evaluated")


def app_moves(
    before: Sequence[Mapping[str, Any]],
    after: Sequence[Mapping[str, Any]],
    checks: Sequence[str] = CHECKS,
) -> AppMoves:
    old = {a["app_name"]: a for a in before}
    new = {a["app_name"]: a for a in after}
    regressed: dict[str, list[str]] = {}
    fixed: dict[str, list[str]] = {}
    unrated, common = [], 0
    for name in sorted(old.keys() & new.keys()):
        if not (_evaluated(old[name]) and _evaluated(new[name])):
            unrated.append(name)
            continue
        common += 1
        was, now = old[name].get("metrics", {}), new[name].get("metrics", {})
        if down := [c for c in checks if was.get(c) is True and now.get(c) is False]:
            regressed[name] = down
        if up := [c for c in checks if was.get(c) is False and now.get(c) is True]:
            fixed[name] = up
    return AppMoves(
        regressed=regressed,
        fixed=fixed,
        new=sorted(new.keys() - old.keys()),
        gone=sorted(old.keys() - new.keys()),
        unrated=unrated,
        common=common,
    )


# --- the verdict ------------------------------------------------------------------------


def _apps_failing(report: Mapping[str, Any], metric: str | None) -> list[str]:
    """The apps that explain a metric's value in this report."""
    apps = report.get("apps") or []
    if metric in METRIC_CHECKS:
        checks = METRIC_CHECKS[metric]
        return [
            a["app_name"]
            for a in apps
            if _evaluated(a) and any(a["metrics"].get(c) is False for c in checks)
        ]
    status = {"infra_errors": "infra_error", "not_run": "not_run"}.get(metric or "")
    return [a["app_name"] for a in apps if status and a.get("status") == status]


def _apps_moved(
    moves: AppMoves | None, metric: str | None, report: Mapping[str, Any], baseline: Baseline
) -> list[str]:
    """The apps that made a metric worse versus the baseline."""
    if moves is None:
        return []
    if metric in METRIC_CHECKS:
        checks = set(METRIC_CHECKS[metric])
        return [name for name, down in moves.regressed.items() if checks & set(down)]
    status = {"infra_errors": "infra_error", "not_run": "not_run"}.get(metric or "")
    if status and baseline.apps is not None:
        before = {a["app_name"] for a in baseline.apps if a.get("status") == status}
        return [n for n in _apps_failing(report, metric) if n not in before]
    return []


def _measured(summary: Mapping[str, Any], metric: str) -> float | None:
    value = summary.get(metric)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _entry(rule: Rule, **values: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "rule": rule.describe(),
        "kind": rule.kind,
        "metric": rule.metric,
        "op": "<=" if rule.kind in (FAIL_OVER, MAX_DROP, MAX_NEW_FAILURES) else ">=",
        "limit": None,
        "measured": None,
        "current": None,
        "baseline": None,
        "passed": False,
        "note": None,
        "apps": [],
    }
    entry.update(values)
    return entry


def _limit(rule: Rule) -> float | None:
    """The limit of a rule that could not be measured (a relative drop has none yet)."""
    return None if rule.relative else rule.value


def _check_known(rule: Rule, summary: Mapping[str, Any], config: GateConfig) -> None:
    """A custom metric that this evaluation never recorded is a typo, not a failure."""
    metric = rule.metric
    if metric is None or metric in summary or metric in METRIC_DIRECTIONS:
        return
    if metric in config.lower_is_better or metric in config.higher_is_better:
        return
    raise GateError(
        f"{OPTIONS[rule.kind]} {metric}: this evaluation has no metric {metric!r}"
        " (no app recorded it); check its name"
    )


def evaluate_gate(
    config: GateConfig, report: Mapping[str, Any], baseline: Baseline | None = None
) -> dict[str, Any]:
    """The gate's verdict on a finished report: plain JSON for the report's ``gate`` key.

    Raises ``GateError`` for a rule on a metric this evaluation does not have at all.
    """
    summary = report["summary"]
    has_baseline = baseline is not None and not baseline.missing
    moves = (
        app_moves(baseline.apps, report["apps"])
        if baseline is not None and has_baseline and baseline.apps is not None
        else None
    )
    rules: list[dict[str, Any]] = []
    for rule in config.rules:
        _check_known(rule, summary, config)
        if rule.kind in BASELINE_KINDS and not has_baseline:
            if baseline is not None:  # --klaud-baseline-update on a file that is not there yet
                note, ok = "not checked: no baseline yet (this run becomes it)", None
            else:
                note, ok = "n/a: no baseline", False
            rules.append(_entry(rule, limit=_limit(rule), passed=ok, note=note))
            continue
        assert rule.kind not in BASELINE_KINDS or baseline is not None
        if rule.kind in (FAIL_UNDER, FAIL_OVER):
            assert rule.metric is not None
            value = _measured(summary, rule.metric)
            ok = value is not None and (
                value >= rule.value - EPSILON
                if rule.kind == FAIL_UNDER
                else value <= rule.value + EPSILON
            )
            rules.append(
                _entry(
                    rule,
                    limit=rule.value,
                    measured=value,
                    current=value,
                    passed=ok,
                    note=None if value is not None else "n/a: not measured in this evaluation",
                    apps=[] if ok else _apps_failing(report, rule.metric),
                )
            )
        elif rule.kind == MAX_DROP:
            assert rule.metric is not None and baseline is not None
            rules.append(_max_drop(rule, summary, baseline, moves, report))
        elif rule.kind == MAX_NEW_FAILURES:
            if moves is None:
                rules.append(
                    _entry(rule, limit=rule.value, note="n/a: the baseline has no per-app report")
                )
                continue
            count = len(moves.regressed)
            rules.append(
                _entry(
                    rule,
                    limit=rule.value,
                    measured=float(count),
                    passed=count <= rule.value,
                    apps=[f"{n} ({', '.join(c)})" for n, c in moves.regressed.items()],
                )
            )
    if has_baseline and config.needs_baseline:
        rules.append(_overlap(report, moves))
    verdict = FAILED if any(r["passed"] is False for r in rules) else PASSED
    return {
        "verdict": verdict,
        "informational": config.informational,
        "rules": rules,
        "baseline": baseline.to_dict() if baseline is not None else None,
        "moved_apps": moves.to_dict() if moves is not None else None,
    }


def _max_drop(
    rule: Rule,
    summary: Mapping[str, Any],
    baseline: Baseline,
    moves: AppMoves | None,
    report: Mapping[str, Any],
) -> dict[str, Any]:
    assert rule.metric is not None
    now, before = _measured(summary, rule.metric), _measured(baseline.summary, rule.metric)
    if now is None or before is None:
        where = "this evaluation" if now is None else "the baseline"
        return _entry(
            rule,
            limit=_limit(rule),
            current=now,
            baseline=before,
            note=f"n/a: not measured in {where}",
        )
    allowed = rule.value / 100 * abs(before) if rule.relative else rule.value
    worse = (before - now) if rule.higher_is_better else (now - before)
    ok = worse <= allowed + EPSILON
    return _entry(
        rule,
        limit=allowed,
        measured=worse,
        current=now,
        baseline=before,
        passed=ok,
        apps=[] if ok else _apps_moved(moves, rule.metric, report, baseline),
    )


def _overlap(report: Mapping[str, Any], moves: AppMoves | None) -> dict[str, Any]:
    rule = Rule(BASELINE_OVERLAP, None, MIN_COMMON_FRACTION, f"{MIN_COMMON_FRACTION:.0%}")
    evaluated = sum(1 for a in report["apps"] if _evaluated(a))
    if moves is None:
        return _entry(rule, limit=rule.value, note="n/a: the baseline has no per-app report")
    if not evaluated:
        return _entry(rule, limit=rule.value, note="n/a: no app was evaluated")
    share = moves.common / evaluated
    ok = moves.common > 0 and share >= MIN_COMMON_FRACTION
    note = f"{moves.common} of {evaluated} evaluated apps are in the baseline"
    return _entry(rule, limit=rule.value, measured=share, passed=ok, note=note)


def gate_error(message: str) -> dict[str, Any]:
    """The ``gate`` key of a report whose gate could not be checked."""
    return {"verdict": ERROR, "error": message, "rules": [], "baseline": None, "moved_apps": None}
