"""The evaluation's settings, validated once from options, ini values and environment.

Every problem is a ``SettingsError`` whose message is one line saying what to
fix; the plugin turns it into a pytest usage error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_klaudbiusz.apps.plan import discover_apps
from pytest_klaudbiusz.results.model import DEFAULT_TIMEOUTS

_MODE = re.compile(r"[A-Za-z0-9_.-]+")
#: Longer timeouts (or inf) overflow socket and process waits; a day is plenty.
MAX_TIMEOUT = 86400.0
#: What ``--klaud-rerun`` can rerun: ``infra``, the apps the last report has no verdict for.
RERUN_CHOICES = ("infra",)


DEFAULT_TREND_RUNS = 20

NO_APPS_DIR = "no apps folder: pass --klaud-apps DIR or set klaud_apps in the ini"


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    mode: str = "manual"
    apps_dir: Path | None = None
    report_dir: Path = Path("app-eval")
    tracking: bool = True
    tracking_uri: str | None = None  # None: resolved from the environment when tracking
    experiment: str | None = None
    model_version: str = "unknown"
    timeouts: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS))
    env_passthrough: tuple[str, ...] = ()
    home: Path = Path(".")  # default place of mlflow.db, mlruns/ and the outbox
    outbox_dir: Path = Path(".klaud-outbox")
    allow_infra_errors: int = 0
    cache: bool = False  # reuse cached results of unchanged apps
    rerun: str | None = None  # one of RERUN_CHOICES: reuse the last report's other results
    generation_results: Path | None = None  # bulk generation results file
    summary_md: Path | None = None  # where the Markdown summary of a gate or baseline goes
    trend_runs: int = DEFAULT_TREND_RUNS  # runs in the trend chart; 0: no chart
    ui: bool = True  # open each app's page in a headless browser
    test_retries: int = 1  # reruns of a failing test suite (one that then passes is flaky)


def parse_mode(option: str | None, environ: Mapping[str, str], ini: str | None = None) -> str:
    """``--klaud-mode``, else ``EVAL_MODE``, else the ini's ``klaud_mode``, else ``manual``."""
    mode = option or environ.get("EVAL_MODE") or ini or "manual"
    if not _MODE.fullmatch(mode):
        raise SettingsError(
            f"invalid mode {mode!r}: use letters, digits, '_', '-' and '.' (e.g. --klaud-mode=mcp)"
        )
    return mode


def parse_count(raw: object, flag: str, minimum: int = 0) -> int:
    """A whole number of at least ``minimum`` given as option or ini text."""
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise SettingsError(f"{flag} {raw!r}: use a whole number") from None
    if value < minimum:
        raise SettingsError(f"{flag} {raw!r}: use a whole number from {minimum}")
    return value


def parse_timeouts(items: Sequence[str]) -> dict[str, float]:
    """``STAGE=SECONDS`` items over the defaults."""
    timeouts = dict(DEFAULT_TIMEOUTS)
    for item in items:
        stage, sep, value = item.partition("=")
        stage = stage.strip()
        if not sep or stage not in DEFAULT_TIMEOUTS:
            raise SettingsError(
                f"invalid timeout {item!r}: use STAGE=SECONDS with STAGE one of "
                f"{', '.join(DEFAULT_TIMEOUTS)}"
            )
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not 0 < seconds <= MAX_TIMEOUT:  # also rejects nan and inf
            raise SettingsError(
                f"invalid timeout {item!r}: SECONDS must be a positive number up to {MAX_TIMEOUT:g}"
            )
        timeouts[stage] = seconds
    return timeouts


def parse_rerun(value: str | None) -> str | None:
    if value is not None and value not in RERUN_CHOICES:
        raise SettingsError(
            f"invalid --klaud-rerun {value!r}: use {' or '.join(RERUN_CHOICES)} "
            "(rerun the apps whose last result was an infrastructure error)"
        )
    return value


def check_apps_dir(apps_dir: Path) -> None:
    """The apps folder exists and holds at least one app."""
    if not apps_dir.is_dir():
        what = "is not a folder" if apps_dir.exists() else "does not exist"
        raise SettingsError(
            f"apps folder {apps_dir} {what}: pass --klaud-apps DIR or set klaud_apps in the ini"
        )
    if not discover_apps(apps_dir):
        raise SettingsError(
            f"apps folder {apps_dir} holds no apps: each app must be a direct subfolder"
        )


def check_report_dir(report_dir: Path) -> None:
    """The report folder is a writable folder, or can be created (checked before any app runs)."""
    existing = report_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing != report_dir and existing.is_dir():
        what = "cannot be created" if not os.access(existing, os.W_OK | os.X_OK) else None
    elif not existing.is_dir():
        what = (
            "is not a folder"
            if existing == report_dir
            else f"cannot be created ({existing} is a file)"
        )
    else:
        what = "is not writable" if not os.access(existing, os.W_OK | os.X_OK) else None
    if what:
        raise SettingsError(f"report folder {report_dir} {what}: pass --klaud-report-dir DIR")
