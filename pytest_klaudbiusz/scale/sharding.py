"""The pytest side of sharded evaluations (one corpus evaluated by a CI matrix).

* ``run_fields``: what every report records so that shards can be merged anywhere: the
  whole corpus (each app of the apps folder with its digest, selected or not), the shard's
  label and the parent run it belongs to;
* ``check_shard``: before any app runs, a shard that would log a run of its own is refused
  (it is a part of an evaluation, not one);
* ``open_run_main``: ``pytest --klaud-open-run`` opens the parent run of a sharded
  evaluation and prints its id;
* ``merge_main``: ``pytest --klaud-merge REPORT...`` merges the shards' reports
  (``merge.py``) into one report and one run, as a single run would have made them.

A run is a shard when it is labelled (``--klaud-shard``, or pytest-split's
``--splits N --group I``, labelled ``I/N``) or logs under a parent
(``--klaud-parent-run`` / ``$KLAUD_PARENT_RUN_ID``). mlflow is imported only by the
functions that track.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_klaudbiusz.ci import quality
from pytest_klaudbiusz.ci.alerts import masked_command
from pytest_klaudbiusz.results.aggregate import apps_of
from pytest_klaudbiusz.results.model import AppStatus

if TYPE_CHECKING:
    from pytest_klaudbiusz.settings import Settings

PARENT_ENV = "KLAUD_PARENT_RUN_ID"
_RUN_ID = re.compile(r"[\w-]{1,64}")
REPORT_FILE = "evaluation_report.json"


def parent_run(config: pytest.Config) -> str | None:
    """``--klaud-parent-run``, else ``$KLAUD_PARENT_RUN_ID``; ``pytest.UsageError`` if it
    cannot be an MLflow run id."""
    value = config.getoption("klaud_parent_run") or os.environ.get(PARENT_ENV) or None
    if value is not None and not _RUN_ID.fullmatch(value):
        raise pytest.UsageError(
            f"--klaud-parent-run {value!r}: not an MLflow run id (use the id that"
            " pytest --klaud-open-run printed)"
        )
    return value


def shard_label(config: pytest.Config) -> str | None:
    """``--klaud-shard``, else pytest-split's ``GROUP/SPLITS``; with only a parent run, the
    ``-k`` expression (or "shard")."""
    if label := config.getoption("klaud_shard"):
        return str(label)
    splits, group = config.getoption("splits", None), config.getoption("group", None)
    if splits and group:
        return f"{group}/{splits}"
    if parent_run(config):
        keyword = config.getoption("keyword", "")
        return f"-k {keyword}" if keyword else "shard"
    return None


def check_shard(config: pytest.Config, tracking: bool) -> None:
    """A tracked shard logs under a parent run, never as a run of its own."""
    label = shard_label(config)
    if tracking and label and not parent_run(config):
        raise pytest.UsageError(
            f"this run is shard {label} of an evaluation: log it under the evaluation's run"
            f" (--klaud-parent-run ID from pytest --klaud-open-run, or ${PARENT_ENV}) or pass"
            " --klaud-no-tracking, then merge the shards with pytest --klaud-merge"
        )


def run_fields(config: pytest.Config, apps_dir: Path | None) -> dict[str, Any]:
    """The report's ``run`` fields a merge relies on: ``corpus`` (every app of the apps
    folder, by name, with its ``dataset.app_digest``), ``shard`` and ``parent_run_id``."""
    from pytest_klaudbiusz.apps.plan import discover_apps
    from pytest_klaudbiusz.results.dataset import app_digests

    return {
        "corpus": app_digests(discover_apps(apps_dir)) if apps_dir else None,
        "shard": shard_label(config),
        "parent_run_id": parent_run(config),
    }


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _store(config: pytest.Config, settings: Settings, what: str) -> tuple[str, str]:
    """Tracking URI and experiment, checked (fails fast, before mlflow is imported)."""
    from pytest_klaudbiusz.tracking import runs as tracking

    if not settings.tracking:
        raise pytest.UsageError(f"{what} logs to MLflow: drop --klaud-no-tracking")
    uri = tracking.resolve_tracking_uri(settings.tracking_uri, os.environ, config.rootpath)
    try:
        tracking.check_tracking_uri(uri, os.environ)
    except tracking.TrackingError as exc:
        raise pytest.UsageError(str(exc)) from None
    tracking.configure_mlflow_environment(os.environ)
    return uri, tracking.resolve_experiment(settings.experiment, os.environ)


def open_run_main(config: pytest.Config, settings: Settings) -> int:
    """``pytest --klaud-open-run``: print the id of a new RUNNING run, nothing else."""
    from pytest_klaudbiusz.tracking import runs as tracking

    uri, experiment = _store(config, settings, "--klaud-open-run")
    try:
        run_id = tracking.open_parent_run(uri, experiment, settings.mode, _utc_now())
    except tracking.TrackingError as exc:
        raise pytest.UsageError(str(exc)) from None
    print(run_id)
    return 0


def _shard_path(config: pytest.Config, value: str) -> Path:
    """A report file, or a folder holding ``evaluation_report.json`` (a CI artifact)."""
    path = Path(config.invocation_params.dir, value)
    return path / REPORT_FILE if path.is_dir() else path


def merge_main(config: pytest.Config, settings: Settings) -> int:
    """``pytest --klaud-merge REPORT...``: write the merged reports to the report folder and
    log them as one run (completing the shards' parent run, if they have one)."""
    from pytest_klaudbiusz.hooks import call_summary_hook
    from pytest_klaudbiusz.results.render import (
        FILE_NAMES,
        load_report,
        render_terminal_summary,
        write_reports,
    )
    from pytest_klaudbiusz.scale.merge import MergeError, merge_reports, parent_run_id
    from pytest_klaudbiusz.settings import SettingsError, check_report_dir

    paths = [_shard_path(config, value) for value in config.getoption("klaud_merge")]
    output = settings.report_dir / FILE_NAMES["json"]
    if overwritten := next((p for p in paths if p.resolve() == output.resolve()), None):
        raise pytest.UsageError(
            f"--klaud-merge would overwrite the shard report {overwritten}:"
            " pass another --klaud-report-dir"
        )
    try:
        check_report_dir(settings.report_dir)
        shards = [(str(path), load_report(path)) for path in paths]
        command = " ".join(["pytest", *masked_command(config.invocation_params.args)])
        report = merge_reports(shards, command)
        parent = parent_run(config) or parent_run_id(shards)
    except (SettingsError, MergeError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from None
    store = _store(config, settings, "--klaud-merge") if settings.tracking else None
    merged = MergedEvaluation(report)
    control = quality.QualityControl(config, settings, merged)  # gates, baseline, trend
    control.resolve_baseline()  # a baseline that cannot be found: no report, no run
    problems = call_summary_hook(config, report)  # the suite's own summary metrics
    control.before_reports(report, *(store or (None, None)))
    files = write_reports(report, settings.report_dir)
    print(f"merged {len(shards)} shard reports ({len(report['apps'])} apps)")
    for line in [
        *(f"WARNING: {problem}" for problem in problems),
        *render_terminal_summary(report, str(settings.report_dir)),
    ]:
        print(line)
    if store is None:
        tracked = 0
    else:
        from pytest_klaudbiusz.tracking.traces import traces_wanted

        with_traces = traces_wanted(config)
        tracked = _track_merge(report, settings, store, files, control, parent, with_traces)
    # as a single run's: failing apps fail it, unless a gate decides
    failed = pytest.ExitCode.TESTS_FAILED if merged.failures_besides_infra else 0
    status = control.settle(failed, report)
    control.write_summary(_Printer())
    return max(status, tracked)


def _track_merge(
    report: dict[str, Any],
    settings: Settings,
    store: tuple[str, str],
    files: dict[str, Path],
    control: quality.QualityControl,
    parent: str | None,
    with_traces: bool,
) -> int:
    from pytest_klaudbiusz.results.render import write_reports
    from pytest_klaudbiusz.tracking import runs as tracking

    uri, experiment = store

    def remember_run(run_id: str) -> None:
        report["run"].update(mlflow_run_id=run_id, tracking_uri=uri, experiment=experiment)
        write_reports(report, settings.report_dir)

    try:
        run_id = tracking.log_report(
            report,
            [*files.values(), *control.artifacts],
            uri,
            experiment,
            on_run_id=remember_run,
            run_id=parent,
            traces=with_traces,
        )
    except tracking.TrackingError as exc:
        if report["run"]["mlflow_run_id"] and not parent:  # a partial run, replaced on upload
            report["run"].update(mlflow_run_id=None)
            write_reports(report, settings.report_dir)
        print(
            f"MLflow tracking failed: {exc} -- the merged reports are kept; log them later"
            f" with: pytest --klaud-upload {files['json']}"
        )
        return int(pytest.ExitCode.TESTS_FAILED)
    print(f"mlflow run: {run_id} ({experiment} at {tracking.display_uri(uri)})")
    return 0


class MergedEvaluation:
    """What the quality gate needs of an evaluation, for a merge (no pytest session)."""

    def __init__(self, report: dict[str, Any]) -> None:
        self.report: dict[str, Any] | None = report
        self.write_error: str | None = None
        self.failures_besides_infra = sum(  # apps failing a check: a single run's failures
            app.status is AppStatus.EVALUATED and bool(app.failed_checks())
            for app in apps_of(report)
        )


class _Printer:
    """``write_sep``/``write_line`` of pytest's terminal reporter, on stdout."""

    def write_sep(self, sep: str, title: str, **markup: bool) -> None:
        print(f" {title} ".center(80, sep))

    def write_line(self, line: str, **markup: bool) -> None:
        print(line)
