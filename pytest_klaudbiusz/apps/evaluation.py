"""Evaluate one app: run its stages in a working copy and score the outcome.

``evaluate_app`` is the whole per-app pipeline; it never raises for anything the
app does. ``InfraError`` (and only it) means the harness or the machine failed.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_klaudbiusz.apps.diagnosis import listening_elsewhere, registry_unreachable
from pytest_klaudbiusz.apps.isolation import Isolation
from pytest_klaudbiusz.apps.logs import BoundedLog
from pytest_klaudbiusz.apps.plan import DEFAULT_HEALTH, AppPlan, ManifestError
from pytest_klaudbiusz.apps.postgres import NO_POSTGRES, AppDatabases, PostgresError, PostgresServer
from pytest_klaudbiusz.apps.probes import check_endpoint, wait_healthy
from pytest_klaudbiusz.apps.processes import AppProcesses, free_port, port_is_free
from pytest_klaudbiusz.apps.redaction import redaction_values
from pytest_klaudbiusz.apps.sandbox import CopyError, app_environment, make_working_copy
from pytest_klaudbiusz.apps.scoring import (
    CRITERION_ISSUES,
    appeval_100,
    count_loc,
    devx_criteria,
    has_tests,
    load_generation_metrics,
    parse_coverage,
)
from pytest_klaudbiusz.apps.templates import plan_app
from pytest_klaudbiusz.apps.ui import RULE_SEPARATOR, BrowserUnavailable, has_ui_files, ui_stage
from pytest_klaudbiusz.results.metrics import CHECK_STAGES
from pytest_klaudbiusz.results.model import (
    DEFAULT_TIMEOUTS,
    STAGES,
    AppResult,
    AppStatus,
    Outcome,
    StageOutcome,
)


class InfraError(Exception):
    """The harness or the machine failed; the app is not to blame."""


@dataclass(frozen=True)
class EvalOptions:
    environ: Mapping[str, str]
    timeouts: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS))
    env_passthrough: tuple[str, ...] = ()
    isolation: Isolation = field(default_factory=Isolation)  # sandbox and limits (none)
    ui: bool = True  # open the app's page in a headless browser (--klaud-no-ui: off)
    postgres: PostgresServer | None = None  # where apps that use PostgreSQL get databases
    no_postgres: str = NO_POSTGRES  # why there is no server (an infrastructure error)
    test_retries: int = 1  # a suite that fails, then passes, is flaky: not the app's failure

    def timeout(self, stage: str) -> float:
        return float(self.timeouts.get(stage, DEFAULT_TIMEOUTS[stage]))


_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL", re.IGNORECASE)


def secret_values(env: Mapping[str, str]) -> tuple[str, ...]:
    """Values given to the app that must never be printed: those of secret-looking names."""
    values = {v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= 6}
    return tuple(sorted(values, key=len, reverse=True))  # longest first: no partial leftovers


_UI_OFF = "UI check off (--klaud-no-ui)"


def _skipped(name: str, reason: str) -> StageOutcome:
    return StageOutcome(name, Outcome.SKIPPED, reason=reason)


class _Run:
    """One evaluation in progress: the plan, the working copy, the processes."""

    def __init__(
        self,
        plan: AppPlan,
        workdir: Path,
        options: EvalOptions,
        databases: AppDatabases | None = None,
    ) -> None:
        self.plan, self.workdir, self.options = plan, workdir, options
        self.processes = AppProcesses(options.isolation.confine(workdir, workdir.parent / "own"))
        self.port = free_port()
        self.env, self.refused = app_environment(
            options.environ, port=self.port, workdir=workdir, port_env=plan.port_env,
            manifest_env=plan.env, passthrough=options.env_passthrough,
        )  # fmt: skip
        self.details: dict[str, Any] = {"port": self.port}
        if plan.unprobed:
            self.details["data_not_probed"] = {
                "queries": list(plan.unprobed),
                "reason": "they need an input",
            }
        self.test_env = self.env  # the test stage's: its own database
        if databases is not None:
            self.test_env = {**self.env, **databases.environment(plan.database_env, test=True)}
            self.env.update(databases.environment(plan.database_env, test=False))
            self.details["databases"] = dict(zip(("server", "test"), databases.names, strict=True))
        self.secrets = redaction_values(secret_values(self.env), options.environ)
        self.coverage: float | None = None  # from the test command's output

    def command_stage(self, name: str, *, absent: Outcome, absent_reason: str = "") -> StageOutcome:
        command = self.plan.commands.get(name)
        if not command:
            return StageOutcome(name, absent, reason=absent_reason)
        log = BoundedLog()
        env = self.test_env if name == "test" else self.env
        started_at = time.time()
        result = self.processes.run(command, self.workdir, env, log, self.options.timeout(name))
        tail = log.excerpt(self.secrets)
        if name == "test":
            self.coverage = parse_coverage(log.text())
        missing = self.processes.missing_program
        if result.exit_code == 127 and (program := missing(command, env)):
            raise InfraError(f"{program} is not installed or not on PATH (needed by {name})")
        if (
            name == "install"
            and result.exit_code != 0
            and (cause := registry_unreachable(log.text()))
        ):
            raise InfraError(f"install could not reach the package registry ({cause})")
        if result.limit:
            outcome, reason = Outcome.FAILED, result.limit
        elif result.timed_out:
            outcome, reason = Outcome.FAILED, f"timed out after {self.options.timeout(name):g}s"
        elif result.exit_code == 0:
            outcome, reason = Outcome.PASSED, ""
        else:
            outcome, reason = Outcome.FAILED, "exited non-zero"
        return StageOutcome(
            name, outcome, round(result.duration_sec, 3), reason, command, result.exit_code, tail,
            started_at,
        )  # fmt: skip

    def serve(self) -> list[StageOutcome]:
        """runtime (after the schema and seed scripts), then data, data_returned and ui,
        probed while the app is running."""
        command = self.plan.commands.get("start")
        if not command:
            runtime = StageOutcome("runtime", Outcome.FAILED, reason="no start command")
            return [
                runtime,
                *self._data_skipped("runtime failed"),
                self._ui_skipped("runtime failed"),
            ]
        log = BoundedLog()
        start, started_at = time.monotonic(), time.time()
        prepared = self._prepare_database(log)
        if prepared is not None:  # its schema or seed script failed: the server would too
            elapsed = round(time.monotonic() - start, 3)
            runtime = StageOutcome(
                "runtime", Outcome.FAILED, elapsed, prepared, command, started_at=started_at
            )
            runtime.log_tail = log.excerpt(self.secrets)
            return [
                runtime,
                *self._data_skipped("runtime failed"),
                self._ui_skipped("runtime failed"),
            ]
        popen = self.processes.spawn(command, self.workdir, self.env, log)
        health = wait_healthy(
            self.port, self.plan.health, self.plan.ready_timeout, alive=lambda: popen.poll() is None
        )
        self.details["health"] = {"path": health.path, "last": health.last}
        if health.healthy and popen.poll() is None:
            self.details["startup_time_sec"] = round(health.seconds, 3)
            runtime = StageOutcome(
                "runtime", Outcome.PASSED, round(time.monotonic() - start, 3), command=command
            )
            stages = [runtime, *self._data(), self._ui()]
        else:
            if limit := self.processes.limit_reached():
                reason = limit
            elif health.healthy:  # answered (a daemon it left behind?), but is not running
                reason = "start command exited after answering"
            elif popen.poll() is not None:
                reason = "start command exited"
            else:
                reason = f"not healthy within {self.plan.ready_timeout:g}s"
                if (other := listening_elsewhere(log.text(), self.port)) is not None:
                    reason += "; its log says it listens on another port"
                    self.details["port_hint"] = (
                        f"the app listens on port {other}, not the {self.port} it was given: "
                        "give its port variable to [runtime] port_env in klaud.toml"
                    )
            runtime = StageOutcome(
                "runtime",
                Outcome.FAILED,
                round(time.monotonic() - start, 3),
                reason,
                command,
                popen.poll(),
            )
            stages = [
                runtime,
                *self._data_skipped("runtime failed"),
                self._ui_skipped("runtime failed"),
            ]
        self.processes.kill_all()
        stages[0].log_tail = log.excerpt(self.secrets)
        stages[0].started_at = started_at
        return stages

    def _prepare_database(self, log: BoundedLog) -> str | None:
        """Run the app's schema and seed scripts before its server, as its deployment
        does; the reason the runtime fails when one of them fails."""
        for name in ("schema", "seed"):
            command = self.plan.commands.get(name)
            if not command:
                continue
            log.write(f"$ {command}\n".encode())
            timeout = self.options.timeout(name)
            result = self.processes.run(command, self.workdir, self.env, log, timeout)
            if result.limit:
                return f"{name} script {result.limit}"
            if result.timed_out:
                return f"{name} script timed out after {timeout:g}s"
            if result.exit_code != 0:
                return f"{name} script exited non-zero"
            self.details[f"{name}_command"] = command
        return None

    def _data_skipped(self, reason: str) -> list[StageOutcome]:
        if not self.plan.data:
            return [
                StageOutcome("data", Outcome.NOT_APPLICABLE, reason="no data endpoints"),
                StageOutcome("data_returned", Outcome.NOT_APPLICABLE, reason="no data endpoints"),
            ]
        return [_skipped("data", reason), _skipped("data_returned", "data failed")]

    def _ui(self) -> StageOutcome:
        if not self.options.ui:
            return StageOutcome("ui", Outcome.NOT_APPLICABLE, reason=_UI_OFF)
        timeouts = self.options.timeout("ui"), self.options.timeout("request")
        try:
            stage, details = ui_stage(self.plan, self.workdir, self.port, *timeouts, self.secrets)
        except BrowserUnavailable as exc:
            raise InfraError(str(exc)) from None
        self.details.update(details)
        return stage

    def _ui_skipped(self, reason: str) -> StageOutcome:
        if not self.options.ui:
            return StageOutcome("ui", Outcome.NOT_APPLICABLE, reason=_UI_OFF)
        if has_ui_files(self.plan, self.workdir):
            return _skipped("ui", reason)
        return StageOutcome("ui", Outcome.NOT_APPLICABLE, reason="no UI found in the files")

    def _data(self) -> list[StageOutcome]:
        if not self.plan.data:
            return self._data_skipped("")
        start, started_at = time.monotonic(), time.time()
        checks = [
            check_endpoint(self.port, e, self.options.timeout("request")) for e in self.plan.data
        ]
        self.details["data_endpoints"] = [c.describe() for c in checks]
        elapsed = round(time.monotonic() - start, 3)
        failing = [c for c in checks if not c.connected]
        if failing:
            first = failing[0]
            reason = (
                "endpoint did not answer"
                if first.status is None
                else (
                    "endpoint answered non-2xx"
                    if not 200 <= first.status < 300
                    else "endpoint answered non-JSON"
                )
            )
            data = StageOutcome("data", Outcome.FAILED, elapsed, reason, started_at=started_at)
            data.log_tail = "\n".join(c.summary() for c in failing)
            return [data, _skipped("data_returned", "data failed")]
        empty = [c for c in checks if c.rows < 1]
        if not empty:
            returned = StageOutcome("data_returned", Outcome.PASSED)
        elif self.plan.postgres and not self.plan.commands.get("seed"):
            returned = StageOutcome(
                "data_returned", Outcome.NOT_APPLICABLE, reason="empty database, no seed script"
            )
        else:
            returned = StageOutcome("data_returned", Outcome.FAILED, reason="no rows")
            returned.log_tail = "\n".join(c.summary() for c in empty)
        return [StageOutcome("data", Outcome.PASSED, elapsed, started_at=started_at), returned]


def evaluate_app(app_dir: Path, options: EvalOptions) -> AppResult:
    result = AppResult(app_name=app_dir.name, app_dir=str(app_dir))
    generation, generation_problem = load_generation_metrics(app_dir)
    result.generation_metrics = generation
    try:
        plan = plan_app(app_dir)
    except ManifestError as exc:  # nothing can be judged: the checks stay null
        install = StageOutcome("install", Outcome.FAILED, reason="malformed klaud.toml")
        install.log_tail = str(exc)  # the exact problem, shown with the verdict
        result.stages = [install]
        result.stages += [
            StageOutcome(s, Outcome.NOT_APPLICABLE, reason="malformed klaud.toml")
            for s in STAGES[1:]
        ]
        result.details["manifest_error"] = str(exc)
        return _scored(result, app_dir, None, {})
    result.template_type = plan.template_type
    with tempfile.TemporaryDirectory(prefix="klaud-") as tmp:
        workdir = Path(tmp) / "app"
        try:
            dropped = make_working_copy(app_dir, workdir)
        except CopyError as exc:
            raise InfraError(str(exc)) from None
        with _app_databases(plan, options, result) as databases:
            run = _Run(plan, workdir, options, databases)
            try:
                result.stages = _run_stages(run)
            finally:
                run.processes.close()
        run.details["port_released"] = _wait_port_free(run.port)
        if dropped:
            run.details["links_not_copied"] = dropped
        if run.refused:
            run.details["secrets_refused"] = sorted(set(run.refused))
    if generation_problem:
        result.issues.append(generation_problem)
    result.details.update(run.details)
    return _scored(result, app_dir, plan, {"test_coverage_pct": run.coverage})


@contextmanager
def _app_databases(
    plan: AppPlan, options: EvalOptions, result: AppResult
) -> Iterator[AppDatabases | None]:
    """The app's two empty databases when it uses PostgreSQL, dropped whatever happens."""
    if not plan.postgres:
        yield None
        return
    if options.postgres is None:
        raise InfraError(options.no_postgres)
    try:
        databases = AppDatabases.create(options.postgres, result.app_name)
    except PostgresError as exc:
        raise InfraError(str(exc)) from None
    try:
        yield databases
    finally:
        problem = databases.drop()
        if problem:
            result.details["databases_not_dropped"] = problem


