"""The pytest side of the apps' running order (the logic is in ``scheduling``).

* The controller reads the previous report once and hands the durations to the xdist
  workers in their ``workerinput``: every worker orders the same collection the same
  way, whatever happens to the report file meanwhile (xdist requires identical
  collections).
* The items are reordered in a hook wrapper, after every other plugin has chosen and
  ordered them (``-k``, ``-m``, pytest-split's group, pytest-randomly): pytest-split
  splits the collected order, the same in every CI job whatever report each job has.
* With ``-n`` and xdist's default ``--dist load``, ``LongestFirstScheduling`` deals the
  items (see ``xdist_scheduler``); other ``--dist`` modes are left alone.
* A previous report that cannot be read is a warning, never a failure: it is a hint.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_klaudbiusz.options import OptionReader, add_option
from pytest_klaudbiusz.results.report import REPORT_FILE
from pytest_klaudbiusz.scale.scheduling import (
    COLLECTED,
    LONGEST_FIRST,
    OrderError,
    load_durations,
    longest_first,
    parse_order,
)
from pytest_klaudbiusz.settings import Settings

DURATIONS_INPUT = "klaud_durations"  # the workerinput key


def add_options(parser: pytest.Parser) -> None:
    """``--klaud-order`` and its ini equivalent."""
    add_option(
        parser,
        "--klaud-order",
        "klaud_order",
        f"order the apps run in: {LONGEST_FIRST} (default: by their durations in the"
        f" previous report, apps without one first) or {COLLECTED}",
        metavar="ORDER",
    )


def _app_name(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    app_dir = callspec.params.get("klaud_app") if callspec is not None else None
    return app_dir.name if isinstance(app_dir, Path) else None


class AppOrder:
    """Puts the apps' cases in their running order; ``durations`` is ``None`` when they
    stay in collected order."""

    def __init__(
        self,
        durations: dict[str, float] | None,
        header: str | None = None,
        problem: str | None = None,
    ) -> None:
        self.durations, self.header, self.problem = durations, header, problem

    @classmethod
    def on_controller(cls, order: str, report: Path) -> AppOrder:
        if order == COLLECTED:
            return cls(None, "apps run in collected order (--klaud-order)")
        try:
            durations = load_durations(report)
        except ValueError as exc:
            problem = f"previous report unusable, apps run in collected order: {exc}"
            return cls(None, problem, problem)
        if durations is None:
            return cls(None, f"apps run in collected order (no previous report {report})")
        return cls(durations, f"apps run longest first (durations from {report})")

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if self.durations is not None:
            node.workerinput[DURATIONS_INPUT] = self.durations

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if self.durations is None or config.getvalue("dist") != "load":
            return None
        from pytest_klaudbiusz.scale.xdist_scheduler import LongestFirstScheduling

        return LongestFirstScheduling(config, log)

    @pytest.hookimpl(wrapper=True)
    def pytest_collection_modifyitems(
        self, items: list[pytest.Item]
    ) -> Generator[None, None, None]:
        yield
        if self.durations is not None:
            items[:] = longest_first(items, _app_name, self.durations)

    def pytest_report_header(self) -> str | None:
        return f"klaudbiusz: {self.header}" if self.header else None

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.problem:
            terminalreporter.write_line(f"WARNING: {self.problem}", yellow=True)


def register(config: pytest.Config, settings: Settings) -> None:
    """Order the apps of this session (on the controller, or on an xdist worker)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        order = AppOrder(workerinput.get(DURATIONS_INPUT))
    else:
        try:
            chosen = parse_order(OptionReader(config).value("klaud_order"))
        except OrderError as exc:
            raise pytest.UsageError(str(exc)) from None
        if settings.apps_dir is None:
            return
        order = AppOrder.on_controller(chosen, settings.report_dir / REPORT_FILE)
    config.pluginmanager.register(order, "klaud-order")
