"""Alerts on regressions: ``--klaud-alert URL`` sends a notification through Apprise
(``slack://``, ``mailto://``, ``msteams://``, ``discord://``, ``json://`` ...) when the
quality gate fails, when apps that passed in the baseline now fail, or after every
evaluation (``--klaud-alert-on gate|new-failures|always``).

``${VAR}`` in a URL is replaced from the environment (``.env`` included) when it is sent,
so that credentials stay out of the command line; nothing printed, written to a report or
logged to MLflow shows a URL beyond its scheme and host (the report's ``command`` masks
every ``--klaud-alert`` value). A notification that fails is a one-line warning: it never
changes the verdict, and it is sent after the evaluation is written and tracked.

``compose`` (the message) is pure; ``send`` is the Apprise adapter (imported only there).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from pytest_klaudbiusz.options import OptionReader
from pytest_klaudbiusz.results.metrics import RATES, format_value

if TYPE_CHECKING:  # gates is imported where an alert is composed, not by every session
    from pytest_klaudbiusz.ci import gates

GATE, NEW_FAILURES, ALWAYS = "gate", "new-failures", "always"
ALERT_ON = (GATE, NEW_FAILURES, ALWAYS)
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_USERINFO = re.compile(r"//[^/@\s]*@")
_MOVED_METRICS = (*RATES.values(), "overall_quality_score", "cost_per_passing_app_usd")
_MAX_APPS = 20  # apps named per list in a message


class AlertError(ValueError):
    """A bad alert setting; the message is one line."""


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("klaudbiusz")
    group.addoption(
        "--klaud-alert",
        dest="klaud_alert",
        action="append",
        default=[],
        metavar="URL",
        help="send a notification to this Apprise URL (slack://, mailto://, json://, ...;"
        " ${VAR} is read from the environment or .env); repeatable",
    )
    parser.addini(
        "klaud_alerts", "Apprise URLs that get the notifications, one a line", type="linelist"
    )
    group.addoption(
        "--klaud-alert-on",
        dest="klaud_alert_on",
        metavar="WHEN",
        help="when to notify: gate (the quality gate failed; default), new-failures (apps"
        " that passed in the baseline now fail), always",
    )
    parser.addini("klaud_alert_on", "when to notify: gate, new-failures, always", default=GATE)


# --- settings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertConfig:
    urls: tuple[str, ...]  # as written, ${VAR} not yet replaced
    on: str


def expand(url: str, environ: Mapping[str, str]) -> str:
    """``url`` with every ``${VAR}`` replaced; ``AlertError`` naming a missing one."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise AlertError(
                f"--klaud-alert: ${{{name}}} is not set (set it in the environment or in .env)"
            )
        return environ[name]

    return _VARIABLE.sub(value, url)


def shown(url: str) -> str:
    """What may be printed of a URL: its scheme and host, never credentials or tokens."""
    parts = urlsplit(_VARIABLE.sub("", url))
    host = parts.netloc.rpartition("@")[2]
    if not parts.scheme:
        return "<alert URL>"
    # a host name or address has a dot (or is localhost); slack://TokenA/... holds a token
    return f"{parts.scheme}://{host if '.' in host or host.startswith('localhost') else '***'}"


def masked_command(args: Sequence[str]) -> list[str]:
    """Command-line arguments with every ``--klaud-alert`` URL reduced to ``shown``."""
    masked, hide_next = [], False
    for arg in args:
        if hide_next:
            masked.append(shown(arg))
        elif arg.startswith("--klaud-alert="):
            masked.append("--klaud-alert=" + shown(arg.partition("=")[2]))
        else:
            masked.append(arg)
        hide_next = arg == "--klaud-alert"
    return masked