def _run_stages(run: _Run) -> list[StageOutcome]:
    install = run.command_stage("install", absent=Outcome.PASSED)
    if not install.passed:
        reason = "install failed"
        typecheck = (
            _skipped("typecheck", reason)
            if run.plan.commands.get("typecheck")
            else StageOutcome("typecheck", Outcome.NOT_APPLICABLE, reason="no typecheck command")
        )
        return [
            install,
            _skipped("build", reason),
            typecheck,
            _skipped("runtime", reason),
            *run._data_skipped(reason),
            run._ui_skipped(reason),
            _skipped("test", reason),
        ]
    build = run.command_stage("build", absent=Outcome.FAILED, absent_reason="no build command")
    if build.passed and run.plan.typecheck_in_build:  # no second full tsc run
        command = run.plan.commands.get("typecheck")
        reason, now = "checked by the build", time.time()
        typecheck = StageOutcome("typecheck", Outcome.PASSED, 0.0, reason, command, started_at=now)
    else:
        typecheck = run.command_stage(
            "typecheck", absent=Outcome.NOT_APPLICABLE, absent_reason="no typecheck command"
        )
    served = run.serve()  # also after a failed build: an interpreted server may still start
    return [install, build, typecheck, *served, _tests(run)]


def _tests(run: _Run) -> StageOutcome:
    """The test stage; a suite that failed (not timed out) runs again up to
    ``test_retries`` times. Generated suites often race on timestamps and ids: one that
    passes on a rerun is recorded as flaky, with the failed run's log."""
    test = run.command_stage("test", absent=Outcome.FAILED, absent_reason="no test command")
    for attempt in range(1, run.options.test_retries + 1):
        if test.outcome is not Outcome.FAILED or test.exit_code is None:
            break
        retry = run.command_stage("test", absent=Outcome.FAILED)
        if retry.passed:
            retry.reason = f"flaky: passed on retry {attempt}"
            retry.duration_sec = round(retry.duration_sec + test.duration_sec, 3)
            run.details["flaky_tests"] = {"failed_run": test.log_tail}
        test = retry
    return test


