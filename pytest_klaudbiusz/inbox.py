"""The controller's side of an evaluation: every app's result, keyed by test id.

Results arrive with test reports (from this process or from xdist workers). An
app whose worker died, or that never ran, is still accounted for, so
``total_apps`` always equals the apps collected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_klaudbiusz.results.model import AppResult, AppStatus
from pytest_klaudbiusz.results.text import visible


def escaped_id(name: str) -> str:
    """The test id pytest shows for a parametrize id (non-ASCII is escaped)."""
    return name.encode("unicode_escape").decode("ascii")


class EvaluationSession:
    def __init__(self) -> None:
        self._expected: dict[str, Path] = {}  # nodeid -> app folder
        self._results: dict[str, AppResult] = {}  # app name -> result

    @property
    def active(self) -> bool:
        """Whether this pytest run evaluates any app."""
        return bool(self._expected or self._results)

    def expect(self, nodeid: str, app_dir: Path) -> None:
        self._expected[nodeid] = app_dir

    def expect_ids(self, nodeids: list[str], apps: list[Path]) -> None:
        """Match collected test ids to apps by their ``[id]`` suffix (xdist's controller)."""
        by_id = {escaped_id(app.name): app for app in apps}
        for nodeid in nodeids:
            if nodeid.endswith("]") and "[" in nodeid:
                app = by_id.get(nodeid[nodeid.rindex("[") + 1 : -1])
                if app is not None:
                    self.expect(nodeid, app)

    def add(self, payload: dict[str, Any]) -> None:
        result = AppResult.from_dict(payload)
        previous = self._results.get(result.app_name)
        if previous is not None:  # another test of the same app: keep what it recorded
            result.custom_metrics = {**previous.custom_metrics, **result.custom_metrics}
        self._results[result.app_name] = result

    def add_crash(self, nodeid: str, message: str) -> bool:
        """A test of an app ended with no result: its worker died or the harness failed.
        Returns whether ``nodeid`` is an app's test (its app is an infrastructure error)."""
        app_dir = self._expected.get(nodeid)
        if app_dir is None:
            return False
        name = visible(app_dir.name, one_line=True)  # as the app's own results name it
        if name not in self._results:
            self._results[name] = AppResult(
                app_name=name,
                app_dir=visible(str(app_dir), one_line=True),
                status=AppStatus.INFRA_ERROR,
                error=message,
            )
        return True

    def results(self, not_run_reason: str | None = None) -> list[AppResult]:
        """Every app collected; those without a result are ``not_run`` for the reason given."""
        results = dict(self._results)
        for app_dir in self._expected.values():
            name = visible(app_dir.name, one_line=True)
            if name not in results:
                results[name] = AppResult(
                    app_name=name,
                    app_dir=visible(str(app_dir), one_line=True),
                    status=AppStatus.NOT_RUN,
                    error=not_run_reason or "collected but never run (session stopped early)",
                )
        return sorted(results.values(), key=lambda r: r.app_name)
