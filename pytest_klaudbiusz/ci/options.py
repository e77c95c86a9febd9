"""The ``--klaud-`` options of quality gates, baselines, ``--klaud-compare``, Markdown
summaries and the trend chart (each with its ini equivalent), and the gate they configure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from pytest_klaudbiusz.options import OptionReader, add_option
from pytest_klaudbiusz.settings import DEFAULT_TREND_RUNS

if TYPE_CHECKING:  # imported where used: a pytest run without gates must not pay for them
    from pytest_klaudbiusz.ci import gates

DEFAULT_COMPARE_RUNS = 5

_INI_NAMES = {
    "--klaud-fail-under": "klaud_fail_under",
    "--klaud-fail-over": "klaud_fail_over",
    "--klaud-max-drop": "klaud_max_drop",
    "--klaud-max-new-failures": "klaud_max_new_failures",
    "--klaud-baseline": "klaud_baseline",
}


def add_options(parser: pytest.Parser) -> None:
    """Quality gates, the baseline, ``--klaud-compare``, Markdown summaries, the trend."""

    def add(flag: str, ini: str | None, help: str, ini_type: str = "string", **kw: Any) -> None:
        add_option(parser, flag, ini, help, ini_type, **kw)

    def rules(flag: str, ini: str, help: str) -> None:
        add(flag, ini, help, "linelist", action="append", default=[], metavar="METRIC=VALUE")

    rules(
        "--klaud-fail-under",
        "klaud_fail_under",
        "quality gate: fail when a summary metric is below VALUE"
        " (e.g. build_success_rate=0.9); repeatable",
    )
    rules(
        "--klaud-fail-over",
        "klaud_fail_over",
        "quality gate: fail when a lower-is-better metric is above VALUE"
        " (e.g. avg_cost_per_app_usd=1.5); repeatable",
    )
    rules(
        "--klaud-max-drop",
        "klaud_max_drop",
        "quality gate: fail when a metric got worse than the baseline by more than AMOUNT,"
        " absolute (0.05) or relative (5%%); repeatable",
    )
    add(
        "--klaud-max-new-failures",
        "klaud_max_new_failures",
        "quality gate: fail when more than N apps went from pass to fail on any check"
        " versus the baseline",
        metavar="N",
    )
    add(
        "--klaud-baseline",
        "klaud_baseline",
        "what the gate compares with: previous (default: the latest finished run of the"
        " mode), an MLflow run id, or the path of an evaluation_report.json",
        metavar="REF",
    )
    add(
        "--klaud-baseline-same-branch",
        None,
        "with --klaud-baseline=previous: only runs of the same git branch",
        action="store_true",
    )
    parser.addini(
        "klaud_baseline_same_branch",
        "with klaud_baseline = previous: only runs of the same git branch",
        type="bool",
        default=False,
    )
    add(
        "--klaud-baseline-update",
        None,
        "write this evaluation's report to the --klaud-baseline file (on purpose)",
        action="store_true",
    )
    add(
        "--klaud-gate-informational",
        None,
        "evaluate and print the quality gate, but never fail because of it",
        action="store_true",
    )
    parser.addini(
        "klaud_gate_informational",
        "evaluate and print the quality gate, but never fail because of it",
        type="bool",
        default=False,
    )
    for which in ("lower", "higher"):
        add(
            f"--klaud-{which}-is-better",
            f"klaud_{which}_is_better",
            f"custom metric (avg_<name>) for which {which} values are better; repeatable",
            "linelist",
            action="append",
            default=[],
            metavar="METRIC",
        )
    add(
        "--klaud-compare",
        None,
        f"compare the N most recent tracked runs (default {DEFAULT_COMPARE_RUNS}) and exit;"
        " runs no apps",
        nargs="?",
        const=-1,
        type=int,
        metavar="N",
    )
    parser.addini(
        "klaud_compare",
        f"runs that --klaud-compare shows (default {DEFAULT_COMPARE_RUNS})",
        default=str(DEFAULT_COMPARE_RUNS),
    )
    add(
        "--klaud-compare-mode",
        "klaud_compare_mode",
        "with --klaud-compare: only runs of this mode",
        metavar="MODE",
    )
    add(
        "--klaud-compare-runs",
        None,
        "compare run (or report file) B with A, app by app, and exit",
        nargs=2,
        metavar=("A", "B"),
    )
    add(
        "--klaud-summary-md",
        "klaud_summary_md",
        "write the comparison / gate verdict as Markdown to PATH (also appended to"
        " $GITHUB_STEP_SUMMARY when set)",
        metavar="PATH",
    )
    add(
        "--klaud-trend-runs",
        "klaud_trend_runs",
        f"runs in the trend chart of a tracked evaluation (default {DEFAULT_TREND_RUNS};"
        " 0: no chart)",
        metavar="N",
    )


def wants_compare(config: pytest.Config) -> bool:
    return config.getoption("klaud_compare") is not None or bool(
        config.getoption("klaud_compare_runs")
    )


# --- the gate they configure -------------------------------------------------------------


def _ini_error(message: str) -> str:
    for flag, ini in _INI_NAMES.items():
        if message.startswith(flag + " "):
            return f"{ini} (ini)" + message[len(flag) :]
    return message


#: Options that configure a gate or a baseline; without any, gates.py is never imported.
_GATE_OPTIONS = (
    "klaud_fail_under",
    "klaud_fail_over",
    "klaud_max_drop",
    "klaud_max_new_failures",
    "klaud_baseline",
    "klaud_lower_is_better",
    "klaud_higher_is_better",
)


def _gate_configured(config: pytest.Config) -> bool:
    return any(config.getoption(name) or config.getini(name) for name in _GATE_OPTIONS) or bool(
        config.getoption("klaud_baseline_update")
    )


def gate_config(config: pytest.Config) -> gates.GateConfig | None:
    """The gate of this session, validated (None when no option configures one);
    ``pytest.UsageError`` naming the problem."""
    if not _gate_configured(config):
        return None  # gates.py is not imported
    from pytest_klaudbiusz.ci import gates

    read = OptionReader(config)
    lists = {
        name: read.lines(name)
        for name in _GATE_OPTIONS
        if name not in ("klaud_max_new_failures", "klaud_baseline")
    }
    lower = [*lists["klaud_lower_is_better"][0], *lists["klaud_lower_is_better"][1]]
    higher = [*lists["klaud_higher_is_better"][0], *lists["klaud_higher_is_better"][1]]
    ini_max = config.getini("klaud_max_new_failures") or None
    ini_baseline = config.getini("klaud_baseline") or None
    try:  # the ini file's rules alone first, so that their errors name the ini option
        gates.parse_gate(
            fail_under=lists["klaud_fail_under"][0],
            fail_over=lists["klaud_fail_over"][0],
            max_drop=lists["klaud_max_drop"][0],
            max_new_failures=ini_max,
            baseline=ini_baseline,
            lower_is_better=lower,
            higher_is_better=higher,
        )
    except gates.GateError as exc:
        raise pytest.UsageError(_ini_error(str(exc))) from None
    try:
        return gates.parse_gate(
            fail_under=[*lists["klaud_fail_under"][0], *lists["klaud_fail_under"][1]],
            fail_over=[*lists["klaud_fail_over"][0], *lists["klaud_fail_over"][1]],
            max_drop=[*lists["klaud_max_drop"][0], *lists["klaud_max_drop"][1]],
            max_new_failures=config.getoption("klaud_max_new_failures") or ini_max,
            baseline=config.getoption("klaud_baseline") or ini_baseline,
            same_branch=read.flag("klaud_baseline_same_branch"),
            informational=read.flag("klaud_gate_informational"),
            update_baseline=bool(config.getoption("klaud_baseline_update")),
            lower_is_better=lower,
            higher_is_better=higher,
        )
    except gates.GateError as exc:
        raise pytest.UsageError(str(exc)) from None