def _wait_port_free(port: int, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not port_is_free(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


_SECONDS = re.compile(r" (?:after|within) \d+(?:\.\d+)?s\b")
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")  # not the 2 of "2xx"


def _stable(reason: str) -> str:
    """An issue string without numbers (they stay in the stage's reason), so equal problems
    count together: "timed out after 30s" and "... after 600s" are both "timed out"."""
    return _NUMBER.sub("N", _SECONDS.sub("", reason))


def _scored(
    result: AppResult, app_dir: Path, plan: AppPlan | None, extra: dict[str, Any]
) -> AppResult:
    metrics: dict[str, Any] = {}
    for check, stage_name in CHECK_STAGES.items():
        stage = result.stage(stage_name)
        if stage is None or stage.outcome is Outcome.NOT_APPLICABLE:
            metrics[check] = None
        else:
            metrics[check] = stage.passed
    install = result.stage("install")
    local, deploy = devx_criteria(
        app_dir,
        install_passed=bool(install and install.passed),
        has_start=bool(plan and plan.commands.get("start")),
        health_declared=bool(plan and plan.health != DEFAULT_HEALTH),
    )
    result.details["local_runability"], result.details["deployability"] = local, deploy
    metrics["local_runability_score"] = sum(c["passed"] for c in local)
    metrics["deployability_score"] = sum(c["passed"] for c in deploy)
    metrics["test_coverage_pct"] = extra.get("test_coverage_pct")
    build = result.stage("build")
    metrics["build_time_sec"] = (
        build.duration_sec if build and build.exit_code is not None else None
    )
    metrics["startup_time_sec"] = result.details.get("startup_time_sec")
    metrics["total_loc"] = count_loc(app_dir)
    metrics["has_dockerfile"] = (app_dir / "Dockerfile").is_file()
    metrics["has_tests"] = has_tests(app_dir)
    metrics["appeval_100"] = appeval_100(metrics)
    result.metrics = metrics
    issues = [
        f"{s.name}: {_stable(reason)}"
        for s in result.stages
        if s.outcome is Outcome.FAILED
        for reason in (s.reason.split(RULE_SEPARATOR) if s.name == "ui" else [s.reason])
    ]
    issues += [f"{s.name}: flaky" for s in result.stages if s.passed and "flaky" in s.reason]
    issues += [CRITERION_ISSUES[c["criterion"]] for c in local + deploy if not c["passed"]]
    result.issues = issues + result.issues
    result.status = AppStatus.EVALUATED
    return result


def infra_result(app_dir: Path, error: str) -> AppResult:
    return AppResult(
        app_name=app_dir.name,
        app_dir=str(app_dir),
        status=AppStatus.INFRA_ERROR,
        error=error,
        generation_metrics=load_generation_metrics(app_dir)[0],
    )
