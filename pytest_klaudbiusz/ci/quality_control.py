"""The quality control of an evaluation (a session's or a merge's): the gate, its
baseline, the trend, the baseline update, the infrastructure-error exit policy, and the
Markdown and terminal summaries.

It validates the rules when the session is configured, resolves the baseline before any
app runs, writes the verdict (and the trend) into the report before it is written and
tracked, and then settles the exit status. mlflow is imported only through ``history``
(when a baseline or a trend needs the tracking store) and matplotlib only through
``results.trend``.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from pytest_klaudbiusz.ci import alerts
from pytest_klaudbiusz.ci.options import gate_config
from pytest_klaudbiusz.results.report import TREND_FILE

if TYPE_CHECKING:  # imported where used: a pytest run without gates must not pay for them
    from pytest_klaudbiusz.ci import compare, gates
    from pytest_klaudbiusz.results.report import EvaluationReport
    from pytest_klaudbiusz.settings import Settings
    from pytest_klaudbiusz.tracking.history import History
    from pytest_klaudbiusz.tracking.store import TrackingStore

OK, FAILED = pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED


class _Controller(Protocol):
    """What the quality control needs of an evaluation (a session's or a merge's)."""

    @property
    def report(self) -> EvaluationReport | None: ...
    @property
    def write_error(self) -> str | None: ...
    @property
    def failures_besides_infra(self) -> int: ...


class QualityControl:
    """The controller's gate, baseline, trend and Markdown work (registered as a plugin)."""

    def __init__(self, config: pytest.Config, settings: Settings, controller: _Controller) -> None:
        self.config, self.settings, self.controller = config, settings, controller
        self.gate: gates.GateConfig | None = gate_config(config)
        self.summary_md = settings.summary_md
        self.alert = alerts.alert_config(  # --klaud-alert: checked before any app runs
            config, os.environ, has_baseline=self.gate is not None and self.gate.wants_baseline
        )
        self.trend_runs = settings.trend_runs
        self.baseline: gates.Baseline | None = None
        self.baseline_report: EvaluationReport | None = None
        self.baseline_path: Path | None = None
        self.artifacts: list[Path] = []  # more files for the MLflow run (the trend chart)
        self.notes: list[tuple[str, str | None]] = []
        self.usage_problem: str | None = None
        self.infra_failed = False  # more infrastructure errors than allowed
        self._resolved = False

    @property
    def gate_active(self) -> bool:
        return self.gate is not None and self.gate.active

    # before any app runs
    def resolve_baseline(self) -> None:
        """Find the baseline now, so that a missing one stops the session before apps run."""
        if self._resolved or self.gate is None or not self.gate.wants_baseline:
            return
        self._resolved = True
        from pytest_klaudbiusz.ci import gates
        from pytest_klaudbiusz.tracking.history import HistoryError

        ref = self.gate.baseline_ref
        kind = gates.classify_baseline(ref)
        if kind == "file":
            self._file_baseline(ref)
            return
        from pytest_klaudbiusz.ci.sources import configured_store, open_history

        history = open_history(configured_store(self.config))
        try:
            record = history.run(ref) if kind == "run" else self._previous(history)
        except HistoryError as exc:
            raise pytest.UsageError(f"baseline: {exc}") from None
        assert record.run_id is not None
        report = history.report(record.run_id)
        self.baseline_report = report
        self.baseline = gates.Baseline(
            kind=kind,
            ref=ref,
            summary=report["summary"] if report else record.metrics,
            apps=report["apps"] if report else None,
            run_id=record.run_id,
            run_name=record.name,
            started_at=record.started_at,
        )

    def _previous(self, history: History) -> compare.RunRecord:
        from pytest_klaudbiusz.git import git_revision
        from pytest_klaudbiusz.tracking.runs import display_uri

        assert self.gate is not None
        mode = self.settings.mode
        branch = None
        if self.gate.same_branch:
            _, branch = git_revision(self.settings.apps_dir or self.config.rootpath)
            if not branch:
                raise pytest.UsageError(
                    "--klaud-baseline-same-branch: the apps folder is not in a git repository"
                )
        runs = history.recent(1, mode, branch)
        if not runs:
            on_branch = f" on branch {branch}" if branch else ""
            raise pytest.UsageError(
                f"baseline: no previous finished run of mode {mode!r}{on_branch} in experiment"
                f" {history.experiment!r} at {display_uri(history.uri)}: run one evaluation without"
                " baseline rules first, or pass --klaud-baseline=RUN_ID or PATH"
            )
        return runs[0]

    def _file_baseline(self, ref: str) -> None:
        from pytest_klaudbiusz.ci import compare, gates

        assert self.gate is not None
        from pytest_klaudbiusz.ci.sources import load, report_path

        path = report_path(self.config, ref)  # a file, or the folder of a committed baseline
        self.baseline_path = path
        if not path.exists() and self.gate.update_baseline:
            self.baseline = gates.Baseline("file", ref, missing=True)
            return
        if not path.exists():
            raise pytest.UsageError(
                f"baseline report {path} does not exist: pass an existing evaluation_report.json,"
                " or add --klaud-baseline-update to create it from this evaluation"
            )
        report = load(path, "baseline: ")
        self.baseline_report = report
        record = compare.record_from_report(report, source=str(path))
        self.baseline = gates.Baseline(
            kind="file",
            ref=ref,
            summary=report["summary"],
            apps=report["apps"],
            run_id=report["run"].get("mlflow_run_id"),
            run_name=record.name,
            started_at=record.started_at,
        )

    # at session end, before the reports are written and tracked
    def before_reports(self, report: EvaluationReport, store: TrackingStore | None) -> None:
        """Put the gate's verdict and the trend into the report; draw the trend chart."""
        if self.gate is not None and self.gate.active:
            from pytest_klaudbiusz.ci import gates

            try:
                report["gate"] = gates.evaluate_gate(self.gate, report, self.baseline)
            except gates.GateError as exc:
                self.usage_problem = str(exc)
                report["gate"] = gates.gate_error(str(exc))
        chart = self.settings.report_dir / TREND_FILE
        if store is None or self.trend_runs <= 0:
            with suppress(OSError):  # the reports' own write reports a broken folder
                chart.unlink(missing_ok=True)  # no stale chart beside a new report
            return
        try:
            self._trend(report, store, chart)
        except Exception as exc:  # a chart is a nicety: never fail the evaluation for it
            report.pop("trend", None)
            with suppress(OSError):
                chart.unlink(missing_ok=True)
            self.notes.append((f"trend chart skipped: {type(exc).__name__}: {exc}", "yellow"))

    def _trend(self, report: EvaluationReport, store: TrackingStore, chart: Path) -> None:
        from pytest_klaudbiusz.ci import compare
        from pytest_klaudbiusz.results.trend import write_trend_png
        from pytest_klaudbiusz.tracking.history import History, HistoryError

        past: list[compare.RunRecord] = []
        mode = report["run"]["mode"]
        if self.trend_runs > 1:
            try:
                past = History(store.uri, store.experiment).recent(self.trend_runs - 1, mode)
            except HistoryError:
                past = []  # a new store or experiment: this run is the first point
        trend = compare.trend_data([*past, compare.record_from_report(report)], mode)
        trend["image"] = TREND_FILE
        report["trend"] = trend
        self.artifacts.append(write_trend_png(trend, chart))

    # at session end, after the controller wrote and tracked the reports
    @pytest.hookimpl(wrapper=True, trylast=True)  # innermost: before the terminal summary
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, None, None]:
        result = yield
        report = self.controller.report
        if report is not None and not self.controller.write_error:
            session.exitstatus = self.settle(session.exitstatus, report)
        return result

    def settle(self, status: int, report: EvaluationReport) -> int:
        """The exit status once the gate and the infrastructure-error policy have had
        their say (``status``: pytest's); also updates the baseline and the summaries."""
        gate = self.gate
        if (
            gate is not None
            and gate.update_baseline
            and report["run"].get("status") == "interrupted"
        ):
            self.notes.append(("baseline not updated: the evaluation was interrupted", "yellow"))
        elif gate is not None and gate.update_baseline and self.baseline_path is not None:
            try:
                self.baseline_path.parent.mkdir(parents=True, exist_ok=True)
                from pytest_klaudbiusz.results.files import report_json

                self.baseline_path.write_text(report_json(report), encoding="utf-8")
                self.notes.append((f"baseline updated: {self.baseline_path}", None))
            except OSError as exc:
                self.notes.append(
                    (f"ERROR: cannot write the baseline {self.baseline_path}: {exc}", "red")
                )
                status = pytest.ExitCode.INTERNAL_ERROR
        wanted = self.gate_active or self.summary_md is not None or self.baseline is not None
        from pytest_klaudbiusz.ci.step_summary import STEP_SUMMARY, publish_markdown

        if wanted and (self.summary_md is not None or os.environ.get(STEP_SUMMARY)):
            try:
                written = publish_markdown(
                    self.markdown(report),
                    self.summary_md,
                    os.environ,
                    plain=self.markdown(report, images=False),
                )
                self.notes += [(line, None) for line in written]
            except OSError as exc:
                self.notes.append((f"cannot write the Markdown summary: {exc}", "red"))
        if self.usage_problem:
            status = pytest.ExitCode.USAGE_ERROR
        elif gate is not None and gate.active and status in (OK, FAILED):  # not 2, 3, 4
            failed = report["gate"]["verdict"] == "failed" and not gate.informational
            status = FAILED if failed else OK
        status = self._settle_infra_errors(status, report)
        if self.alert is not None:  # after the verdict: a notification never changes it
            base = (
                self.baseline if self.baseline is not None and not self.baseline.missing else None
            )
            self.notes += alerts.notify(
                self.alert, report, base.summary if base else None, base.apps if base else None
            )
        return status

    def _settle_infra_errors(self, status: int, report: EvaluationReport) -> int:
        """Infrastructure errors fail the session, even when the gate passes: the evaluation
        is incomplete through no fault of the apps. ``--klaud-allow-infra-errors N``
        tolerates up to N (then they alone do not fail the session)."""
        if status not in (OK, FAILED):
            return status
        infra = [a["app_name"] for a in report["apps"] if a["status"] == "infra_error"]
        allowed = self.settings.allow_infra_errors
        if len(infra) > allowed:
            self.infra_failed = True
            status = FAILED
            names = ", ".join(infra[:5]) + (", ..." if len(infra) > 5 else "")
            self.notes.append(
                (
                    f"ERROR: {len(infra)} infrastructure error(s) ({names}), more than the"
                    f" {allowed} allowed: the harness or the machine failed, not the apps. Fix"
                    " the cause and rerun them with --klaud-rerun=infra, or tolerate some with"
                    " --klaud-allow-infra-errors N",
                    "red",
                )
            )
        elif (
            infra
            and not self.gate_active
            and status == FAILED
            and self.controller.failures_besides_infra == 0
        ):
            status = OK
            self.notes.append(
                (
                    f"{len(infra)} infrastructure error(s) tolerated"
                    f" (--klaud-allow-infra-errors {allowed}): {', '.join(infra)}",
                    "yellow",
                )
            )
        return status

    def _baseline_comparison(self, report: EvaluationReport) -> compare.Comparison | None:
        from pytest_klaudbiusz.ci import compare

        base = self.baseline
        if base is None or base.missing:
            return None
        current = compare.record_from_report(report)
        recorded_mode = self.baseline_report["run"].get("mode") if self.baseline_report else None
        before = compare.RunRecord(
            name=base.run_name or base.ref,
            mode=str(recorded_mode or current.mode),
            started_at=base.started_at or "",
            metrics={
                k: (float(v) if v is not None else None)
                for k, v in base.summary.items()
                if v is None or (isinstance(v, int | float) and not isinstance(v, bool))
            },
            run_id=base.run_id,
            source=str(self.baseline_path) if self.baseline_path else None,
        )
        gate = self.gate
        return compare.Comparison(
            runs=[current, before],
            where="this evaluation and its baseline",
            latest=current,
            previous=before,
            latest_report=report if base.apps is not None else None,
            previous_report=(
                {"summary": base.summary, "apps": base.apps} if base.apps is not None else None
            ),
            notes=[] if base.apps is not None else ["n/a: the baseline has no per-app report"],
            lower_is_better=gate.lower_is_better if gate else frozenset(),
            higher_is_better=gate.higher_is_better if gate else frozenset(),
            titles=("This run", "Baseline"),
            heading="This run vs baseline",
            intro="this evaluation compared with its baseline",
        )

    def markdown(self, report: EvaluationReport, images: bool = True) -> str:
        """The evaluation's Markdown summary: headline rates, gate, baseline diff, trend."""
        chart_link = self.summary_md if images else None
        from pytest_klaudbiusz.ci.step_summary import evaluation_markdown

        return evaluation_markdown(
            report, self._baseline_comparison(report), self.settings.report_dir, chart_link
        )

    @pytest.hookimpl(trylast=True)  # after the evaluation's own summary
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        self.write_summary(terminalreporter)

    def write_summary(self, tr: Any) -> None:
        """The gate's section and the notes, to pytest's terminal reporter (or anything
        with its ``write_sep`` and ``write_line``: ``--klaud-merge`` prints them)."""
        report = self.controller.report
        if report is None:
            return
        from pytest_klaudbiusz.ci import gate_report, gates

        gate = report.get("gate")
        if gate:
            passed = gate["verdict"] == gates.PASSED
            tr.write_sep("=", gate_report.headline(gate), green=passed, red=not passed, bold=True)
            for text, colour in gate_report.terminal_lines(gate):
                tr.write_line(text, **({colour: True} if colour else {}))
            if gate["verdict"] != gates.ERROR:
                if gate.get("informational"):
                    tr.write_line("informational: the gate does not decide the exit status")
                elif passed and self.infra_failed:
                    tr.write_line(
                        "the gate passed; the infrastructure errors make the exit status 1"
                    )
                else:
                    tr.write_line(
                        "the gate decides the exit status: "
                        + ("0" if passed else "1 (--klaud-gate-informational to only report)")
                    )
        elif self.baseline is not None and not self.baseline.missing:
            comparison = self._baseline_comparison(report)
            moves = comparison.moves if comparison else None
            base = self.baseline
            tr.write_sep("=", "compared with the baseline")
            tr.write_line(f"baseline: {base.run_id or base.ref} ({base.run_name})")
            if moves is not None:
                tr.write_line(gate_report.moves_line(moves.to_dict()))
        for text, colour in self.notes:
            tr.write_line(text, **({colour: True} if colour else {}))
