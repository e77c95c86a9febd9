"""``--klaud-metrics a,b,c``: the metrics ``--klaud-compare`` shows.

The default keeps the comparison to what a person reads (the check rates, the quality
score, how many apps counted, and cost); ``all`` shows every metric the runs have.
"""

from __future__ import annotations

import difflib

import pytest

from pytest_klaudbiusz.options import OptionReader
from pytest_klaudbiusz.results.metrics import CUSTOM_METRIC, DISPLAY_ORDER, METRIC_DIRECTIONS, RATES

ALL = "all"
DEFAULT = (
    *RATES.values(),
    "overall_quality_score",
    "evaluated",
    "infra_errors",
    "avg_cost_per_app_usd",
    "cost_per_passing_app_usd",
)


def add_options(parser: pytest.Parser) -> None:
    help = (
        "metrics --klaud-compare shows, comma-separated, or all (default: the check rates,"
        " overall_quality_score, evaluated, infra_errors and the cost per app)"
    )
    parser.getgroup("klaudbiusz").addoption(
        "--klaud-metrics", dest="klaud_metrics", metavar="A,B,C", help=help
    )
    parser.addini("klaud_metrics", help, default=",".join(DEFAULT))


def parse(text: str) -> tuple[str, ...] | None:
    """The metric names (None: all); ``ValueError`` for a name no run can have."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if names == (ALL,):
        return None
    known = {*DISPLAY_ORDER, *METRIC_DIRECTIONS}
    for name in names:
        if name not in known and not CUSTOM_METRIC.fullmatch(name):
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"--klaud-metrics: unknown metric {name!r}{hint}")
    if not names:
        raise ValueError("--klaud-metrics: name at least one metric, or all")
    return names


def selected(config: pytest.Config) -> tuple[str, ...] | None:
    try:
        return parse(OptionReader(config).value("klaud_metrics"))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
