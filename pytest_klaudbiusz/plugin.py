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

from pytest_klaudbiusz import database_server, sandboxing
from pytest_klaudbiusz.apps import ui
from pytest_klaudbiusz.apps.plan import discover_apps
from pytest_klaudbiusz.ci import ab_command, alerts, compare_metrics, quality
from pytest_klaudbiusz.controller import EvaluationController, ini_path
from pytest_klaudbiusz.dashboard import launch as dashboard
from pytest_klaudbiusz.klaud_app import KlaudApp
from pytest_klaudbiusz.results.model import AppStatus
from pytest_klaudbiusz.scale import ordering
from pytest_klaudbiusz.settings import (
    NO_APPS_DIR,
    Settings,
    SettingsError,
    check_apps_dir,
    check_report_dir,
    parse_count,
    parse_mode,
    parse_rerun,
    parse_timeouts,
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
UPLOAD_OUTBOX = "<outbox>"  # --klaud-upload without a report


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("klaudbiusz", "evaluate generated apps (pytest-klaudbiusz)")

    def add(flag: str, ini: str | None, help: str, ini_type: str = "string", **kw: Any) -> None:
        group.addoption(flag, dest=flag[2:].replace("-", "_"), help=help, **kw)
        if ini:
            parser.addini(ini, help, type=ini_type)  # type: ignore[arg-type]

    add(
        "--klaud-apps",
        "klaud_apps",
        "folder holding one generated app per subfolder",
        metavar="DIR",
    )
    add(
        "--klaud-mode",
        "klaud_mode",
        "generation mode of the apps (default: $EVAL_MODE or manual)",
        metavar="MODE",
    )
    add(
        "--klaud-report-dir",
        "klaud_report_dir",
        "where the reports go (default: app-eval/)",
        metavar="DIR",
    )
    add(
        "--klaud-tracking-uri",
        "klaud_tracking_uri",
        "MLflow tracking URI (default: "
        "$MLFLOW_TRACKING_URI, databricks with DATABRICKS_HOST/TOKEN, else ./mlflow.db)",
        metavar="URI",
    )
    add(
        "--klaud-experiment",
        "klaud_experiment",
        "MLflow experiment (default: $MLFLOW_EXPERIMENT_NAME or /Shared/klaudbiusz-evaluations)",
        metavar="NAME",
    )
    add(
        "--klaud-model-version",
        "klaud_model_version",
        "model that generated the apps (default: the apps' generation data, else unknown)",
        metavar="VERSION",
    )
    add("--klaud-no-tracking", None, "evaluate and report without MLflow", action="store_true")
    parser.addini(
        "klaud_tracking", "log each evaluation to MLflow (default true)", type="bool", default=True
    )
    add(
        "--klaud-timeout",
        "klaud_timeouts",
        "per-stage timeout, STAGE=SECONDS (install, build, typecheck, test, request, ui);"
        " repeatable",
        ini_type="linelist",
        action="append",
        default=[],
        metavar="STAGE=SECONDS",
    )
    add(
        "--klaud-env-passthrough",
        "klaud_env_passthrough",
        "environment variable (name or glob) passed to every app; repeatable",
        ini_type="linelist",
        action="append",
        default=[],
        metavar="NAME",
    )
    add(
        "--klaud-upload",
        None,
        "log a saved evaluation_report.json to MLflow and exit; without REPORT, send the"
        " evaluations waiting in the outbox",
        metavar="REPORT",
        nargs="?",
        const=UPLOAD_OUTBOX,
    )
    add(
        "--klaud-outbox",
        "klaud_outbox",
        "where evaluations wait until MLflow has them (default: .klaud-outbox/ in the rootdir)",
        metavar="DIR",
    )
    add(
        "--klaud-allow-infra-errors",
        "klaud_allow_infra_errors",
        "infrastructure errors tolerated before the session fails (default 0)",
        metavar="N",
    )
    add(
        "--klaud-generation-results",
        "klaud_generation_results",
        "bulk generation results (JSON list of {app_name | app_dir, metrics}), joined to the"
        " apps by folder name; an app's own generation_metrics.json wins",
        metavar="FILE",
    )
    # --- sharded evaluations (sharding.py): a CI matrix, then one merge ---
    add(
        "--klaud-shard",
        None,
        "label this run as a shard of an evaluation (default with pytest-split: GROUP/SPLITS)",
        metavar="NAME",
    )
    add(
        "--klaud-parent-run",
        None,
        "log this shard as a child of the evaluation's MLflow run RUN_ID (from"
        " --klaud-open-run; default: $KLAUD_PARENT_RUN_ID); --klaud-merge completes that run",
        metavar="RUN_ID",
    )
    add(
        "--klaud-open-run",
        None,
        "open the MLflow run of a sharded evaluation, print its id and exit",
        action="store_true",
    )
    add(
        "--klaud-merge",
        None,
        "merge the shards' evaluation_report.json files (or folders holding them) into one"
        " report and one MLflow run, and exit; runs no apps",
        nargs="+",
        metavar="REPORT",
    )
    # --- reuse of earlier results (reuse.py) ---
    add(
        "--klaud-cache",
        None,
        "reuse the cached result of each app whose files and check settings are unchanged",
        action="store_true",
    )
    parser.addini(
        "klaud_cache", "reuse cached results of unchanged apps (default false)", type="bool"
    )
    add(
        "--klaud-cache-clear",
        None,
        "empty the result cache before the session",
        action="store_true",
    )
    add(
        "--klaud-rerun",
        None,
        "infra: evaluate only the apps whose last result (the report folder's"
        " evaluation_report.json) was an infrastructure error; reuse the others' results",
        metavar="WHAT",
    )
    quality.add_options(parser)  # gates, baseline, --klaud-compare, summaries, trend
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


def _settings(config: pytest.Config) -> Settings:
    def value(name: str) -> Any:
        option = config.getoption(name)
        return option if option not in (None, []) else config.getini(name)

    def path(name: str) -> Path | None:
        option = config.getoption(name)
        if option:
            return Path(config.invocation_params.dir, option).resolve()
        ini = config.getini(name)
        return ini_path(config, ini) if ini else None

    def items(option: str, ini: str) -> list[str]:
        return [*config.getini(ini), *config.getoption(option)]

    return Settings(
        mode=parse_mode(config.getoption("klaud_mode"), os.environ, config.getini("klaud_mode")),
        apps_dir=path("klaud_apps"),
        report_dir=path("klaud_report_dir") or Path(config.invocation_params.dir, "app-eval"),
        tracking=not config.getoption("klaud_no_tracking")
        and bool(config.getini("klaud_tracking")),
        tracking_uri=value("klaud_tracking_uri") or None,
        experiment=value("klaud_experiment") or None,
        model_version=value("klaud_model_version") or "unknown",
        timeouts=parse_timeouts(items("klaud_timeout", "klaud_timeouts")),
        env_passthrough=tuple(items("klaud_env_passthrough", "klaud_env_passthrough")),
        outbox_dir=path("klaud_outbox") or config.rootpath / ".klaud-outbox",
        allow_infra_errors=parse_count(
            value("klaud_allow_infra_errors") or 0, "--klaud-allow-infra-errors"
        ),
        cache=bool(config.getoption("klaud_cache") or config.getini("klaud_cache")),
        rerun=parse_rerun(config.getoption("klaud_rerun")),
        ui=ui.ui_enabled(config),
    )


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
    if quality.wants_compare(config):  # --klaud-compare runs no apps
        _load_dotenv(config)
        return quality.compare_main(config)
    if dashboard.wants_dashboard(config):  # --klaud-dashboard runs no apps
        _load_dotenv(config)
        return dashboard.dashboard_main(config)
    if ab_command.wants_ab(config):  # --klaud-ab runs no apps
        _load_dotenv(config)
        return ab_command.ab_main(config)
    if config.getoption("klaud_merge") or config.getoption("klaud_open_run"):
        return _sharding_main(config)
    upload = config.getoption("klaud_upload")
    if not upload:
        return None
    _load_dotenv(config)
    from pytest_klaudbiusz.results.render import load_report
    from pytest_klaudbiusz.tracking import runs as tracking
    from pytest_klaudbiusz.tracking.api import EvaluationTracker, relabeled

    try:
        settings = _settings(config)
        if upload != UPLOAD_OUTBOX:
            path = Path(config.invocation_params.dir, upload)
            report = load_report(path)  # a bad report is refused before MLflow is touched
    except ValueError as exc:  # SettingsError included
        raise pytest.UsageError(str(exc)) from None
    uri = tracking.resolve_tracking_uri(settings.tracking_uri, os.environ, config.rootpath)
    tracking.configure_mlflow_environment(os.environ)
    if upload == UPLOAD_OUTBOX:
        return _upload_outbox(settings.outbox_dir, uri, traces.traces_wanted(config))
    experiment = tracking.resolve_experiment(settings.experiment, os.environ)
    if config.getoption("klaud_mode"):  # explicit: relabel (another mode, another evaluation)
        report = relabeled(report, settings.mode)
    try:
        run_id = tracking.logged_run(report, uri, experiment)
        if run_id:
            print(f"{upload} is already in MLflow as run {run_id}: not logged again")
            return 0
        # the API's code path: the same run as the plugin's, attachments included
        run_id = EvaluationTracker(experiment, uri).log_report(
            report, path.parent, traces=traces.traces_wanted(config)
        )
    except tracking.TrackingError as exc:
        raise pytest.UsageError(str(exc)) from None
    print(f"logged {upload} as MLflow run {run_id} ({experiment} at {tracking.display_uri(uri)})")
    return 0


def _upload_outbox(folder: Path, uri: str, with_traces: bool) -> int:
    """``--klaud-upload`` alone: send what waits in the outbox for this tracking target."""
    from pytest_klaudbiusz.tracking.outbox import Outbox, describe, send_waiting

    outbox = Outbox(folder)
    if not outbox.entries():
        print(f"the outbox {folder} is empty: nothing to upload")
        return 0
    deliveries, elsewhere = send_waiting(outbox, uri, with_traces)
    for line in describe(deliveries, elsewhere):
        print(line)
    return 1 if any(d.error for d in deliveries) else 0


def _sharding_main(config: pytest.Config) -> int:
    """``--klaud-merge`` / ``--klaud-open-run``: run no apps (see sharding.py)."""
    _load_dotenv(config)
    from pytest_klaudbiusz.scale import sharding

    try:
        settings = _settings(config)
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
        settings = _settings(config)
        if settings.apps_dir is not None:
            check_apps_dir(settings.apps_dir)
        if not hasattr(config, "workerinput"):  # only the controller writes reports
            check_report_dir(settings.report_dir)
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SETTINGS_KEY] = settings
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


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The apps are data, not tests: never collect the test files inside them."""
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings and settings.apps_dir:
        apps_dir = settings.apps_dir  # resolved: compare the resolved path too (symlinks)
        if collection_path.is_relative_to(apps_dir) or collection_path.resolve().is_relative_to(
            apps_dir
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


@pytest.hookimpl(tryfirst=True)  # before -k deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``-k`` matches an app's folder name as written, not only its escaped test id."""
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
    from pytest_klaudbiusz.results.render import FILE_NAMES
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