def alert_config(
    config: pytest.Config, environ: Mapping[str, str], has_baseline: bool
) -> AlertConfig | None:
    """The session's alerts, checked now (before any app runs); None without any URL."""
    read = OptionReader(config)
    urls = tuple(read.items("klaud_alert", "klaud_alerts"))
    on = read.value("klaud_alert_on") or GATE
    if on not in ALERT_ON:
        raise pytest.UsageError(f"--klaud-alert-on {on!r}: use one of {', '.join(ALERT_ON)}")
    if not urls:
        return None
    if on == NEW_FAILURES and not has_baseline:
        raise pytest.UsageError(
            "--klaud-alert-on new-failures needs a baseline to compare with:"
            " add --klaud-baseline previous (or a run id or a report file)"
        )
    import apprise

    for url in urls:
        try:
            target = expand(url, environ)
        except AlertError as exc:
            raise pytest.UsageError(str(exc)) from None
        with _quiet_apprise():
            plugin = apprise.Apprise.instantiate(target)
        if plugin is None:
            raise pytest.UsageError(
                f"--klaud-alert {shown(url)}: not a URL Apprise can send to"
                " (see https://github.com/caronc/apprise/wiki)"
            )
    return AlertConfig(tuple(urls), on)


# --- the message (pure) ----------------------------------------------------------------


def reason_to_alert(on: str, report: Mapping[str, Any], moves: gates.AppMoves | None) -> str | None:
    """Why this evaluation is worth a notification under ``on``; None: it is not."""
    from pytest_klaudbiusz.ci import gate_report, gates

    gate = report.get("gate")
    if gate and gate["verdict"] in (gates.FAILED, gates.ERROR):
        gate_reason: str | None = gate_report.headline(gate)
    else:
        gate_reason = None
    regressed = len(moves.regressed) if moves else 0
    new_failures = (
        f"{regressed} app{'s' * (regressed != 1)} went from pass to fail" if regressed else None
    )
    if on == GATE:
        return gate_reason
    if on == NEW_FAILURES:
        return new_failures
    return gate_reason or new_failures or "evaluation finished"


def _names(names: Sequence[str]) -> str:
    more = f" and {len(names) - _MAX_APPS} more" if len(names) > _MAX_APPS else ""
    return ", ".join(names[:_MAX_APPS]) + more


def compose(
    report: Mapping[str, Any],
    reason: str,
    baseline_summary: Mapping[str, Any] | None,
    moves: gates.AppMoves | None,
    link: str | None,
) -> tuple[str, str]:
    """(title, body): the mode, the rates that moved (with the baseline's), the failing
    rules, the apps that flipped, and where the MLflow run is."""
    from pytest_klaudbiusz.ci import gate_report, gates

    run, summary = report["run"], report["summary"]
    mode = run.get("mode")
    title = f"klaudbiusz {mode}: {reason}"
    lines = [
        f"Evaluation of mode {mode} ({run.get('started_at')}): {summary.get('total_apps')} apps,"
        f" {summary.get('evaluated')} evaluated, {summary.get('infra_errors')} infrastructure"
        " errors.",
    ]
    if run.get("git_branch") or run.get("git_commit"):
        lines.append(f"Branch {run.get('git_branch')}, commit {str(run.get('git_commit'))[:12]}.")
    moved = []
    for metric in _MOVED_METRICS:
        now = summary.get(metric)
        before = (baseline_summary or {}).get(metric)
        if now is None or before is None or abs(float(now) - float(before)) < 1e-12:
            continue
        moved.append(
            f"  {metric}: {format_value(metric, now)} (baseline {format_value(metric, before)})"
        )
    if moved:
        lines += ["Rates that moved:", *moved]
    gate = report.get("gate")
    if gate and gate["verdict"] == gates.ERROR:
        lines.append(f"Quality gate error: {gate.get('error')}")
    elif gate:
        lines.append(f"{gate_report.headline(gate)}.")
        entries = gate_report.terminal_lines({**gate, "moved_apps": None})
        for i, (text, colour) in enumerate(entries):  # the failed rules and their apps
            if colour == "red" or (i and entries[i - 1][1] == "red" and text.startswith(" ")):
                lines.append(f"  {' '.join(text.split())}")
    if moves is not None:
        regressed = [f"{n} ({', '.join(c)})" for n, c in moves.regressed.items()]
        fixed = [f"{n} ({', '.join(c)})" for n, c in moves.fixed.items()]
        lines.append(f"Apps vs baseline ({moves.common} in common):")
        lines.append(
            f"  pass -> fail: {len(regressed)}" + (f": {_names(regressed)}" * bool(regressed))
        )
        lines.append(f"  fail -> pass: {len(fixed)}" + (f": {_names(fixed)}" * bool(fixed)))
    lines.append(link or "Not tracked in MLflow.")
    return title, "\n".join(lines)


