"""Programmatic access to evaluation tracking, outside pytest.

``track_evaluation`` logs an existing ``evaluation_report.json`` (or its dict) as one MLflow
run, exactly as the plugin logs an evaluation: the same code (``tracking.log_report``),
so the run has the same name, tags, params, metrics, dataset input, apps table and report
files. It is also how a report whose tracking failed is logged later (``pytest
--klaud-upload`` calls it).

``EvaluationTracker`` is the step-by-step interface of the original tracker script::

    from pytest_klaudbiusz import EvaluationTracker

    with EvaluationTracker(experiment_name="/Shared/my-experiment") as tracker:
        run_id = tracker.start_run("my_run", tags={"version": "1.0"})
        tracker.log_evaluation_parameters(mode="custom", total_apps=20,
                                          timestamp="2025-10-22T12:00:00Z")
        tracker.log_evaluation_metrics(report)       # a report dict or a bare summary
        tracker.log_metrics({"custom_score": 0.95})  # or mlflow.log_metric(...)
        tracker.log_artifact_file("app-eval/evaluation_report.json")
    # the run ends with the block: FINISHED, or FAILED if the block raised

    EvaluationTracker().compare_runs([run_id_1, run_id_2])
    # {run_id: {"run_name", "status", "start_time", "end_time", "metrics", "params", "tags"}}

Tracking URI and experiment are resolved as the plugin resolves them (argument, then
``MLFLOW_TRACKING_URI`` / ``MLFLOW_EXPERIMENT_NAME``, then Databricks when
``DATABRICKS_HOST`` and ``DATABRICKS_TOKEN`` are set, else ``./mlflow.db``); ``.env`` in
the current folder is loaded first, the environment winning. Every MLflow failure is a
``TrackingError`` with a one-line message. Importing this module does not import mlflow;
the first call that talks to MLflow does.
"""

from __future__ import annotations

import copy
import hashlib
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from pytest_klaudbiusz import __version__
from pytest_klaudbiusz.results.files import load_report, write_reports
from pytest_klaudbiusz.results.report import EvaluationReport, report_problem, utc_timestamp
from pytest_klaudbiusz.results.screenshots import SCREENSHOT_LINK, screenshot_folder
from pytest_klaudbiusz.settings import parse_mode
from pytest_klaudbiusz.tracking import runs as tracking
from pytest_klaudbiusz.tracking.runs import TrackingError
from pytest_klaudbiusz.tracking.store import tracking_store

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = ["EvaluationTracker", "TrackingError", "track_evaluation"]


def _now_ms() -> int:
    return round(datetime.now(UTC).timestamp() * 1000)


def _load_dotenv(folder: Path) -> None:
    env_file = folder / ".env"
    if env_file.is_file():
        from dotenv import load_dotenv

        load_dotenv(env_file, override=False)


