"""The pytest side of configuration: declaring a ``--klaud-`` option with its ini
equivalent, and reading "the option, else the ini value" (one reader for every module).

Each feature declares its own options in its module's ``add_options(parser)`` (plugin.py
calls them from ``pytest_addoption``); ``read_settings`` builds the one ``Settings``
object the session works with.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_klaudbiusz.apps.ui import ui_enabled
from pytest_klaudbiusz.settings import (
    DEFAULT_TREND_RUNS,
    Settings,
    parse_count,
    parse_mode,
    parse_rerun,
    parse_timeouts,
)

if TYPE_CHECKING:
    from pytest_klaudbiusz.tracking.store import TrackingStore

GROUP = "klaudbiusz"


def add_option(
    parser: pytest.Parser,
    flag: str,
    ini: str | None,
    help: str,
    ini_type: str = "string",
    **kw: Any,
) -> None:
    """``--klaud-x`` (dest ``klaud_x``) in the plugin's group, and the ini option ``ini``."""
    group = parser.getgroup(GROUP, "evaluate generated apps (pytest-klaudbiusz)")
    group.addoption(flag, dest=flag[2:].replace("-", "_"), help=help, **kw)
    if ini:
        parser.addini(ini, help, type=ini_type)  # type: ignore[arg-type]


UPLOAD_OUTBOX = "<outbox>"  # --klaud-upload without a report


def add_options(parser: pytest.Parser) -> None:
    """The evaluation's own options: apps, mode, reports, tracking, timeouts, outbox, reuse."""
    add_option(
        parser,
        "--klaud-apps",
        "klaud_apps",
        "folder holding one generated app per subfolder",
        metavar="DIR",
    )
    add_option(
        parser,
        "--klaud-mode",
        "klaud_mode",
        "generation mode of the apps (default: $EVAL_MODE or manual)",
        metavar="MODE",
    )
    add_option(
        parser,
        "--klaud-report-dir",
        "klaud_report_dir",
        "where the reports go (default: app-eval/)",
        metavar="DIR",
    )
    add_option(
        parser,
        "--klaud-tracking-uri",
        "klaud_tracking_uri",
        "MLflow tracking URI (default: "
        "$MLFLOW_TRACKING_URI, databricks with DATABRICKS_HOST/TOKEN, else ./mlflow.db)",
        metavar="URI",
    )
    add_option(
        parser,
        "--klaud-experiment",
        "klaud_experiment",
        "MLflow experiment (default: $MLFLOW_EXPERIMENT_NAME or /Shared/klaudbiusz-evaluations)",
        metavar="NAME",
    )
    add_option(
        parser,
        "--klaud-model-version",
        "klaud_model_version",
        "model that generated the apps (default: the apps' generation data, else unknown)",
        metavar="VERSION",
    )
    add_option(
        parser,
        "--klaud-no-tracking",
        None,
        "evaluate and report without MLflow",
        action="store_true",
    )
    parser.addini(
        "klaud_tracking", "log each evaluation to MLflow (default true)", type="bool", default=True
    )
    add_option(
        parser,
        "--klaud-timeout",
        "klaud_timeouts",
        "per-stage timeout, STAGE=SECONDS (install, build, typecheck, test, request, ui);"
        " repeatable",
        ini_type="linelist",
        action="append",
        default=[],
        metavar="STAGE=SECONDS",
    )
    add_option(
        parser,
        "--klaud-env-passthrough",
        "klaud_env_passthrough",
        "environment variable (name or glob) passed to every app; repeatable",
        ini_type="linelist",
        action="append",
        default=[],
        metavar="NAME",
    )
    add_option(
        parser,
        "--klaud-upload",
        None,
        "log a saved evaluation_report.json to MLflow and exit; without REPORT, send the"
        " evaluations waiting in the outbox",
        metavar="REPORT",
        nargs="?",
        const=UPLOAD_OUTBOX,
    )
    add_option(
        parser,
        "--klaud-outbox",
        "klaud_outbox",
        "where evaluations wait until MLflow has them (default: .klaud-outbox/ in the rootdir)",
        metavar="DIR",
    )
    add_option(
        parser,
        "--klaud-test-retries",
        "klaud_test_retries",
        "reruns of an app's failing test suite; one that then passes is flaky (default 1)",
        metavar="N",
    )
    add_option(
        parser,
        "--klaud-allow-infra-errors",
        "klaud_allow_infra_errors",
        "infrastructure errors tolerated before the session fails (default 0)",
        metavar="N",
    )
    add_option(
        parser,
        "--klaud-generation-results",
        "klaud_generation_results",
        "bulk generation results (JSON list of {app_name | app_dir, metrics}), joined to the"
        " apps by folder name; an app's own generation_metrics.json wins",
        metavar="FILE",
    )
    add_option(
        parser,
        "--klaud-cache",
        None,
        "reuse the cached result of each app whose files and check settings are unchanged",
        action="store_true",
    )
    parser.addini(
        "klaud_cache", "reuse cached results of unchanged apps (default false)", type="bool"
    )
    add_option(
        parser,
        "--klaud-cache-clear",
        None,
        "empty the result cache before the session",
        action="store_true",
    )
    add_option(
        parser,
        "--klaud-rerun",
        None,
        "infra: evaluate only the apps whose last result (the report folder's"
        " evaluation_report.json) was an infrastructure error; reuse the others' results",
        metavar="WHAT",
    )


