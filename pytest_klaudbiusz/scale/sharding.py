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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_klaudbiusz.ci.alerts import masked_command
from pytest_klaudbiusz.options import add_option
from pytest_klaudbiusz.results.model import AppStatus
from pytest_klaudbiusz.results.report import FILE_NAMES, EvaluationReport, utc_timestamp

if TYPE_CHECKING:
    from pytest_klaudbiusz.settings import Settings
    from pytest_klaudbiusz.tracking.store import TrackingStore

PARENT_ENV = "KLAUD_PARENT_RUN_ID"
_RUN_ID = re.compile(r"[\w-]{1,64}")


def add_options(parser: pytest.Parser) -> None:
    """Sharded evaluations: a CI matrix of shards, then one merge."""
    add_option(
        parser,
        "--klaud-shard",
        None,
        "label this run as a shard of an evaluation (default with pytest-split: GROUP/SPLITS)",
        metavar="NAME",
    )
    add_option(
        parser,
        "--klaud-parent-run",
        None,
        "log this shard as a child of the evaluation's MLflow run RUN_ID (from"
        " --klaud-open-run; default: $KLAUD_PARENT_RUN_ID); --klaud-merge completes that run",
        metavar="RUN_ID",
    )
    add_option(
        parser,
        "--klaud-open-run",
        None,
        "open the MLflow run of a sharded evaluation, print its id and exit",
        action="store_true",
    )
    add_option(
        parser,
        "--klaud-merge",
        None,
        "merge the shards' evaluation_report.json files (or folders holding them) into one"
        " report and one MLflow run, and exit; runs no apps",
        nargs="+",
        metavar="REPORT",
    )


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


def _store(settings: Settings, what: str) -> TrackingStore:
    """The tracking store, checked (fails fast, before mlflow is imported)."""
    from pytest_klaudbiusz.options import checked_store

    if not settings.tracking:
        raise pytest.UsageError(f"{what} logs to MLflow: drop --klaud-no-tracking")
    return checked_store(settings)


def open_run_main(config: pytest.Config, settings: Settings) -> int:
    """``pytest --klaud-open-run``: print the id of a new RUNNING run, nothing else."""
    from pytest_klaudbiusz.tracking import runs as tracking

    store = _store(settings, "--klaud-open-run")
    try:
        run_id = tracking.open_parent_run(
            store.uri, store.experiment, settings.mode, utc_timestamp()
        )
    except tracking.TrackingError as exc:
        raise pytest.UsageError(str(exc)) from None
    print(run_id)
    return 0


def merge_main(config: pytest.Config, settings: Settings) -> int:
    """``pytest --klaud-merge REPORT...``: write the merged reports to the report folder and
    log them as one run (completing the shards' parent run, if they have one), the way a
    single run ends (``Conclusion``)."""
    from pytest_klaudbiusz.ci.quality_control import QualityControl
    from pytest_klaudbiusz.ci.sources import report_path
    from pytest_klaudbiusz.conclusion import Conclusion
    from pytest_klaudbiusz.results.files import load_report
    from pytest_klaudbiusz.results.render import render_terminal_summary
    from pytest_klaudbiusz.results.screenshots import gather_screenshots
    from pytest_klaudbiusz.scale.merge import MergeError, merge_reports, parent_run_id
    from pytest_klaudbiusz.settings import SettingsError, check_report_dir

    paths = [report_path(config, value) for value in config.getoption("klaud_merge")]
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
    store = _store(settings, "--klaud-merge") if settings.tracking else None
    merged = MergedEvaluation(report)
    control = QualityControl(config, settings, merged)  # gates, baseline, trend
    control.resolve_baseline()  # a baseline that cannot be found: no report, no run
    gather_screenshots(report, shards, settings.report_dir)  # from the shards' folders
    conclusion = Conclusion(config, settings, control, store, parent_run=parent)
    conclusion.conclude(report)
    print(f"merged {len(shards)} shard reports ({len(report['apps'])} apps)")
    if conclusion.write_error is None:
        for line in render_terminal_summary(report, str(settings.report_dir)):
            print(line)
    for text, _ in conclusion.lines():
        print(text)
    if conclusion.write_error:
        return int(pytest.ExitCode.INTERNAL_ERROR)
    # as a single run's: failing apps fail it, unless a gate decides
    failed = pytest.ExitCode.TESTS_FAILED if merged.failures_besides_infra else 0
    status = control.settle(failed, report)
    control.write_summary(_Printer())
    tracked = pytest.ExitCode.TESTS_FAILED if conclusion.tracking_error else 0
    return max(status, tracked)


class MergedEvaluation:
    """What the quality gate needs of an evaluation, for a merge (no pytest session)."""

    def __init__(self, report: EvaluationReport) -> None:
        from pytest_klaudbiusz.results.aggregate import apps_of

        self.report: EvaluationReport | None = report
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
