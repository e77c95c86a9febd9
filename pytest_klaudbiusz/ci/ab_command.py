"""``pytest --klaud-ab A B``: test generation strategy B against A on the apps both
evaluated (``ab.py`` does the statistics), print it, and exit; runs no apps.

A side is a mode (its latest finished run in the tracking store), an MLflow run id, or an
``evaluation_report.json`` (or the folder holding one).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_klaudbiusz.ci.sources import configured_store, is_report_file, open_history
from pytest_klaudbiusz.options import OptionReader
from pytest_klaudbiusz.results.report import REPORT_FILE

if TYPE_CHECKING:
    from pytest_klaudbiusz.results.report import EvaluationReport
    from pytest_klaudbiusz.tracking.history import History

RUN_ID = re.compile(r"[0-9a-f]{32}")


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("klaudbiusz")
    group.addoption(
        "--klaud-ab",
        dest="klaud_ab",
        nargs=2,
        metavar=("A", "B"),
        help="A/B test: compare strategy B with A on the apps both evaluated (each a mode,"
        " an MLflow run id or a report file) and exit; runs no apps",
    )


def wants_ab(config: pytest.Config) -> bool:
    return bool(config.getoption("klaud_ab"))


def resolve_side(
    ref: str, history: History | None, is_file: bool, base: Path
) -> tuple[str, EvaluationReport]:
    """(label, report) of one side; ``pytest.UsageError`` saying what is missing."""
    from pytest_klaudbiusz.results.files import load_report
    from pytest_klaudbiusz.tracking.history import HistoryError

    if is_file:
        path = base / ref
        try:
            report = load_report(path / REPORT_FILE if path.is_dir() else path)
        except ValueError as exc:
            raise pytest.UsageError(f"--klaud-ab: {exc}") from None
        return f"{report['run'].get('mode')} ({path})", report
    assert history is not None
    try:
        if RUN_ID.fullmatch(ref):
            record = history.run(ref)
        else:
            runs = history.recent(1, ref)
            if not runs:
                raise pytest.UsageError(
                    f"--klaud-ab: no finished run of mode {ref!r} in experiment"
                    f" {history.experiment!r} (and it is not a run id or a report file)"
                )
            record = runs[0]
    except HistoryError as exc:
        raise pytest.UsageError(f"--klaud-ab: {exc}") from None
    assert record.run_id is not None
    tracked = history.report(record.run_id)
    if tracked is None:
        raise pytest.UsageError(
            f"--klaud-ab: run {record.run_id} has no {REPORT_FILE} artifact:"
            " the A/B test needs each app's results"
        )
    return f"{record.mode} (run {record.run_id}, {record.date})", tracked


def ab_main(config: pytest.Config) -> int:
    """Print the A/B test (and its Markdown with ``--klaud-summary-md``); exit 0."""
    from pytest_klaudbiusz.ci import ab

    refs = config.getoption("klaud_ab")
    base = Path(config.invocation_params.dir)
    files = [is_report_file(config, ref) for ref in refs]
    history = None if all(files) else open_history(configured_store(config))
    (label_a, report_a), (label_b, report_b) = (
        resolve_side(ref, history, is_file, base) for ref, is_file in zip(refs, files, strict=True)
    )
    test = ab.ab_test(report_a, report_b, label_a, label_b)
    print("\n".join(ab.render_text(test)))
    from pytest_klaudbiusz.ci.step_summary import STEP_SUMMARY, publish_markdown

    md_path = OptionReader(config).path("klaud_summary_md")
    if md_path is not None or os.environ.get(STEP_SUMMARY):
        text = "\n".join(["# Generation strategies A/B", "", *ab.render_markdown(test)])
        try:
            written = publish_markdown(text, md_path, os.environ)
        except OSError as exc:
            raise pytest.UsageError(f"cannot write the Markdown summary: {exc}") from None
        for line in written:
            print(line)
    return 0