class OptionReader:
    """The command line wins over the ini file; paths are relative to where each was
    written (the current folder for options, the ini file's folder for ini values)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def value(self, name: str, ini: str | None = None) -> Any:
        option = self.config.getoption(name)
        return option if option not in (None, [], False) else self.config.getini(ini or name)

    def flag(self, name: str, ini: str | None = None) -> bool:
        return bool(self.config.getoption(name)) or bool(self.config.getini(ini or name))

    def lines(self, name: str, ini: str | None = None) -> tuple[list[str], list[str]]:
        """(the ini file's items, the command line's items) of a repeatable option."""
        return list(self.config.getini(ini or name)), list(self.config.getoption(name) or [])

    def items(self, name: str, ini: str | None = None) -> list[str]:
        """A repeatable option's items: the ini file's, then the command line's."""
        from_ini, from_options = self.lines(name, ini)
        return [*from_ini, *from_options]

    def path(self, name: str, ini: str | None = None) -> Path | None:
        option = self.config.getoption(name)
        if option:
            return Path(self.config.invocation_params.dir, option).resolve()
        value = self.config.getini(ini or name)
        return self.ini_path(str(value)) if value else None

    def ini_path(self, value: str) -> Path:
        """An ini value's path, relative to the ini file's folder (else the home folder)."""
        base = self.config.inipath.parent if self.config.inipath else self.home
        return (base / value).resolve()

    def count(self, name: str, default: int, minimum: int = 0, unset: object = None) -> int:
        """A whole number from the option (``unset``: its value when not given) or ini."""
        raw = self.config.getoption(name)
        if raw in (None, unset):
            raw = self.config.getini(name) or default
        return parse_count(raw, "--" + name.replace("_", "-"), minimum)

    @property
    def home(self) -> Path:
        """Where a session keeps its data by default (``mlflow.db``, ``mlruns/``, the
        outbox): ``--rootdir`` if given, else the ini file's folder, else the current
        folder. Never a folder pytest guessed from the arguments: ``--klaud-apps X``
        and ``--klaud-apps=X`` keep them in the same place."""
        config = self.config
        if config.getoption("rootdir", None):
            return config.rootpath
        if config.inipath:
            return config.inipath.parent
        return Path(config.invocation_params.dir).resolve()


def read_settings(config: pytest.Config) -> Settings:
    """The session's settings; ``SettingsError`` with a one-line message (the caller
    makes it a usage error)."""
    read = OptionReader(config)
    return Settings(
        mode=parse_mode(config.getoption("klaud_mode"), os.environ, config.getini("klaud_mode")),
        apps_dir=read.path("klaud_apps"),
        report_dir=read.path("klaud_report_dir") or Path(config.invocation_params.dir, "app-eval"),
        tracking=not config.getoption("klaud_no_tracking")
        and bool(config.getini("klaud_tracking")),
        tracking_uri=read.value("klaud_tracking_uri") or None,
        experiment=read.value("klaud_experiment") or None,
        model_version=read.value("klaud_model_version") or "unknown",
        timeouts=parse_timeouts(read.items("klaud_timeout", "klaud_timeouts")),
        env_passthrough=tuple(read.items("klaud_env_passthrough")),
        home=read.home,
        outbox_dir=read.path("klaud_outbox") or read.home / ".klaud-outbox",
        allow_infra_errors=parse_count(
            read.value("klaud_allow_infra_errors") or 0, "--klaud-allow-infra-errors"
        ),
        cache=read.flag("klaud_cache"),
        rerun=parse_rerun(config.getoption("klaud_rerun")),
        generation_results=read.path("klaud_generation_results"),
        summary_md=read.path("klaud_summary_md"),
        trend_runs=read.count("klaud_trend_runs", DEFAULT_TREND_RUNS),
        ui=ui_enabled(config),
        test_retries=read.count("klaud_test_retries", 1),
    )


def checked_store(settings: Settings) -> TrackingStore:
    """The tracking store of the settings, checked before anything runs (a store that
    cannot work is a usage error, in seconds)."""
    from pytest_klaudbiusz.tracking.runs import TrackingError
    from pytest_klaudbiusz.tracking.store import tracking_store

    try:
        return tracking_store(settings.tracking_uri, settings.experiment, settings.home)
    except TrackingError as exc:
        raise pytest.UsageError(str(exc)) from None
