"""``pytest --klaud-compare [N]`` and ``--klaud-compare-runs A B``: compare tracked runs
(or report files) and exit; runs no apps. Called from ``pytest_cmdline_main``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_klaudbiusz.ci import compare_metrics
from pytest_klaudbiusz.ci.options import DEFAULT_COMPARE_RUNS, gate_config
from pytest_klaudbiusz.ci.sources import (
    configured_store,
    is_report_file,
    load,
    open_history,
    report_path,
)
from pytest_klaudbiusz.ci.step_summary import STEP_SUMMARY, publish_markdown
from pytest_klaudbiusz.options import OptionReader
from pytest_klaudbiusz.results.report import REPORT_FILE
from pytest_klaudbiusz.settings import SettingsError

if TYPE_CHECKING:
    from pytest_klaudbiusz.ci import compare
    from pytest_klaudbiusz.results.report import EvaluationReport
    from pytest_klaudbiusz.tracking.history import History


def _use_color(config: pytest.Config) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("PY_COLORS") in ("0", "1"):
        return os.environ["PY_COLORS"] == "1"
    color = getattr(config.option, "color", "auto")
    if color in ("yes", "no"):
        return bool(color == "yes")
    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


def _side(
    ref: str, config: pytest.Config, history: History | None
) -> tuple[compare.RunRecord, EvaluationReport | None, str | None]:
    """A run id or a report file: (record, report, note when there is no report)."""
    from pytest_klaudbiusz.ci import compare

    if is_report_file(config, ref):
        report = load(report_path(config, ref))
        source = str(Path(config.invocation_params.dir, ref))
        return compare.record_from_report(report, source=source), report, None
    assert history is not None
    from pytest_klaudbiusz.tracking.history import HistoryError

    try:
        record = history.run(ref)
    except HistoryError as exc:
        raise pytest.UsageError(str(exc)) from None
    found = history.report(ref)
    note = None if found else f"run {ref} has no {REPORT_FILE} artifact: no per-app diff"
    return record, found, note


def build_comparison(config: pytest.Config) -> compare.Comparison:
    from pytest_klaudbiusz.ci import compare
    from pytest_klaudbiusz.settings import parse_mode
    from pytest_klaudbiusz.tracking.history import HistoryError

    gate = gate_config(config)
    read = OptionReader(config)
    lower = gate.lower_is_better if gate else frozenset()
    higher = gate.higher_is_better if gate else frozenset()
    # an explicit --klaud-mode filters too (its ini value and $EVAL_MODE name the mode of
    # evaluations, and would hide every other mode's runs from every comparison)
    mode_option = read.value("klaud_compare_mode") or config.getoption("klaud_mode") or None
    try:
        mode = parse_mode(mode_option, {}) if mode_option else None
    except SettingsError as exc:
        raise pytest.UsageError(f"--klaud-compare-mode: {exc}") from None
    pair = config.getoption("klaud_compare_runs")
    if pair:
        needs_store = not all(is_report_file(config, ref) for ref in pair)
        store = configured_store(config) if needs_store else None
        history = open_history(store) if store else None
        before, before_report, note_a = _side(pair[0], config, history)
        after, after_report, note_b = _side(pair[1], config, history)
        where = f"experiment {store.experiment} at {store.shown}" if store else "report files"
        notes = [n for n in (note_a, note_b) if n]
        return compare.Comparison(
            runs=[after, before],
            where=where,
            latest=after,
            previous=before,
            latest_report=None if notes else after_report,
            previous_report=None if notes else before_report,
            notes=notes,
            titles=("B", "A"),
            heading="B vs A",
            intro=f"run B {after.ref} compared with run A {before.ref} ({where})",
            metrics=compare_metrics.selected(config),
            lower_is_better=lower,
            higher_is_better=higher,
        )
    try:
        count = read.count("klaud_compare", DEFAULT_COMPARE_RUNS, minimum=1, unset=-1)
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None
    store = configured_store(config)
    history = open_history(store)
    try:
        runs = history.recent(count, mode)
    except HistoryError as exc:
        raise pytest.UsageError(str(exc)) from None
    comparison = compare.Comparison(
        runs=runs,
        where=f"experiment {store.experiment} at {store.shown}",
        mode=mode,
        lower_is_better=lower,
        higher_is_better=higher,
        metrics=compare_metrics.selected(config),
    )
    if runs:
        comparison.latest = runs[0]
    if len(runs) > 1:
        comparison.previous = runs[1]
        reports = []
        for record in runs[:2]:
            assert record.run_id is not None
            report = history.report(record.run_id)
            reports.append(report)
            if report is None:
                comparison.notes.append(
                    f"run {record.run_id} ({record.name}) has no {REPORT_FILE} artifact:"
                    " no per-app diff"
                )
        if not comparison.notes:
            comparison.latest_report, comparison.previous_report = reports
    return comparison


def compare_main(config: pytest.Config) -> int:
    """``pytest --klaud-compare``: print the comparison (and its Markdown); exit 0."""
    from pytest_klaudbiusz.ci import compare
    from pytest_klaudbiusz.ci.comparison_report import render_markdown, render_text

    comparison = build_comparison(config)
    if not comparison.runs:
        scope = f" of mode {comparison.mode}" if comparison.mode else ""
        print(f"no finished klaudbiusz runs{scope} in {comparison.where}: nothing to compare")
        return 0
    print("\n".join(render_text(comparison, color=_use_color(config))))
    md_path = OptionReader(config).path("klaud_summary_md")
    if md_path is None and not os.environ.get(STEP_SUMMARY):
        return 0
    body = render_markdown(comparison)
    image_lines: list[str] = []
    if md_path is not None:
        mode = comparison.mode or comparison.runs[0].mode
        trend = compare.trend_data(comparison.runs, mode)
        try:
            from pytest_klaudbiusz.results.trend import write_trend_png

            png = write_trend_png(trend, md_path.with_name(f"{md_path.stem}-trend.png"))
            image_lines = [
                f"## Trend ({mode})",
                "",
                f"![rates of the last {mode} runs]({png.name})",
            ]
        except Exception as exc:  # a chart is a nicety: never fail the comparison for it
            print(f"trend chart skipped: {type(exc).__name__}: {exc}")
    title = ["# Evaluation runs compared", ""]
    try:
        written = publish_markdown(
            "\n".join([*title, *body, *image_lines]).rstrip("\n") + "\n",
            md_path,
            os.environ,
            plain="\n".join([*title, *body]),
        )
    except OSError as exc:
        raise pytest.UsageError(f"cannot write the Markdown summary: {exc}") from None
    for line in written:
        print(line)
    return 0
