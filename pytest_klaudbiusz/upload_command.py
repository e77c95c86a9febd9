"""``pytest --klaud-upload [REPORT]``: log a saved evaluation report as one MLflow run
(the API's code path, so the run is the plugin's), or, without REPORT, send what waits
in the outbox; runs no apps. Called from ``pytest_cmdline_main``."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_klaudbiusz.options import UPLOAD_OUTBOX, read_settings
from pytest_klaudbiusz.results.files import load_report
from pytest_klaudbiusz.tracking import runs as tracking
from pytest_klaudbiusz.tracking.api import EvaluationTracker, relabeled
from pytest_klaudbiusz.tracking.store import tracking_store
from pytest_klaudbiusz.tracking.traces import traces_wanted


def upload_main(config: pytest.Config) -> int:
    upload = config.getoption("klaud_upload")
    try:
        settings = read_settings(config)
        if upload != UPLOAD_OUTBOX:
            path = Path(config.invocation_params.dir, upload)
            report = load_report(path)  # a bad report is refused before MLflow is touched
    except ValueError as exc:  # SettingsError included
        raise pytest.UsageError(str(exc)) from None
    # checked by the tracker; the outbox says per evaluation what could not be sent
    store = tracking_store(
        settings.tracking_uri, settings.experiment, settings.home, preflight=False
    )
    if upload == UPLOAD_OUTBOX:
        return _upload_outbox(settings.outbox_dir, store.uri, traces_wanted(config))
    uri, experiment = store.uri, store.experiment
    if config.getoption("klaud_mode"):  # explicit: relabel (another mode, another evaluation)
        report = relabeled(report, settings.mode)
    try:
        run_id = tracking.logged_run(report, uri, experiment)
        if run_id:
            print(f"{upload} is already in MLflow as run {run_id}: not logged again")
            return 0
        # the API's code path: the same run as the plugin's, attachments included
        run_id = EvaluationTracker(experiment, uri).log_report(
            report, path.parent, traces=traces_wanted(config)
        )
    except tracking.TrackingError as exc:
        raise pytest.UsageError(str(exc)) from None
    print(f"logged {upload} as MLflow run {run_id} ({experiment} at {store.shown})")
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
