"""The data that crosses process boundaries: one app's result and its stages.

Everything here is plain JSON once converted (``to_dict``), because results travel
from xdist workers to the controller attached to test reports, and because the
JSON report is the source of truth every other output is rendered from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from pytest_klaudbiusz.results.metrics import CHECKS

SCHEMA_VERSION = 1

#: Stages in the order they run; ``data`` is the connectivity check, ``ui`` the browser's.
STAGES = ("install", "build", "typecheck", "runtime", "data", "data_returned", "ui", "test")

#: Seconds each stage may take (``request``: one HTTP request to the running app).
DEFAULT_TIMEOUTS = {
    "install": 600.0,
    "build": 300.0,
    "typecheck": 300.0,
    "schema": 120.0,
    "seed": 120.0,
    "test": 300.0,
    "request": 10.0,
    "ui": 30.0,  # opening the page in the browser, until it settled and was shot
}


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"  # could not run because an earlier stage failed
    NOT_APPLICABLE = "not_applicable"  # the app has nothing to check here


class AppStatus(StrEnum):
    EVALUATED = "evaluated"
    INFRA_ERROR = "infra_error"  # the harness or machine failed, not the app
    NOT_RUN = "not_run"  # collected but never run (-x, interrupted session)


@dataclass
class StageOutcome:
    name: str
    outcome: Outcome
    duration_sec: float = 0.0
    reason: str = ""  # stable short text when the stage did not pass
    command: str | None = None
    exit_code: int | None = None
    log_tail: str = ""
    started_at: float | None = None  # epoch seconds, when the stage ran (its trace span)

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED


@dataclass
class AppResult:
    app_name: str
    app_dir: str
    template_type: str = "unknown"
    status: AppStatus = AppStatus.EVALUATED
    stages: list[StageOutcome] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    issues: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    generation_metrics: dict[str, Any] | None = None
    error: str | None = None  # what went wrong, for infrastructure errors
    custom_metrics: dict[str, float] = field(default_factory=dict)  # recorded by the suite
    reused_from: str | None = None  # "cache" or "report": not run again, an earlier result

    def stage(self, name: str) -> StageOutcome | None:
        return next((s for s in self.stages if s.name == name), None)

    def failed_checks(self) -> list[str]:
        return [c for c in CHECKS if self.metrics.get(c) is False]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (xdist's channel refuses even ``str`` subclasses such as
        the enums); raises ``TypeError``/``ValueError`` early, on the worker, if it is not."""
        data: dict[str, Any] = json.loads(json.dumps(asdict(self), allow_nan=False))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AppResult:
        fields = dict(data)
        fields["status"] = AppStatus(fields.get("status", AppStatus.EVALUATED))
        fields["stages"] = [
            StageOutcome(**{**s, "outcome": Outcome(s["outcome"])}) for s in data.get("stages", [])
        ]
        return cls(**fields)
