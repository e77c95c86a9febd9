"""The end of an evaluation, one path for a pytest session (``controller.py``) and for a
merge of shards (``scale/sharding.py``): the suite's summary hook, the gate and the trend,
the report files, MLflow through the outbox, and the lines that say what happened.

The exit status is the quality control's (``QualityControl.settle``).
"""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_klaudbiusz.results.report import REPORT_FILE

if TYPE_CHECKING:
    from pytest_klaudbiusz.ci.quality_control import QualityControl
    from pytest_klaudbiusz.results.report import EvaluationReport
    from pytest_klaudbiusz.settings import Settings
    from pytest_klaudbiusz.tracking.outbox import OutboxEntry
    from pytest_klaudbiusz.tracking.registry import RegisterRequest
    from pytest_klaudbiusz.tracking.store import TrackingStore

#: A line for the user and its colour ("red", "yellow" or None).
Line = tuple[str, str | None]


class Conclusion:
    """What the end of one evaluation did: reports written, run logged (or kept)."""

    def __init__(
        self,
        config: pytest.Config,
        settings: Settings,
        quality: QualityControl,
        store: TrackingStore | None,
        parent_run: str | None = None,  # an open run to complete (a sharded evaluation's)
        registration: RegisterRequest | None = None,  # --klaud-register: once it is logged
    ) -> None:
        self.config, self.settings, self.quality = config, settings, quality
        self.store, self.parent_run, self.registration = store, parent_run, registration
        self.report: EvaluationReport | None = None
        self.paths: dict[str, Path] = {}
        self.hook_problems: list[str] = []
        self.write_error: str | None = None
        self.tracking_error: str | None = None
        self.outbox_entry: OutboxEntry | None = None
        self.outbox_lines: list[str] = []
        self.replaced_mode: str | None = None  # the mode of the reports written over

    def conclude(self, report: EvaluationReport) -> None:
        """Summary hook, gate and trend, report files, then the MLflow run."""
        from pytest_klaudbiusz.hooks import call_summary_hook
        from pytest_klaudbiusz.results.files import write_reports

        self.hook_problems = call_summary_hook(self.config, report)  # the suite's metrics
        self.quality.before_reports(report, self.store)  # gate verdict, trend
        self.report = report
        self.replaced_mode = _mode_of(self.settings.report_dir / REPORT_FILE)
        try:
            self.paths = write_reports(report, self.settings.report_dir)
        except OSError as exc:  # checked at start; the disk can still fill up
            self.write_error = (
                f"cannot write the reports to {self.settings.report_dir}: {exc.strerror or exc}"
            )
            return
        if self.store is not None:
            self._track(report, self.store)

    def _track(self, report: EvaluationReport, store: TrackingStore) -> None:
        """Log the run through the outbox: kept there until MLflow has it all, then any
        evaluation an earlier session could not send goes too (announced in the lines)."""
        from pytest_klaudbiusz.results.files import write_reports
        from pytest_klaudbiusz.results.screenshots import screenshot_folder
        from pytest_klaudbiusz.tracking import runs as tracking
        from pytest_klaudbiusz.tracking.outbox import Outbox, describe, send_waiting
        from pytest_klaudbiusz.tracking.traces import traces_wanted

        outbox = Outbox(self.settings.outbox_dir)
        files = [
            *self.paths.values(),
            *self.quality.artifacts,
            *screenshot_folder(self.settings.report_dir),  # the apps' pages, as shot
        ]
        try:
            self.outbox_entry = outbox.put(report, files, store.shown, store.experiment)
        except OSError as exc:  # sending is still worth a try
            self.outbox_lines.append(
                f"cannot keep the evaluation in the outbox {self.settings.outbox_dir}: "
                f"{exc.strerror or exc}"
            )

        def remember_run(run_id: str) -> None:  # in the files before they are uploaded
            report["run"].update(
                mlflow_run_id=run_id, tracking_uri=store.uri, experiment=store.experiment
            )
            write_reports(report, self.settings.report_dir)

        with_traces = traces_wanted(self.config)
        try:
            tracking.log_report(
                report,
                files,
                store.uri,
                store.experiment,
                on_run_id=remember_run,
                run_id=self.parent_run,
                traces=with_traces,
            )
        except tracking.TrackingError as exc:
            self.tracking_error = str(exc)
            if self.outbox_entry is not None:
                outbox.note_error(self.outbox_entry, self.tracking_error)
            if report["run"]["mlflow_run_id"] and not self.parent_run:
                report["run"]["mlflow_run_id"] = None  # a partial run, replaced when resent
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
                line = register_generator(store.uri, run_id, report, self.registration)
            except tracking.TrackingError as exc:
                line = f"the generator was not registered: {exc}"
            self.outbox_lines.append(line)
        self.outbox_lines += describe(*send_waiting(outbox, store.uri, with_traces))

    def lines(self) -> list[Line]:
        """What happened besides the summary: hook problems, write and tracking outcome."""
        lines: list[Line] = [(f"WARNING: {problem}", "yellow") for problem in self.hook_problems]
        if self.write_error:
            return [*lines, (f"ERROR: {self.write_error}", "red")]
        mode = self.report["run"]["mode"] if self.report else None
        if self.replaced_mode not in (None, mode):
            lines.append(
                (
                    f"the {self.replaced_mode} reports in {self.settings.report_dir} were replaced"
                    f" by these {mode} ones; keep each mode's with --klaud-report-dir"
                    f" app-eval/{mode}",
                    "yellow",
                )
            )
        lines += [(line, None) for line in self.outbox_lines]
        store = self.store
        if self.tracking_error:
            later = (
                f"the evaluation waits in the outbox {self.outbox_entry.folder}; send it with"
                " pytest --klaud-upload (the next tracked run sends it too)"
                if self.outbox_entry is not None
                else f"log them later with: pytest --klaud-upload {self.paths['json']}"
            )
            text = f"MLflow tracking failed: {self.tracking_error} -- the reports are kept; {later}"
            lines.append((text, "yellow"))
        elif store is not None and self.report and self.report["run"].get("mlflow_run_id"):
            lines.append((_where_tracked(store), None))
        elif not self.settings.tracking:
            lines.append(("MLflow tracking off (--klaud-no-tracking)", None))
        return lines


def _mode_of(report_file: Path) -> str | None:
    """The mode of the report already in the report folder, if there is a readable one."""
    from pytest_klaudbiusz.results.files import load_report

    try:
        return str(load_report(report_file)["run"].get("mode")) if report_file.is_file() else None
    except ValueError:
        return None


def _where_tracked(store: TrackingStore) -> str:
    """The experiment, where its files went (a local store) and how to open it."""
    from pytest_klaudbiusz.tracking.runs import sqlite_file

    db = sqlite_file(store.uri)
    if db is None:
        return f"MLflow experiment {store.experiment}; open it with: {store.shown}"
    files = db.resolve().parent / "mlruns"
    return (
        f"MLflow experiment {store.experiment}; open it with: mlflow ui --backend-store-uri"
        f" {store.uri} (the run's files are in {files})"
    )
