"""The controller process of an evaluation: it gathers every app's result (from this
process or from xdist workers), writes the reports, tracks the run through the outbox,
and says what happened in the terminal summary. Registered as a plugin by ``plugin.py``
on the controller only.
"""

from __future__ import annotations

import re
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_klaudbiusz import __version__, database_server, sandboxing
from pytest_klaudbiusz.apps.plan import discover_apps
from pytest_klaudbiusz.ci.alerts import masked_command
from pytest_klaudbiusz.ci.quality_control import QualityControl
from pytest_klaudbiusz.inbox import EvaluationSession
from pytest_klaudbiusz.options import checked_store
from pytest_klaudbiusz.results.model import AppStatus
from pytest_klaudbiusz.results.report import EvaluationReport, utc_timestamp
from pytest_klaudbiusz.settings import NO_APPS_DIR, Settings

if TYPE_CHECKING:
    from pytest_klaudbiusz.conclusion import Conclusion
    from pytest_klaudbiusz.tracking.registry import RegisterRequest
    from pytest_klaudbiusz.tracking.store import TrackingStore


_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s/:@]+:)[^\s/@]+@", re.I)


class EvaluationController:
    """The controller process: gathers results, writes the reports, tracks the run."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config, self.settings = config, settings
        self.session = EvaluationSession()
        self.started_at = utc_timestamp()
        self.store: TrackingStore | None = None  # once checked, before any app runs
        self.usage_error = False
        self.generation_results: dict[str, dict[str, Any]] | None = None
        self.registration: RegisterRequest | None = None  # --klaud-register
        self.failures_besides_infra = 0  # failed tests that were not infrastructure errors
        self.quality = QualityControl(config, settings, self)  # gates, baseline, trend
        self.conclusion: Conclusion | None = None  # the end: reports, MLflow run

    @property
    def report(self) -> EvaluationReport | None:
        return self.conclusion.report if self.conclusion else None

    @property
    def write_error(self) -> str | None:
        return self.conclusion.write_error if self.conclusion else None

    def load_generation_results(self) -> None:
        """``--klaud-generation-results``, read and checked before any app runs."""
        path = self.settings.generation_results
        if path is None:
            return
        from pytest_klaudbiusz.results.generation import (
            GenerationResultsError,
            load_generation_results,
        )

        try:
            self.generation_results = load_generation_results(path)
        except GenerationResultsError as exc:
            raise pytest.UsageError(str(exc)) from None

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
        if self.settings.tracking and self.store is None:
            self.store = checked_store(self.settings)

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
        from pytest_klaudbiusz.git import git_revision

        commit, branch = git_revision(apps_dir or self.config.rootpath)
        return {
            "evaluation_id": uuid.uuid4().hex,
            "status": "interrupted" if interrupted else "finished",
            "mode": self.settings.mode,
            "started_at": self.started_at,
            "finished_at": utc_timestamp(),
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
            "tracking_uri": self.store.uri if self.store else None,
            "experiment": self.store.experiment if self.store else None,
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
        from pytest_klaudbiusz.results.aggregate import build_report
        from pytest_klaudbiusz.results.dataset import dataset_info
        from pytest_klaudbiusz.results.generation import apply_generation_results, model_of
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
            str(self.settings.generation_results) if self.settings.generation_results else None
        )
        run_info["dataset"] = dataset_info(
            [Path(r.app_dir) for r in results],
            self.settings.apps_dir,
            self.config.rootpath,
            known=run_info["corpus"],  # hashed once for both
        )
        from pytest_klaudbiusz.conclusion import Conclusion

        self.conclusion = Conclusion(
            self.config, self.settings, self.quality, self.store, registration=self.registration
        )
        self.conclusion.conclude(build_report(results, run_info))
        if self.conclusion.write_error:
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.conclusion is None or self.conclusion.report is None:
            return
        from pytest_klaudbiusz.results.render import render_terminal_summary

        tr = terminalreporter
        tr.write_sep("=", f"klaudbiusz evaluation ({self.settings.mode})")
        report_dir = str(self.settings.report_dir)
        for line in render_terminal_summary(self.conclusion.report, report_dir):
            tr.write_line(line)
        for text, colour in self.conclusion.lines():
            tr.write_line(text, **({colour: True} if colour else {}))
