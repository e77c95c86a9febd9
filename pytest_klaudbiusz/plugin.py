"""pytest hooks of pytest-klaudbiusz; the work happens in the modules they call.

Workers (and a serial run) evaluate apps in the ``klaud_app`` fixture and attach
each result to its test report; the controller gathers them, writes the reports
and logs one MLflow run. mlflow is imported only when a run is tracked.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_klaudbiusz import database_server, options, sandboxing
from pytest_klaudbiusz.apps import ui
from pytest_klaudbiusz.apps.plan import discover_apps
from pytest_klaudbiusz.ci import ab_command, alerts, compare_metrics
from pytest_klaudbiusz.ci import options as ci_options
from pytest_klaudbiusz.controller import EvaluationController
from pytest_klaudbiusz.dashboard import launch as dashboard
from pytest_klaudbiusz.klaud_app import KlaudApp
from pytest_klaudbiusz.options import OptionReader, read_settings
from pytest_klaudbiusz.results.model import AppStatus
from pytest_klaudbiusz.scale import ordering, sharding
from pytest_klaudbiusz.settings import (
    NO_APPS_DIR,
    Settings,
    SettingsError,
    check_apps_dir,
    check_report_dir,
)
from pytest_klaudbiusz.tracking import registry, traces

if TYPE_CHECKING:
    from pytest_klaudbiusz.results.model import AppResult
    from pytest_klaudbiusz.scale.reuse import ResultReuse

SETTINGS_KEY = pytest.StashKey[Settings]()
EVALUATED_KEY = pytest.StashKey[dict[Path, KlaudApp]]()
APP_KEY = pytest.StashKey[KlaudApp]()
REUSE_KEY = pytest.StashKey["ResultReuse | None"]()
NO_APPS_DIR_KEY = pytest.StashKey[str]()
APPS_FOLDERS_KEY = pytest.StashKey[tuple[Path, ...]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)  # apps, mode, reports, tracking, timeouts, outbox, reuse
    sharding.add_options(parser)  # --klaud-shard, --klaud-parent-run, --klaud-merge
    ci_options.add_options(parser)  # gates, baseline, --klaud-compare, summaries, trend
    ordering.add_options(parser)  # --klaud-order: longest apps first
    ui.add_options(parser)  # --klaud-no-ui: no headless browser
    sandboxing.add_options(parser)  # --klaud-sandbox, --klaud-limit
    alerts.add_options(parser)  # --klaud-alert, --klaud-alert-on
    compare_metrics.add_options(parser)  # --klaud-metrics (what --klaud-compare shows)
    ab_command.add_options(parser)  # --klaud-ab A B
    dashboard.add_options(parser)  # --klaud-dashboard [PORT]
    database_server.add_options(parser)  # --klaud-postgres: where apps get their databases
    traces.add_options(parser)  # --klaud-no-traces
    registry.add_options(parser)  # --klaud-register, --klaud-generation-config


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_klaudbiusz import hooks

    pluginmanager.add_hookspecs(hooks)


def _load_dotenv(config: pytest.Config) -> None:
    """``.env`` beside the ini file (and in the current folder); the environment wins."""
    files = {config.rootpath / ".env", config.invocation_params.dir / ".env"}
    existing = [f for f in files if f.is_file()]
    if existing:
        from dotenv import load_dotenv

        for env_file in existing:
            load_dotenv(env_file, override=False)


# The modules that evaluate apps and render reports are imported where they are used:
# a pytest run that does not evaluate apps must not pay for them (benchmarks/startup.py).


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if ci_options.wants_compare(config):  # --klaud-compare runs no apps
        _load_dotenv(config)
        from pytest_klaudbiusz.ci.compare_command import compare_main

        return compare_main(config)
    if dashboard.wants_dashboard(config):  # --klaud-dashboard runs no apps
        _load_dotenv(config)
        return dashboard.dashboard_main(config)
    if ab_command.wants_ab(config):  # --klaud-ab runs no apps
        _load_dotenv(config)
        return ab_command.ab_main(config)
    if config.getoption("klaud_merge") or config.getoption("klaud_open_run"):
        return _sharding_main(config)
    if config.getoption("klaud_upload"):
        _load_dotenv(config)
        from pytest_klaudbiusz.upload_command import upload_main

        return upload_main(config)
    return None


def _sharding_main(config: pytest.Config) -> int:
    """``--klaud-merge`` / ``--klaud-open-run``: run no apps (see sharding.py)."""
    _load_dotenv(config)
    try:
        settings = read_settings(config)
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None
    if config.getoption("klaud_merge"):
        return sharding.merge_main(config, settings)
    return sharding.open_run_main(config, settings)


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("klaud_upload"):
        return
    _load_dotenv(config)
    try:
        settings = read_settings(config)
        if settings.apps_dir is not None:
            check_apps_dir(settings.apps_dir)
        if not hasattr(config, "workerinput"):  # only the controller writes reports
            check_report_dir(settings.report_dir)
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SETTINGS_KEY] = settings
    config.stash[APPS_FOLDERS_KEY] = _apps_folders(config, settings)
    config.stash[EVALUATED_KEY] = {}
    config.add_cleanup(ui.close_browser)  # the browser of this process, if it started one
    if settings.apps_dir is not None:
        sandboxing.configure(config)  # probes bubblewrap; a UsageError if it is refused
        _stop_on_sigterm(config)
    config.stash[REUSE_KEY] = _result_reuse(config, settings)
    ordering.register(config, settings)  # reorders the collected apps, deals them to workers
    database_server.register(config, settings)  # the PostgreSQL of apps that use one
    if not hasattr(config, "workerinput"):
        controller = EvaluationController(config, settings)
        controller.load_generation_results()
        config.pluginmanager.register(controller, "klaud-controller")
        config.pluginmanager.register(controller.quality, "klaud-quality")


def _stop_on_sigterm(config: pytest.Config) -> None:
    """SIGTERM (a cancelled CI job) stops the session as Ctrl-C does: the running apps'
    processes are killed and the partial evaluation is reported, instead of dying mid-app."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, interrupt)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    config.add_cleanup(restore)


