"""The pytest side of quality gates, ``--klaud-compare``, Markdown summaries and trends.

* ``add_options``: the ``--klaud-`` options and their ini equivalents;
* ``compare_main``: ``pytest --klaud-compare`` (from ``pytest_cmdline_main``: runs no apps);
* ``QualityControl``: the controller's gate work in an evaluation. It validates the rules
  when the session is configured, resolves the baseline before any app runs, writes the
  verdict (and the trend) into the report before it is written and tracked, and then sets
  the exit status, updates the baseline file and writes the Markdown summary.

mlflow is imported only through ``history`` (when a baseline, a trend or a comparison
needs the tracking store) and matplotlib only through ``trend``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Generator, Mapping
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from pytest_klaudbiusz.ci import alerts, compare_metrics
from pytest_klaudbiusz.settings import SettingsError, parse_count

if TYPE_CHECKING:  # imported where used: a pytest run without gates must not pay for them
    from pytest_klaudbiusz.ci import compare, gates
    from pytest_klaudbiusz.settings import Settings
    from pytest_klaudbiusz.tracking.history import History

OK, FAILED = pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED
REPORT_FILE = "evaluation_report.json"
TREND_FILE = "trend.png"
DEFAULT_COMPARE_RUNS = 5
DEFAULT_TREND_RUNS = 20
STEP_SUMMARY = "GITHUB_STEP_SUMMARY"

_INI_NAMES = {
    "--klaud-fail-under": "klaud_fail_under",
    "--klaud-fail-over": "klaud_fail_over",
    "--klaud-max-drop": "klaud_max_drop",
    "--klaud-max-new-failures": "klaud_max_new_failures",
    "--klaud-baseline": "klaud_baseline",
}


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("klaudbiusz")

    def add(flag: str, ini: str | None, help: str, ini_type: str = "string", **kw: Any) -> None:
        group.addoption(flag, dest=flag[2:].replace("-", "_"), help=help, **kw)
        if ini:
            parser.addini(ini, help, type=ini_type)  # type: ignore[arg-type]

    def rules(flag: str, ini: str, help: str) -> None:
        add(flag, ini, help, "linelist", action="append", default=[], metavar="METRIC=VALUE")

    rules(
        "--klaud-fail-under",
        "klaud_fail_under",
        "quality gate: fail when a summary metric is below VALUE"
        " (e.g. build_success_rate=0.9); repeatable",
    )
    rules(
        "--klaud-fail-over",
        "klaud_fail_over",
        "quality gate: fail when a lower-is-better metric is above VALUE"
        " (e.g. avg_cost_per_app_usd=1.5); repeatable",
    )
    rules(
        "--klaud-max-drop",
        "klaud_max_drop",
        "quality gate: fail when a metric got worse than the baseline by more than AMOUNT,"
        " absolute (0.05) or relative (5%%); repeatable",
    )
    add(
        "--klaud-max-new-failures",
        "klaud_max_new_failures",
        "quality gate: fail when more than N apps went from pass to fail on any check"
        " versus the baseline",
        metavar="N",
    )
    add(
        "--klaud-baseline",
        "klaud_baseline",
        "what the gate compares with: previous (default: the latest finished run of the"
        " mode), an MLflow run id, or the path of an evaluation_report.json",
        metavar="REF",
    )
    add(
        "--klaud-baseline-same-branch",
        None,
        "with --klaud-baseline=previous: only runs of the same git branch",
        action="store_true",
    )
    parser.addini(
        "klaud_baseline_same_branch",
        "with klaud_baseline = previous: only runs of the same git branch",
        type="bool",
        default=False,
    )
    add(
        "--klaud-baseline-update",
        None,
        "write this evaluation's report to the --klaud-baseline file (on purpose)",
        action="store_true",
    )
    add(
        "--klaud-gate-informational",
        None,
        "evaluate and print the quality gate, but never fail because of it",
        action="store_true",
    )
    parser.addini(
        "klaud_gate_informational",
        "evaluate and print the quality gate, but never fail because of it",
        type="bool",
        default=False,
    )
    for which in ("lower", "higher"):
        add(
            f"--klaud-{which}-is-better",
            f"klaud_{which}_is_better",
            f"custom metric (avg_<name>) for which {which} values are better; repeatable",
            "linelist",
            action="append",
            default=[],
            metavar="METRIC",
        )
    add(
        "--klaud-compare",
        None,
        f"compare the N most recent tracked runs (default {DEFAULT_COMPARE_RUNS}) and exit;"
        " runs no apps",
        nargs="?",
        const=-1,
        type=int,
        metavar="N",
    )
    parser.addini(
        "klaud_compare",
        f"runs that --klaud-compare shows (default {DEFAULT_COMPARE_RUNS})",
        default=str(DEFAULT_COMPARE_RUNS),
    )
    add(
        "--klaud-compare-mode",
        "klaud_compare_mode",
        "with --klaud-compare: only runs of this mode",
        metavar="MODE",
    )
    add(
        "--klaud-compare-runs",
        None,
        "compare run (or report file) B with A, app by app, and exit",
        nargs=2,
        metavar=("A", "B"),
    )
    add(
        "--klaud-summary-md",
        "klaud_summary_md",
        "write the comparison / gate verdict as Markdown to PATH (also appended to"
        " $GITHUB_STEP_SUMMARY when set)",
        metavar="PATH",
    )
    add(
        "--klaud-trend-runs",
        "klaud_trend_runs",
        f"runs in the trend chart of a tracked evaluation (default {DEFAULT_TREND_RUNS};"
        " 0: no chart)",
        metavar="N",
    )


# --- reading the options ----------------------------------------------------------------


def _value(config: pytest.Config, name: str) -> Any:
    option = config.getoption(name)
    return option if option not in (None, [], False) else config.getini(name)


def _flag(config: pytest.Config, name: str) -> bool:
    return bool(config.getoption(name)) or bool(config.getini(name))


def _lines(config: pytest.Config, name: str) -> tuple[list[str], list[str]]:
    return list(config.getini(name)), list(config.getoption(name) or [])


def _ini_error(message: str) -> str:
    for flag, ini in _INI_NAMES.items():
        if message.startswith(flag + " "):
            return f"{ini} (ini)" + message[len(flag) :]
    return message


#: Options that configure a gate or a baseline; without any, gates.py is never imported.
_GATE_OPTIONS = (
    "klaud_fail_under",
    "klaud_fail_over",
    "klaud_max_drop",
    "klaud_max_new_failures",
    "klaud_baseline",
    "klaud_lower_is_better",
    "klaud_higher_is_better",
)


def _gate_configured(config: pytest.Config) -> bool:
    return any(config.getoption(name) or config.getini(name) for name in _GATE_OPTIONS) or bool(
        config.getoption("klaud_baseline_update")
    )


def gate_config(config: pytest.Config) -> gates.GateConfig:
    """The gate of this session, validated; ``pytest.UsageError`` naming the problem."""
    from pytest_klaudbiusz.ci import gates

    lists = {
        name: _lines(config, name)
        for name in _GATE_OPTIONS
        if name not in ("klaud_max_new_failures", "klaud_baseline")
    }
    lower = [*lists["klaud_lower_is_better"][0], *lists["klaud_lower_is_better"][1]]
    higher = [*lists["klaud_higher_is_better"][0], *lists["klaud_higher_is_better"][1]]
    ini_max = config.getini("klaud_max_new_failures") or None
    ini_baseline = config.getini("klaud_baseline") or None
    try:  # the ini file's rules alone first, so that their errors name the ini option
        gates.parse_gate(
            fail_under=lists["klaud_fail_under"][0],
            fail_over=lists["klaud_fail_over"][0],
            max_drop=lists["klaud_max_drop"][0],
            max_new_failures=ini_max,
            baseline=ini_baseline,
            lower_is_better=lower,
            higher_is_better=higher,
        )
    except gates.GateError as exc:
        raise pytest.UsageError(_ini_error(str(exc))) from None
    try:
        return gates.parse_gate(
            fail_under=[*lists["klaud_fail_under"][0], *lists["klaud_fail_under"][1]],
            fail_over=[*lists["klaud_fail_over"][0], *lists["klaud_fail_over"][1]],
            max_drop=[*lists["klaud_max_drop"][0], *lists["klaud_max_drop"][1]],
            max_new_failures=config.getoption("klaud_max_new_failures") or ini_max,
            baseline=config.getoption("klaud_baseline") or ini_baseline,
            same_branch=_flag(config, "klaud_baseline_same_branch"),
            informational=_flag(config, "klaud_gate_informational"),
            update_baseline=bool(config.getoption("klaud_baseline_update")),
            lower_is_better=lower,
            higher_is_better=higher,
        )
    except gates.GateError as exc:
        raise pytest.UsageError(str(exc)) from None


def _count(config: pytest.Config, option: str, ini: str, default: int, minimum: int) -> int:
    raw = config.getoption(option)
    if raw in (None, -1):
        raw = config.getini(ini) or default
    try:
        return parse_count(raw, "--" + option.replace("_", "-"), minimum)
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None


def _path(config: pytest.Config, name: str) -> Path | None:
    option = config.getoption(name)
    if option:
        return Path(config.invocation_params.dir, option).resolve()
    ini = config.getini(name)
    if not ini:
        return None
    base = config.inipath.parent if config.inipath else config.rootpath
    return (base / str(ini)).resolve()


def _store(config: pytest.Config) -> tuple[str, str]:
    from pytest_klaudbiusz.tracking import runs as tracking

    uri = tracking.resolve_tracking_uri(
        _value(config, "klaud_tracking_uri") or None, os.environ, config.rootpath
    )
    experiment = tracking.resolve_experiment(_value(config, "klaud_experiment") or None, os.environ)
    return uri, experiment


def _open_history(uri: str, experiment: str) -> History:
    """A ``History`` after the same fail-fast checks as tracking; ``pytest.UsageError``."""
    from pytest_klaudbiusz.tracking import runs as tracking
    from pytest_klaudbiusz.tracking.history import History, HistoryError

    try:
        tracking.check_tracking_uri(uri, os.environ)
        tracking.configure_mlflow_environment(os.environ)
        return History(uri, experiment)
    except (tracking.TrackingError, HistoryError) as exc:
        raise pytest.UsageError(str(exc)) from None


def _display(uri: str) -> str:
    """The URI without credentials (``user:password@``), for what is printed."""
    from pytest_klaudbiusz.tracking.runs import display_uri

    return display_uri(uri)


def _use_color(config: pytest.Config) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("PY_COLORS") in ("0", "1"):
        return os.environ["PY_COLORS"] == "1"
    color = getattr(config.option, "color", "auto")
    if color in ("yes", "no"):
        return bool(color == "yes")
    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


def _is_report_file(config: pytest.Config, ref: str) -> bool:
    """A report file (or the folder holding one), not an MLflow run id."""
    return ref.endswith(".json") or Path(config.invocation_params.dir, ref).exists()


def _load(path: Path, what: str = "") -> dict[str, Any]:
    from pytest_klaudbiusz.results.render import load_report

    try:
        return load_report(path)
    except ValueError as exc:
        raise pytest.UsageError(f"{what}{exc}") from None


# --- Markdown output ---------------------------------------------------------------------


def publish_markdown(
    text: str, path: Path | None, environ: Mapping[str, str], plain: str | None = None
) -> list[str]:
    """Write the Markdown to ``path`` and append it (``plain``: without local images) to
    ``$GITHUB_STEP_SUMMARY``; returns what was written where, for the user."""
    written = []
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(f"Markdown summary: {path}")
    step = environ.get(STEP_SUMMARY)
    if step:
        with open(step, "a", encoding="utf-8") as out:
            out.write((plain if plain is not None else text).rstrip("\n") + "\n\n")
        written.append(f"Markdown summary appended to ${STEP_SUMMARY}")
    return written


# --- pytest --klaud-compare --------------------------------------------------------------


def wants_compare(config: pytest.Config) -> bool:
    return config.getoption("klaud_compare") is not None or bool(
        config.getoption("klaud_compare_runs")
    )


def _side(
    ref: str, config: pytest.Config, history: History | None
) -> tuple[compare.RunRecord, dict[str, Any] | None, str | None]:
    """A run id or a report file: (record, report, note when there is no report)."""
    from pytest_klaudbiusz.ci import compare

    if _is_report_file(config, ref):
        path = Path(config.invocation_params.dir, ref)
        report = _load(path / REPORT_FILE if path.is_dir() else path)
        return compare.record_from_report(report, source=str(path)), report, None
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
    from pytest_klaudbiusz.settings import SettingsError, parse_mode
    from pytest_klaudbiusz.tracking.history import HistoryError

    gate = gate_config(config) if _gate_configured(config) else None
    lower = gate.lower_is_better if gate else frozenset()
    higher = gate.higher_is_better if gate else frozenset()
    # an explicit --klaud-mode filters too (its ini value and $EVAL_MODE name the mode of
    # evaluations, and would hide every other mode's runs from every comparison)
    mode_option = _value(config, "klaud_compare_mode") or config.getoption("klaud_mode") or None
    try:
        mode = parse_mode(mode_option, {}) if mode_option else None
    except SettingsError as exc:
        raise pytest.UsageError(f"--klaud-compare-mode: {exc}") from None
    pair = config.getoption("klaud_compare_runs")
    if pair:
        needs_store = not all(_is_report_file(config, ref) for ref in pair)
        history = _open_history(*_store(config)) if needs_store else None
        before, before_report, note_a = _side(pair[0], config, history)
        after, after_report, note_b = _side(pair[1], config, history)
        where = (
            f"experiment {history.experiment} at {_display(history.uri)}"
            if history
            else "report files"
        )
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
    count = _count(config, "klaud_compare", "klaud_compare", DEFAULT_COMPARE_RUNS, 1)
    uri, experiment = _store(config)
    history = _open_history(uri, experiment)
    try:
        runs = history.recent(count, mode)
    except HistoryError as exc:
        raise pytest.UsageError(str(exc)) from None
    comparison = compare.Comparison(
        runs=runs,
        where=f"experiment {experiment} at {_display(uri)}",
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

    comparison = build_comparison(config)
    if not comparison.runs:
        scope = f" of mode {comparison.mode}" if comparison.mode else ""
        print(f"no finished klaudbiusz runs{scope} in {comparison.where}: nothing to compare")
        return 0
    print("\n".join(compare.render_text(comparison, color=_use_color(config))))
    md_path = _path(config, "klaud_summary_md")
    if md_path is None and not os.environ.get(STEP_SUMMARY):
        return 0
    body = compare.render_markdown(comparison)
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


# --- the gate in an evaluation -----------------------------------------------------------


class _Controller(Protocol):
    report: dict[str, Any] | None
    write_error: str | None
    failures_besides_infra: int


class QualityControl:
    """The controller's gate, baseline, trend and Markdown work (registered as a plugin)."""

    def __init__(self, config: pytest.Config, settings: Settings, controller: _Controller) -> None:
        self.config, self.settings, self.controller = config, settings, controller
        self.gate: gates.GateConfig | None = (
            gate_config(config) if _gate_configured(config) else None
        )
        self.summary_md = _path(config, "klaud_summary_md")
        self.alert = alerts.alert_config(  # --klaud-alert: checked before any app runs
            config, os.environ, has_baseline=self.gate is not None and self.gate.wants_baseline
        )
        self.trend_runs = _count(
            config, "klaud_trend_runs", "klaud_trend_runs", DEFAULT_TREND_RUNS, 0
        )
        self.baseline: gates.Baseline | None = None
        self.baseline_report: dict[str, Any] | None = None
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
        history = _open_history(*_store(self.config))
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
        from pytest_klaudbiusz.inbox import git_revision

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
                f" {history.experiment!r} at {_display(history.uri)}: run one evaluation without"
                " baseline rules first, or pass --klaud-baseline=RUN_ID or PATH"
            )
        return runs[0]

    def _file_baseline(self, ref: str) -> None:
        from pytest_klaudbiusz.ci import compare, gates

        assert self.gate is not None
        path = Path(self.config.invocation_params.dir, ref).resolve()
        if path.is_dir():  # the report folder of a committed baseline
            path = path / REPORT_FILE
        self.baseline_path = path
        if not path.exists() and self.gate.update_baseline:
            self.baseline = gates.Baseline("file", ref, missing=True)
            return
        if not path.exists():
            raise pytest.UsageError(
                f"baseline report {path} does not exist: pass an existing evaluation_report.json,"
                " or add --klaud-baseline-update to create it from this evaluation"
            )
        report = _load(path, "baseline: ")
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
    def before_reports(
        self, report: dict[str, Any], tracking_uri: str | None, experiment: str | None
    ) -> None:
        """Put the gate's verdict and the trend into the report; draw the trend chart."""
        if self.gate is not None and self.gate.active:
            from pytest_klaudbiusz.ci import gates

            try:
                report["gate"] = gates.evaluate_gate(self.gate, report, self.baseline)
            except gates.GateError as exc:
                self.usage_problem = str(exc)
                report["gate"] = gates.gate_error(str(exc))
        chart = self.settings.report_dir / TREND_FILE
        if not (tracking_uri and experiment and self.trend_runs > 0):
            with suppress(OSError):  # the reports' own write reports a broken folder
                chart.unlink(missing_ok=True)  # no stale chart beside a new report
            return
        try:
            self._trend(report, tracking_uri, experiment, chart)
        except Exception as exc:  # a chart is a nicety: never fail the evaluation for it
            report.pop("trend", None)
            with suppress(OSError):
                chart.unlink(missing_ok=True)
            self.notes.append((f"trend chart skipped: {type(exc).__name__}: {exc}", "yellow"))

    def _trend(self, report: dict[str, Any], uri: str, experiment: str, chart: Path) -> None:
        from pytest_klaudbiusz.ci import compare
        from pytest_klaudbiusz.results.trend import write_trend_png
        from pytest_klaudbiusz.tracking.history import History, HistoryError

        past: list[compare.RunRecord] = []
        mode = report["run"]["mode"]
        if self.trend_runs > 1:
            try:
                past = History(uri, experiment).recent(self.trend_runs - 1, mode)
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

    def settle(self, status: int, report: dict[str, Any]) -> int:
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
                text = json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False)
                self.baseline_path.write_text(text + "\n", encoding="utf-8")
                self.notes.append((f"baseline updated: {self.baseline_path}", None))
            except OSError as exc:
                self.notes.append(
                    (f"ERROR: cannot write the baseline {self.baseline_path}: {exc}", "red")
                )
                status = pytest.ExitCode.INTERNAL_ERROR
        wanted = self.gate_active or self.summary_md is not None or self.baseline is not None
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

    def _settle_infra_errors(self, status: int, report: dict[str, Any]) -> int:
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

    def _baseline_comparison(self, report: dict[str, Any]) -> compare.Comparison | None:
        from pytest_klaudbiusz.ci import compare

        base = self.baseline
        if base is None or base.missing:
            return None
        current = compare.record_from_report(report)
        before = compare.RunRecord(
            name=base.run_name or base.ref,
            mode=str((self.baseline_report or {}).get("run", {}).get("mode") or current.mode),
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

    def markdown(self, report: dict[str, Any], images: bool = True) -> str:
        """The evaluation's Markdown summary: headline rates, gate, baseline diff, trend."""
        from pytest_klaudbiusz.ci import compare, gates

        run, summary = report["run"], report["summary"]
        lines = [
            f"# klaudbiusz evaluation: {run.get('mode')}, {str(run.get('started_at'))[:10]}",
            "",
            f"{summary.get('total_apps')} apps, {summary.get('evaluated')} evaluated,"
            f" {summary.get('infra_errors')} infrastructure errors.",
            "",
            "| Metric | Value |",
            "|---|---|",
        ]
        for metric in (*compare.DEFAULT_METRICS[:8], "avg_cost_per_app_usd"):
            if metric in summary:
                lines.append(f"| {metric} | {compare.fmt(metric, summary[metric])} |")
        lines.append("")
        if report.get("gate"):
            lines += [*gates.markdown_lines(report["gate"]), ""]
        comparison = self._baseline_comparison(report)
        if comparison is not None:
            lines += compare.render_markdown(comparison, sections=("latest", "apps", "tests"))
        if report.get("trend"):
            chart = self.settings.report_dir / report["trend"]["image"]
            lines += ["## Trend", ""]
            if images and self.summary_md is not None:
                rel = Path(os.path.relpath(chart, self.summary_md.parent)).as_posix()
                lines += [f"![rates of the last {run.get('mode')} runs]({rel})", ""]
            else:
                lines += [f"Trend chart: `{chart}` (also an MLflow artifact of the run).", ""]
        if run.get("mlflow_run_id"):
            lines += [f"MLflow run `{run['mlflow_run_id']}` in {run.get('experiment')}.", ""]
        return "\n".join(lines).rstrip("\n") + "\n"

    @pytest.hookimpl(trylast=True)  # after the evaluation's own summary
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        self.write_summary(terminalreporter)

    def write_summary(self, tr: Any) -> None:
        """The gate's section and the notes, to pytest's terminal reporter (or anything
        with its ``write_sep`` and ``write_line``: ``--klaud-merge`` prints them)."""
        report = self.controller.report
        if report is None:
            return
        from pytest_klaudbiusz.ci import gates

        gate = report.get("gate")
        if gate:
            passed = gate["verdict"] == gates.PASSED
            tr.write_sep("=", gates.headline(gate), green=passed, red=not passed, bold=True)
            for text, colour in gates.terminal_lines(gate):
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
                tr.write_line(gates.moves_line(moves.to_dict()))
        for text, colour in self.notes:
            tr.write_line(text, **({colour: True} if colour else {}))