class EvaluationTracker:
    """One MLflow experiment; at most one run of it open at a time."""

    def __init__(self, experiment_name: str | None = None, tracking_uri: str | None = None) -> None:
        cwd = Path.cwd()
        _load_dotenv(cwd)
        store = tracking_store(tracking_uri, experiment_name, cwd)  # fails in seconds
        self.tracking_uri, self.experiment_name = store.uri, store.experiment
        self.run_id: str | None = None
        self._tracker: tracking.MlflowTracker | None = None
        self._fluent = False  # whether the open run is also MLflow's active run
        self._previous_uri: str | None = None

    # --- the MLflow side -----------------------------------------------------------------

    def _mlflow(self) -> tracking.MlflowTracker:
        if self._tracker is None:
            with tracking.quiet_mlflow():
                self._tracker = tracking.MlflowTracker(self.tracking_uri, self.experiment_name)
        return self._tracker

    @property
    def client(self) -> MlflowClient:
        """The ``MlflowClient`` of the tracking URI, for anything this class does not do."""
        return self._mlflow().client

    def _open_run(self) -> str:
        if self.run_id is None:
            raise TrackingError("no run is open: call start_run() first")
        return self.run_id

    # --- a run, step by step -----------------------------------------------------------

    def start_run(self, run_name: str | None = None, tags: Mapping[str, Any] | None = None) -> str:
        """Open a run (tagged ``framework=klaudbiusz``, ``run_name`` and the versions) and
        return its id. It also becomes MLflow's active run, so ``mlflow.log_metric(...)``
        between ``start_run`` and ``end_run`` logs to it."""
        if self.run_id is not None:
            raise TrackingError(f"run {self.run_id} is still open: call end_run() first")
        import mlflow

        tags = {k: v for k, v in (tags or {}).items() if v is not None}
        name = run_name or f"eval_{tags.get('mode', 'manual')}_{utc_timestamp()}"
        versions = {
            "plugin_version": __version__,
            "python_version": sys.version.split()[0],
            "mlflow_version": mlflow.__version__,
        }
        tracker = self._mlflow()
        with tracking.quiet_mlflow():
            self.run_id = tracker.create_run(name, {**versions, **tags}, start_time=_now_ms())
        self._fluent = self._activate(self.run_id)
        return self.run_id

    def _activate(self, run_id: str) -> bool:
        """Make the run MLflow's active run, unless the caller already has one active.

        That takes MLflow's global tracking URI (and ``MLFLOW_TRACKING_URI``, which MLflow
        sets with it); ``end_run`` puts back what was there before.
        """
        import mlflow

        if mlflow.active_run() is not None:
            return False
        was_set = mlflow.is_tracking_uri_set()  # type: ignore[no-untyped-call]
        self._previous_uri = mlflow.get_tracking_uri() if was_set else None
        mlflow.set_tracking_uri(self.tracking_uri)
        try:
            with tracking.quiet_mlflow():
                mlflow.start_run(run_id=run_id)
        except Exception:  # the run is still usable through this tracker
            self._restore_uri()
            return False
        return True

    def _restore_uri(self) -> None:
        import mlflow

        mlflow.set_tracking_uri(self._previous_uri)  # type: ignore[arg-type]  # None unsets

    def log_evaluation_parameters(
        self,
        mode: str,
        total_apps: int,
        timestamp: str | None = None,
        model_version: str | None = None,
    ) -> None:
        """The params every evaluation run has (``mode``, ``total_apps``, ``timestamp``,
        ``model_version``, "unknown" when not given) and the ``mode`` tag. Params cannot
        change once logged: a second call with other values fails."""
        from mlflow.entities import Param, RunTag

        run_id = self._open_run()
        params = tracking.evaluation_params(
            mode, total_apps, timestamp or utc_timestamp(), model_version
        )
        tracker = self._mlflow()
        with tracker._wrap("logging params"):
            tracker.client.log_batch(
                run_id,
                params=[Param(k, v) for k, v in params.items()],
                tags=[RunTag("mode", str(mode))],
            )

    def log_evaluation_metrics(self, report: Mapping[str, Any]) -> dict[str, float]:
        """Log the summary of an evaluation report (or a bare ``{name: number}`` summary) in
        one request; names are made MLflow-safe, non-numbers left out. Returns what was
        logged."""
        summary = report.get("summary", report)
        if not isinstance(summary, Mapping):
            raise TypeError("log_evaluation_metrics takes a report or a summary dict")
        return self.log_metrics(summary)

    def log_metrics(self, metrics: Mapping[str, Any]) -> dict[str, float]:
        """Log custom metrics (``{name: number}``) the same way, in one request."""
        run_id = self._open_run()
        entities = tracking.summary_metrics(metrics, _now_ms())
        tracker = self._mlflow()
        with tracker._wrap("logging metrics"):
            tracker.client.log_batch(run_id, metrics=entities)
        return {m.key: m.value for m in entities}

    def log_artifact_file(
        self, path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        """Upload a file to the open run's artifacts."""
        run_id = self._open_run()
        if not Path(path).is_file():
            raise TrackingError(f"cannot log artifact {path}: no such file")
        tracker = self._mlflow()
        with tracker._wrap("uploading an artifact"):
            tracker.client.log_artifact(run_id, str(path), artifact_path)

    def end_run(self, status: str = "FINISHED") -> None:
        """Close the open run (``FINISHED``, ``FAILED`` or ``KILLED``); nothing if none is."""
        if self.run_id is None:
            return
        run_id, self.run_id = self.run_id, None
        tracker = self._mlflow()
        if self._fluent:
            import mlflow

            self._fluent = False
            active = mlflow.active_run()
            try:
                if active is not None and active.info.run_id == run_id:
                    with tracker._wrap("finishing the run"), tracking.quiet_mlflow():
                        mlflow.end_run(status)
                    return
            finally:
                self._restore_uri()
        with tracker._wrap("finishing the run"):
            tracker.client.set_terminated(run_id, status)

    def __enter__(self) -> EvaluationTracker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.end_run("FAILED" if exc_type is not None else "FINISHED")

    # --- whole reports and comparisons ---------------------------------------------------

    def log_report(
        self,
        report: Mapping[str, Any] | str | os.PathLike[str],
        attachments_from: str | os.PathLike[str] | None = None,
        traces: bool = True,
    ) -> str:
        """Log a whole evaluation report as one run, as the plugin does; return the run id.
        ``traces`` False leaves out the per-app traces and assessments.

        The report files (JSON, Markdown, CSV) are rendered from the JSON and uploaded with
        the run id in them; the caller's file or dict is not changed. Files the report
        points to (a section's ``image``, such as the trend chart) are uploaded too when
        they are in ``attachments_from``, by default the folder of a report given as a path.
        """
        data = _as_report(report)
        if attachments_from is None and isinstance(report, str | os.PathLike):
            attachments_from = Path(report).parent
        extra = _attachments(data, Path(attachments_from)) if attachments_from else []
        with tempfile.TemporaryDirectory(prefix="klaud-upload-") as tmp:
            folder = Path(tmp)
            files = write_reports(data, folder)

            def remember_run(run_id: str) -> None:
                data["run"].update(
                    mlflow_run_id=run_id,
                    tracking_uri=self.tracking_uri,
                    experiment=self.experiment_name,
                )
                write_reports(data, folder)

            return tracking.log_report(
                data,
                [*files.values(), *extra],
                self.tracking_uri,
                self.experiment_name,
                on_run_id=remember_run,
                traces=traces,
            )

    def compare_runs(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``{run_id: {"run_name", "status", "start_time", "end_time", "metrics", "params",
        "tags"}}`` in the order given (MLflow's own ``mlflow.*`` tags left out)."""
        tracker = self._mlflow()
        comparison: dict[str, dict[str, Any]] = {}
        for run_id in run_ids:
            with tracker._wrap(f"reading run {run_id}"):
                run = tracker.client.get_run(run_id)
            comparison[run_id] = {
                "run_name": run.info.run_name,
                "status": run.info.status,
                "start_time": run.info.start_time,
                "end_time": run.info.end_time,
                "metrics": dict(run.data.metrics),
                "params": dict(run.data.params),
                "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
            }
        return comparison


def _attachments(report: Mapping[str, Any], folder: Path) -> list[Path]:
    """The files beside the report that its sections point to (``{"image": "trend.png"}``),
    and its apps' screenshots folder."""
    found = []
    for section in report.values():
        name = section.get("image") if isinstance(section, Mapping) else None
        if isinstance(name, str) and name and Path(name).name == name:
            path = folder / name
            if path.is_file():
                found.append(path)
    linked = any((app.get("details") or {}).get(SCREENSHOT_LINK) for app in report["apps"])
    return found + (screenshot_folder(folder) if linked else [])


def _as_report(report: Mapping[str, Any] | str | os.PathLike[str]) -> EvaluationReport:
    """A private copy of the report; ``ValueError`` with a one-line reason if it is none."""
    if isinstance(report, str | os.PathLike):
        return load_report(Path(report))
    if not isinstance(report, Mapping):
        raise TypeError("a report is a path to evaluation_report.json or its dict")
    if reason := report_problem(report):
        raise ValueError(f"not an evaluation report ({reason})")
    data = cast(EvaluationReport, copy.deepcopy(dict(report)))
    run = data["run"]
    run.setdefault("mode", "manual")
    run.setdefault("started_at", utc_timestamp())
    run.setdefault("finished_at", run["started_at"])
    return data


def track_evaluation(
    report: Mapping[str, Any] | str | os.PathLike[str],
    mode: str | None = None,
    *,
    tracking_uri: str | None = None,
    experiment_name: str | None = None,
) -> str:
    """Log an evaluation report (``evaluation_report.json`` or its dict) as one MLflow run,
    the plugin's way, and return the run id. ``mode`` replaces the report's mode."""
    data = _as_report(report)
    if mode is not None:
        data = relabeled(data, mode)
    folder = Path(report).parent if isinstance(report, str | os.PathLike) else None
    return EvaluationTracker(experiment_name, tracking_uri).log_report(data, folder)


def relabeled(report: EvaluationReport, mode: str) -> EvaluationReport:
    """The report as an evaluation of ``mode``: under another mode it is another evaluation
    (its own ``evaluation_id``, the same for every relabel of it to that mode)."""
    run = report["run"]
    mode = parse_mode(mode, {})
    if mode != run.get("mode") and run.get("evaluation_id"):
        origin = f"{run['evaluation_id']} as {mode}".encode()
        run["evaluation_id"] = hashlib.sha256(origin).hexdigest()[:32]
    run["mode"] = mode
    return report