def _apps_folders(config: pytest.Config, settings: Settings) -> tuple[Path, ...]:
    """The apps folder evaluated, and the ini file's one when an option chose another."""
    ini = config.getini("klaud_apps")
    configured = OptionReader(config).ini_path(str(ini)) if ini else None
    return tuple(p for p in {settings.apps_dir, configured} if p is not None)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The apps are data, not tests: never collect the test files inside them (nor in
    the ini file's apps folder when ``--klaud-apps`` evaluates another)."""
    folders = config.stash.get(APPS_FOLDERS_KEY, ())  # resolved: compare resolved paths too
    if any(
        collection_path.is_relative_to(folder) or collection_path.resolve().is_relative_to(folder)
        for folder in folders
    ):
        return True
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "klaud_app" not in metafunc.fixturenames:
        return
    settings = metafunc.config.stash[SETTINGS_KEY]
    if settings.apps_dir is None:
        # Raised here, a UsageError would be a collection error with a traceback.
        if hasattr(metafunc.config, "workerinput"):
            # a worker cannot end the session: a collection error without traceback,
            # which the controller turns into exit status 4
            pytest.fail(NO_APPS_DIR, pytrace=False)
        metafunc.config.stash[NO_APPS_DIR_KEY] = NO_APPS_DIR  # pytest_collection_finish
        apps = []
    else:
        apps = discover_apps(settings.apps_dir)
    metafunc.parametrize("klaud_app", apps, ids=[a.name for a in apps], indirect=True)


class _DefaultCase(pytest.Module):
    """``default_case.py``, collected as if it were a test file of the rootdir."""

    def _getobj(self) -> Any:
        from pytest_klaudbiusz import default_case

        return default_case


@pytest.hookimpl(tryfirst=True)  # before -k deselects
def pytest_collection_modifyitems(session: pytest.Session, items: list[pytest.Item]) -> None:
    """With an apps folder and nothing collected (no test file here), the apps are
    evaluated by the plugin's own case; ``-k`` matches an app's folder name as written,
    not only its escaped test id."""
    settings = session.config.stash.get(SETTINGS_KEY, None)
    if not items and not session.testsfailed and settings and settings.apps_dir is not None:
        default = _DefaultCase.from_parent(session, path=session.config.rootpath / "klaudbiusz")
        items.extend(item for item in session.genitems(default) if isinstance(item, pytest.Item))
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and isinstance(callspec.params.get("klaud_app"), Path):
            item.extra_keyword_matches.add(callspec.params["klaud_app"].name)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    problem = session.config.stash.get(NO_APPS_DIR_KEY, None)
    if problem:
        raise pytest.UsageError(problem)


# --- reuse of earlier results: --klaud-cache, --klaud-cache-clear, --klaud-rerun -----


def _result_reuse(config: pytest.Config, settings: Settings) -> ResultReuse | None:
    """Where this process finds earlier results; the cache is cleared by the controller."""
    clear = config.getoption("klaud_cache_clear")
    if not (settings.cache or clear or settings.rerun):
        return None  # reuse.py (and what it imports) is not loaded
    from pytest_klaudbiusz.results.report import FILE_NAMES
    from pytest_klaudbiusz.scale.reuse import ResultCache, ResultReuse, last_verdicts

    cache = None
    if settings.cache or clear:
        pytest_cache = getattr(config, "cache", None)
        if pytest_cache is None:
            flag = "--klaud-cache" if settings.cache else "--klaud-cache-clear"
            raise pytest.UsageError(f"{flag} needs pytest's cache: drop -p no:cacheprovider")
        cache = ResultCache(pytest_cache.mkdir("klaudbiusz"))
        if clear and not hasattr(config, "workerinput"):
            cache.clear()
    verdicts, last_report = None, None
    if settings.rerun:
        last_report = settings.report_dir / FILE_NAMES["json"]
        try:
            verdicts = last_verdicts(last_report)
        except ValueError as exc:
            raise pytest.UsageError(f"--klaud-rerun={settings.rerun}: {exc}") from None
    return ResultReuse(cache if settings.cache else None, verdicts, last_report)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    lines = sandboxing.header(config)
    reuse = config.stash.get(REUSE_KEY, None)
    apps_dir = config.stash[SETTINGS_KEY].apps_dir if SETTINGS_KEY in config.stash else None
    if reuse is not None and reuse.verdicts is not None and apps_dir is not None:
        lines.append(reuse.rerun_summary(app.name for app in discover_apps(apps_dir)))
    return lines or None


def _evaluate(app_dir: Path, config: pytest.Config) -> KlaudApp:
    from pytest_klaudbiusz.apps.evaluation import (
        EvalOptions,
        InfraError,
        evaluate_app,
        infra_result,
    )
    from pytest_klaudbiusz.results.text import inert_result

    settings, reuse = config.stash[SETTINGS_KEY], config.stash[REUSE_KEY]
    postgres = database_server.session_postgres(config)
    options = EvalOptions(
        os.environ,
        settings.timeouts,
        settings.env_passthrough,
        sandboxing.isolation(config),
        ui=settings.ui,
        postgres=postgres.server,
        no_postgres=postgres.problem,
        test_retries=settings.test_retries,
    )

    def run(app_dir: Path) -> AppResult:
        try:
            return evaluate_app(app_dir, options)
        except InfraError as exc:
            return infra_result(app_dir, str(exc))
        except Exception as exc:  # a harness bug must not drop the app
            return infra_result(app_dir, f"harness error: {type(exc).__name__}: {exc}")

    result = run(app_dir) if reuse is None else reuse.result(app_dir, options, run)
    return KlaudApp(inert_result(result))  # the one door app text passes: see results/text.py


@pytest.fixture
def klaud_app(request: pytest.FixtureRequest) -> KlaudApp:
    """The evaluated app of this test case (evaluated once per process)."""
    app_dir: Path = request.param
    evaluated = request.config.stash[EVALUATED_KEY]
    if app_dir not in evaluated:
        evaluated[app_dir] = _evaluate(app_dir, request.config)
    app = evaluated[app_dir]
    request.node.stash[APP_KEY] = app
    if app.result.status is AppStatus.INFRA_ERROR:
        pytest.fail(
            f"infrastructure error (not the app's fault): {app.result.error}", pytrace=False
        )
    return app


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    app = item.stash.get(APP_KEY, None)
    if app is not None and (call.when == "call" or (call.when == "setup" and report.failed)):
        report.klaud_result = app.result.to_dict()  # type: ignore[attr-defined]
    return report
