"""The controller process of an evaluation: it gathers every app's result (from this
process or from xdist workers), writes the reports, tracks the run through the outbox,
and says what happened in the terminal summary. Registered as a plugin by ``plugin.py``
on the controller only.
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_klaudbiusz import __version__, database_server, sandboxing
from pytest_klaudbiusz.apps.plan import discover_apps
from pytest_klaudbiusz.ci import quality
from pytest_klaudbiusz.ci.alerts import masked_command
from pytest_klaudbiusz.inbox import EvaluationSession, git_revision
from pytest_klaudbiusz.results.model import AppStatus
from pytest_klaudbiusz.settings import NO_APPS_DIR, Settings

if TYPE_CHECKING:
    from pytest_klaudbiusz.tracking.outbox import OutboxEntry
    from pytest_klaudbiusz.tracking.registry import RegisterRequest


_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s/:@]+:)[^\s/@]+@", re.I)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ini_path(config: pytest.Config, value: str) -> Path:
    """An ini value's path, relative to the ini file's folder (else the rootdir)."""
    base = config.inipath.parent if config.inipath else config.rootpath
    return (base / value).resolve()


class EvaluationController:
    """The controller process: gathers results, writes the reports, tracks the run."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config, self.settings = config, settings
        self.session = EvaluationSession()
        self.started_at = utc_now()
        self.report: dict[str, Any] | None = None
        self.report_paths: dict[str, Path] = {}
        self.tracking_uri: str | None = None
        self.experiment: str | None = None
        self.tracking_error: str | None = None
        self.usage_error = False
        self.write_error: str | None = None
        self.generation_results: dict[str, dict[str, Any]] | None = None
        self.generation_results_path: Path | None = None
        self.hook_problems: list[str] = []
        self.outbox_entry: OutboxEntry | None = None
        self.outbox_lines: list[str] = []
        self.registration: RegisterRequest | None = None  # --klaud-register
        self.failures_besides_infra = 0  # failed tests that were not infrastructure errors
        self.quality = quality.QualityControl(config, settings, self)  # gates, baseline, trend

    def load_generation_results(self) -> None:
        """``--klaud-generation-results``, read and checked before any app runs."""
        option = self.config.getoption("klaud_generation_results")
        ini = self.config.getini("klaud_generation_results")
        if option:
            path = Path(self.config.invocation_params.dir, option).resolve()
        elif ini:
            path = ini_path(self.config, ini)
        else:
            return
        from pytest_klaudbiusz.results.generation import (
            GenerationResultsError,
            load_generation_results,
        )

        try:
            self.generation_results = load_generation_results(path)
        except GenerationResultsError as exc:
            raise pytest.UsageError(str(exc)) from None
        self.generation_results_path = path

    def _before_apps_run(self) -> None:
        """Find the baseline, check the tracking target, and become the subreaper that
        inherits the processes of an app whose worker dies (``kill_strays``)."""
        from pytest_klaudbiusz.apps.processes import become_subreaper
        from pytest_klaudbiusz.scale import sharding

        self.quality.resolve_baseline()  # a baseline that cannot be found stops the session
        sharding.check_shard(self.config, self.settings.tracking)  # a shard logs no run alone
        become_subreaper()
        from pytest_klaudbiusz.tracking.registry import register_request

        self.registration = register_request(self.config)
        if self.registration and not self.settings.tracking:
            raise pytest.UsageError("--klaud-register logs to MLflow: drop --klaud-no-tracking")
        if not self.settings.tracking or self.tracking_uri is not None:
            return
        from pytest_klaudbiusz.tracking import runs as tracking

        uri = tracking.resolve_tracking_uri(
            self.settings.tracking_uri, os.environ, self.config.rootpath
        )
        try:
            tracking.check_tracking_uri(uri, os.environ)
        except tracking.TrackingError as exc:
            raise pytest.UsageError(str(exc)) from None
        tracking.configure_mlflow_environment(os.environ)
        self.tracking_uri = uri
        self.experiment = tracking.resolve_experiment(self.settings.experiment, os.environ)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.config.option.collectonly:  # nothing is evaluated: no report, no run
            return
        for item in session.items:
            callspec = getattr(item, "callspec", None)
            if callspec is not None and "klaud_app" in callspec.params:
                self.session.expect(item.nodeid, callspec.params["klaud_app"])
        if self.session.active:
            self._before_apps_run()

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        if self.settings.apps_dir is not None and not self.config.option.collectonly:
            self.session.expect_ids(ids, discover_apps(self.settings.apps_dir))
        if self.session.active:
            self._before_apps_run()

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and NO_APPS_DIR in str(report.longrepr):  # from an xdist worker
            self.usage_error = True

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = getattr(report, "klaud_result", None)
        if payload:
            self.session.add(payload)
        elif report.failed and report.when in ("setup", "???"):
            lines = report.longreprtext.strip().splitlines() or ["no result"]
            if self.session.add_crash(report.nodeid, lines[-1]):
                return
        infra = payload is not None and payload.get("status") == AppStatus.INFRA_ERROR.value
        if report.failed and not infra:
            self.failures_besides_infra += 1

    def _run_info(self, model_version: str, interrupted: bool) -> dict[str, Any]:
        from pytest_klaudbiusz.scale import sharding

        apps_dir = self.settings.apps_dir
        commit, branch = git_revision(apps_dir or self.config.rootpath)
        return {
            "evaluation_id": uuid.uuid4().hex,
            "status": "interrupted" if interrupted else "finished",
            "mode": self.settings.mode,
            "started_at": self.started_at,
            "finished_at": utc_now(),
            "plugin_version": __version__,
            "pytest_version": pytest.__version__,
            "python_version": sys.version.split()[0],
            "git_commit": commit,
            "git_branch": branch,
            "model_version": model_version,
            "apps_dir": str(apps_dir) if apps_dir else None,
            "command": _URL_PASSWORD.sub(  # e.g. --klaud-postgres postgresql://user:PASSWORD@h/db
                r"\1[REDACTED]@",
                " ".join(["pytest", *masked_command(self.config.invocation_params.args)]),
            ),
            "tracking_uri": self.tracking_uri,
            "experiment": self.experiment,
            "mlflow_run_id": None,
            "postgres": database_server.run_field(self.config),  # which one the apps used
            **sharding.run_fields(self.config, apps_dir),  # the corpus, to merge shards
            **sandboxing.run_fields(self.config),  # the sandbox and limits the apps ran under
        }

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.usage_error:
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
        if not self.session.active or session.exitstatus == pytest.ExitCode.USAGE_ERROR:
            return  # a usage error stops the session before any app runs: no report, no run
        from pytest_klaudbiusz.apps.processes import kill_strays
        from pytest_klaudbiusz.hooks import call_summary_hook
        from pytest_klaudbiusz.results.aggregate import build_report
        from pytest_klaudbiusz.results.dataset import dataset_info
        from pytest_klaudbiusz.results.generation import apply_generation_results, model_of
        from pytest_klaudbiusz.results.render import write_reports
        from pytest_klaudbiusz.results.screenshots import store_screenshots

        kill_strays()  # of apps whose xdist worker died or was stopped mid-app
        interrupted = session.exitstatus == pytest.ExitCode.INTERRUPTED

        results = self.session.results(
            "interrupted before its evaluation finished" if interrupted else None
        )
        if self.generation_results is not None:
            apply_generation_results(results, self.generation_results)
        model_version = self.settings.model_version
        if model_version == "unknown":
            model_version = model_of(results) or "unknown"
        store_screenshots(results, self.settings.report_dir)  # the PNGs leave the results
        run_info = self._run_info(model_version, interrupted)
        run_info["generation_results"] = (
            str(self.generation_results_path) if self.generation_results_path else None
        )
        run_info["dataset"] = dataset_info(
            [Path(r.app_dir) for r in results],
            self.settings.apps_dir,
            self.config.rootpath,
            known=run_info["corpus"],  # hashed once for both
        )
        report = build_report(results, run_info)
        self.hook_problems = call_summary_hook(self.config, report)
        self.quality.before_reports(report, self.tracking_uri, self.experiment)  # gate, trend
        self.report = report
        try:
            self.report_paths = write_reports(report, self.settings.report_dir)
        except OSError as exc:  # checked at start; the disk can still fill up
            self.write_error = (
                f"cannot write the reports to {self.settings.report_dir}: {exc.strerror or exc}"
            )
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
            return
        if self.tracking_uri is not None and self.experiment is not None:
            self._track(report, self.tracking_uri, self.experiment)

    def _track(self, report: dict[str, Any], uri: str, experiment: str) -> None:
        """Log the run through the outbox: kept there until MLflow has it all, then any
        evaluation an earlier session could not send goes too (announced in the summary)."""
        from pytest_klaudbiusz.results.render import write_reports
        from pytest_klaudbiusz.results.screenshots import screenshot_folder
        from pytest_klaudbiusz.tracking import runs as tracking
        from pytest_klaudbiusz.tracking.outbox import Outbox, describe, send_waiting
        from pytest_klaudbiusz.tracking.traces import traces_wanted

        outbox = Outbox(self.settings.outbox_dir)
        files = [
            *self.report_paths.values(),
            *self.quality.artifacts,
            *screenshot_folder(self.settings.report_dir),
        ]
        try:
            self.outbox_entry = outbox.put(report, files, tracking.display_uri(uri), experiment)
        except OSError as exc:  # sending is still worth a try
            self.outbox_lines.append(
                f"cannot keep the evaluation in the outbox {self.settings.outbox_dir}: "
                f"{exc.strerror or exc}"
            )

        def remember_run(run_id: str) -> None:
            report["run"]["mlflow_run_id"] = run_id
            write_reports(report, self.settings.report_dir)

        with_traces = traces_wanted(self.config)
        try:
            tracking.log_report(
                report, files, uri, experiment, on_run_id=remember_run, traces=with_traces
            )
        except tracking.TrackingError as exc:
            self.tracking_error = str(exc)
            if self.outbox_entry is not None:
                outbox.note_error(self.outbox_entry, self.tracking_error)
            if report["run"]["mlflow_run_id"]:  # a partial run, replaced when the run is resent
                report["run"]["mlflow_run_id"] = None
                with suppress(OSError):
                    write_reports(report, self.settings.report_dir)
            return
        if self.outbox_entry is not None:
            outbox.remove(self.outbox_entry)
            self.outbox_entry = None
        if self.registration is not None:
            from pytest_klaudbiusz.tracking.registry import register_generator

            try:
                run_id = report["run"]["mlflow_run_id"]
                line = register_generator(uri, run_id, report, self.registration)
            except tracking.TrackingError as exc:
                line = f"the generator was not registered: {exc}"
            self.outbox_lines.append(line)
        self.outbox_lines += describe(*send_waiting(outbox, uri, with_traces))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.report is None:
            return
        from pytest_klaudbiusz.results.render import render_terminal_summary

        tr = terminalreporter
        tr.write_sep("=", f"klaudbiusz evaluation ({self.settings.mode})")
        for line in render_terminal_summary(self.report, str(self.settings.report_dir)):
            tr.write_line(line)
        for problem in self.hook_problems:
            tr.write_line(f"WARNING: {problem}", yellow=True)
        if self.write_error:
            tr.write_line(f"ERROR: {self.write_error}", red=True)
            return
        run_id = self.report["run"]["mlflow_run_id"]
        for line in self.outbox_lines:
            tr.write_line(line)
        if self.tracking_error:
            later = (
                f"the evaluation waits in the outbox {self.outbox_entry.folder}; send it with"
                " pytest --klaud-upload (the next tracked run sends it too)"
                if self.outbox_entry is not None
                else f"log them later with: pytest --klaud-upload {self.report_paths['json']}"
            )
            tr.write_line(
                f"MLflow tracking failed: {self.tracking_error} -- the reports are kept; {later}",
                yellow=True,
            )
        elif run_id:
            ui = (
                f"mlflow ui --backend-store-uri {self.tracking_uri}"
                if str(self.tracking_uri).startswith("sqlite")
                else str(self.tracking_uri)
            )
            tr.write_line(f"MLflow experiment {self.experiment}; open it with: {ui}")
        elif not self.settings.tracking:
            tr.write_line("MLflow tracking off (--klaud-no-tracking)")
