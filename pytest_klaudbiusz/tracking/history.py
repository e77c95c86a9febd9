"""Read past evaluations from MLflow: recent runs, one run, a run's report artifact.

The only module of the gate and comparison features that imports mlflow, and only when
a ``History`` is created. Every query fetches only what is shown: ``search_runs`` with
``max_results`` and ``order_by`` (unbounded searches take a second per 500 runs on
SQLite; bounded ones milliseconds).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_klaudbiusz.ci.compare import RunRecord
from pytest_klaudbiusz.results.files import load_report
from pytest_klaudbiusz.results.report import FILE_NAMES, EvaluationReport, utc_timestamp
from pytest_klaudbiusz.tracking.runs import (
    display_uri,
    error_reason,
    quiet_mlflow,
    sqlite_file,
    store_lock,
)

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

REPORT_ARTIFACT = FILE_NAMES["json"]
_SAFE_VALUE = re.compile(r"[^'\\]*")


class HistoryError(Exception):
    """Reading the history failed; the message is one line saying what to do."""


def _iso(ms: int | None) -> str:
    if ms is None:
        return ""
    return utc_timestamp(datetime.fromtimestamp(ms / 1000, UTC))


def _literal(name: str, value: str) -> str:
    if not _SAFE_VALUE.fullmatch(value):
        raise HistoryError(f"{name} {value!r} cannot be searched for (it holds a quote)")
    return f"'{value}'"


class History:
    """The runs of one experiment in one tracking store."""

    def __init__(self, uri: str, experiment: str) -> None:
        self.uri, self.experiment = uri, experiment
        db = sqlite_file(uri)
        if db is not None and not db.is_file():
            raise HistoryError(
                f"no MLflow store at {db}: run an evaluation with tracking first, or point"
                " --klaud-tracking-uri / MLFLOW_TRACKING_URI at the store"
            )
        with self._wrap("opening the tracking store"), store_lock(uri):
            from mlflow.tracking import MlflowClient

            self.client: MlflowClient = MlflowClient(tracking_uri=uri)
        self._experiment_id: str | None = None

    @contextmanager
    def _wrap(self, step: str) -> Iterator[None]:
        try:
            with quiet_mlflow():
                yield
        except HistoryError:
            raise
        except Exception as exc:
            raise HistoryError(
                f"MLflow {step} failed at {display_uri(self.uri)}"
                f" ({error_reason(exc)}): check --klaud-tracking-uri / MLFLOW_TRACKING_URI"
            ) from exc

    def experiment_id(self) -> str:
        if self._experiment_id is None:
            with self._wrap("looking up the experiment"):
                found = self.client.get_experiment_by_name(self.experiment)
            if found is None or found.lifecycle_stage == "deleted":
                raise HistoryError(
                    f"MLflow experiment {self.experiment!r} does not exist at"
                    f" {display_uri(self.uri)}:"
                    " check --klaud-experiment / MLFLOW_EXPERIMENT_NAME and the tracking URI"
                )
            self._experiment_id = str(found.experiment_id)
        return self._experiment_id

    def recent(
        self, count: int, mode: str | None = None, branch: str | None = None
    ) -> list[RunRecord]:
        """The ``count`` latest finished runs of the plugin, newest first."""
        return self.page(count, mode, branch)[0]

    def page(
        self,
        count: int,
        mode: str | None = None,
        branch: str | None = None,
        token: str | None = None,
    ) -> tuple[list[RunRecord], str | None]:
        """Up to ``count`` finished runs, newest first, after the page ``token`` names;
        and the token of the next page (None: no more runs)."""
        clauses = ["tags.framework = 'klaudbiusz'", "attributes.status = 'FINISHED'"]
        if mode:
            clauses.append(f"tags.mode = {_literal('mode', mode)}")
        if branch:
            clauses.append(f"tags.git_branch = {_literal('git branch', branch)}")
        experiment_id = self.experiment_id()
        with self._wrap("searching runs"):
            runs = self.client.search_runs(
                [experiment_id],
                filter_string=" and ".join(clauses),
                max_results=count,
                order_by=["attributes.start_time DESC"],
                page_token=token,
            )
        return [self._record(run) for run in runs], runs.token or None

    def artifacts(self, run_id: str, folder: str, into: Path) -> list[Path]:
        """The run's artifacts under ``folder`` (e.g. ``screenshots``), downloaded into
        ``into``; empty when it has none (or they cannot be read)."""
        try:
            with quiet_mlflow():
                if not self.client.list_artifacts(run_id, folder):
                    return []
                local = Path(self.client.download_artifacts(run_id, folder, str(into)))
        except Exception:
            return []
        return sorted(p for p in local.rglob("*") if p.is_file())

    def run(self, run_id: str) -> RunRecord:
        from mlflow.exceptions import MlflowException

        try:
            with quiet_mlflow():
                run = self.client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code in (
                "RESOURCE_DOES_NOT_EXIST",
                "NOT_FOUND",
                "INVALID_PARAMETER_VALUE",
            ):
                raise HistoryError(
                    f"MLflow run {run_id} does not exist at {display_uri(self.uri)}"
                ) from None
            raise HistoryError(
                f"reading MLflow run {run_id} failed ({error_reason(exc)})"
            ) from None
        except Exception as exc:
            raise HistoryError(
                f"reading MLflow run {run_id} failed ({error_reason(exc)})"
            ) from None
        return self._record(run)

    def report(self, run_id: str) -> EvaluationReport | None:
        """The run's ``evaluation_report.json``, or None when it has none (or not a valid one)."""
        with tempfile.TemporaryDirectory() as tmp:
            try:
                with quiet_mlflow():
                    local = self.client.download_artifacts(run_id, REPORT_ARTIFACT, tmp)
            except Exception:
                return None
            try:
                return load_report(Path(local))
            except ValueError:
                return None

    @staticmethod
    def _record(run: Run) -> RunRecord:
        tags = dict(run.data.tags)
        mode = tags.get("mode") or run.data.params.get("mode") or "unknown"
        return RunRecord(
            name=run.info.run_name or tags.get("run_name") or run.info.run_id,
            mode=mode,
            started_at=_iso(run.info.start_time),
            metrics={k: float(v) for k, v in run.data.metrics.items()},
            run_id=run.info.run_id,
            tags={k: v for k, v in tags.items() if not k.startswith("mlflow.")},
        )
