"""Where gates and comparisons find earlier evaluations: the tracking store's history
(MLflow runs) or report files. Every problem is a ``pytest.UsageError``; mlflow is
imported only when a history is opened."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_klaudbiusz.options import OptionReader
from pytest_klaudbiusz.results.report import REPORT_FILE

if TYPE_CHECKING:
    from pytest_klaudbiusz.results.report import EvaluationReport
    from pytest_klaudbiusz.tracking.history import History
    from pytest_klaudbiusz.tracking.store import TrackingStore


def configured_store(config: pytest.Config) -> TrackingStore:
    """The tracking store the options name, checked like an evaluation's."""
    from pytest_klaudbiusz.tracking.runs import TrackingError
    from pytest_klaudbiusz.tracking.store import tracking_store

    read = OptionReader(config)
    try:
        return tracking_store(
            read.value("klaud_tracking_uri") or None,
            read.value("klaud_experiment") or None,
            read.home,
        )
    except TrackingError as exc:
        raise pytest.UsageError(str(exc)) from None


def open_history(store: TrackingStore) -> History:
    from pytest_klaudbiusz.tracking.history import History, HistoryError

    try:
        return History(store.uri, store.experiment)
    except HistoryError as exc:
        raise pytest.UsageError(str(exc)) from None


def is_report_file(config: pytest.Config, ref: str) -> bool:
    """A report file (or the folder holding one), not an MLflow run id."""
    return ref.endswith(".json") or Path(config.invocation_params.dir, ref).exists()


def report_path(config: pytest.Config, ref: str) -> Path:
    """A report file, or ``evaluation_report.json`` in a folder (a CI artifact, a baseline)."""
    path = Path(config.invocation_params.dir, ref).resolve()
    return path / REPORT_FILE if path.is_dir() else path


def load(path: Path, what: str = "") -> EvaluationReport:
    from pytest_klaudbiusz.results.files import load_report

    try:
        return load_report(path)
    except ValueError as exc:
        raise pytest.UsageError(f"{what}{exc}") from None
