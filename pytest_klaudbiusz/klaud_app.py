"""``klaud_app``: what a test in the evaluation suite gets for one app."""

from __future__ import annotations

import math
import re
from base64 import b64decode

import pytest

from pytest_klaudbiusz.results.model import AppResult, Outcome

_METRIC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,100}")


def verdict(result: AppResult) -> str | None:
    """Why the app fails (its failed checks, and the reason and log of every failed stage),
    or None."""
    failed = result.failed_checks()
    problem = result.details.get("manifest_error")
    if not failed and not problem:
        return None
    lines = [f"{result.app_name}: failed {', '.join(failed) or 'to be evaluated'}"]
    lines += [
        f"  {s.name}: {s.outcome} ({s.reason})"
        for s in result.stages
        if s.reason and s.outcome in (Outcome.FAILED, Outcome.SKIPPED)
    ]
    hint = result.details.get("port_hint")
    if hint:
        lines.append(f"  hint: {hint}")
    for stage in result.stages:
        if stage.outcome is Outcome.FAILED and stage.log_tail:
            lines += [f"--- {stage.name} log ---", stage.log_tail]
    return "\n".join(lines)


class KlaudApp:
    """One evaluated app: its result, its verdict, and a place for custom metrics."""

    def __init__(self, result: AppResult) -> None:
        self.result = result

    @property
    def name(self) -> str:
        return self.result.app_name

    @property
    def metrics(self) -> dict[str, object]:
        return self.result.metrics

    @property
    def screenshot(self) -> bytes | None:
        """The PNG of the app's page as the headless browser saw it (None: no UI checked)."""
        from pytest_klaudbiusz.results.screenshots import SCREENSHOT_DATA

        data = self.result.details.get(SCREENSHOT_DATA)
        return b64decode(data) if isinstance(data, str) else None

    def record(self, name: str, value: float) -> None:
        """Record a custom per-app metric; the summary gets ``avg_<name>``."""
        if not _METRIC_NAME.fullmatch(name):
            raise ValueError(f"metric name {name!r}: use letters, digits and '_'")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"metric {name!r}: {value!r} is not a finite number")
        self.result.custom_metrics[name] = float(value)

    def check(self) -> None:
        """Fail the test when a check failed, naming the checks and showing the log."""
        message = verdict(self.result)
        if message:
            pytest.fail(message, pytrace=False)