def run_link(run: Mapping[str, Any], experiment_id: str | None, environ: Mapping[str, str]) -> str:
    """The MLflow run: its UI page when the tracking target serves one, else where it is."""
    from pytest_klaudbiusz.tracking.runs import display_uri

    run_id, uri = run.get("mlflow_run_id"), str(run.get("tracking_uri") or "")
    if not run_id:
        return "Not tracked in MLflow (tracking failed or off): the report is kept locally."
    if experiment_id and uri.startswith(("http://", "https://")):
        return (
            f"MLflow run: {display_uri(uri).rstrip('/')}"
            f"/#/experiments/{experiment_id}/runs/{run_id}"
        )
    host = environ.get("DATABRICKS_HOST", "")
    if experiment_id and uri.startswith("databricks") and host:
        base = host if host.startswith("http") else f"https://{host}"
        return f"MLflow run: {base.rstrip('/')}/ml/experiments/{experiment_id}/runs/{run_id}"
    return (
        f"MLflow run {run_id} in experiment {run.get('experiment')} at {display_uri(uri)}"
        f" (open it with: mlflow ui --backend-store-uri {display_uri(uri)})"
    )


# --- sending (Apprise) ---------------------------------------------------------------------


class _LastWarning(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.message: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.message = record.getMessage()


@contextmanager
def _quiet_apprise() -> Iterator[_LastWarning]:
    """Apprise's log records stay out of pytest's output; the last warning is kept."""
    logger = logging.getLogger("apprise")
    handler = _LastWarning()
    saved = logger.handlers, logger.propagate
    logger.handlers, logger.propagate = [handler], False
    try:
        yield handler
    finally:
        logger.handlers, logger.propagate = saved


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _USERINFO.sub("//", " ".join(text.split()))[:200]


def send(
    urls: Sequence[str], title: str, body: str, environ: Mapping[str, str]
) -> list[tuple[str, str | None]]:
    """Notify every URL once; (line for the terminal, colour) per URL. Never raises."""
    import apprise

    lines: list[tuple[str, str | None]] = []
    for url in urls:
        secrets = [environ.get(name, "") for name in _VARIABLE.findall(url)]
        where = shown(url)
        try:
            with _quiet_apprise() as last:
                plugin = apprise.Apprise.instantiate(expand(url, environ))
                ok = plugin is not None and bool(plugin.notify(body=body, title=title))
        except Exception as exc:  # a notification must never cost the evaluation
            ok, last.message = False, f"{type(exc).__name__}: {exc}"
        if ok:
            lines.append((f"alert sent to {where}", None))
        else:
            why = _scrub(last.message or "no reason given", secrets)
            lines.append((f"WARNING: alert to {where} not delivered: {why}", "yellow"))
    return lines


def notify(
    alert: AlertConfig,
    report: Mapping[str, Any],
    baseline_summary: Mapping[str, Any] | None,
    baseline_apps: Sequence[Mapping[str, Any]] | None,
) -> list[tuple[str, str | None]]:
    """Alert when ``alert.on`` says so; the lines to print."""
    from pytest_klaudbiusz.ci import gates

    moves = gates.app_moves(baseline_apps, report["apps"]) if baseline_apps is not None else None
    reason = reason_to_alert(alert.on, report, moves)
    if reason is None:
        return []
    link = run_link(report["run"], _experiment_id(report["run"]), os.environ)
    title, body = compose(report, reason, baseline_summary, moves, link)
    return send(alert.urls, title, body, os.environ)


def _experiment_id(run: Mapping[str, Any]) -> str | None:
    """The tracked run's experiment id, for a UI link; None without a UI or a run."""
    uri = str(run.get("tracking_uri") or "")
    if not run.get("mlflow_run_id") or not uri.startswith(("http", "databricks")):
        return None
    try:
        from pytest_klaudbiusz.tracking.history import History

        return History(uri, str(run.get("experiment"))).experiment_id()
    except Exception:  # the link falls back to the run id
        return None
