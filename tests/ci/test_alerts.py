"""Alerts (pytest_klaudbiusz.ci.alerts) end to end: real evaluations of instant synthetic
apps notify a real webhook receiver (``http.server``) and a real SMTP server (aiosmtpd), both
on 127.0.0.1 and started here, through Apprise's ``json://`` and ``mailto://`` URLs.

Checked: what arrives and that it arrives exactly once; that nothing arrives when the
condition does not hold; that no credential reaches the output, the reports or the
notification's own text; that a receiver that is down costs a one-line warning and never
the verdict; and ``--klaud-merge`` alerting with the run's MLflow id.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import apprise  # noqa: F401  imported before pytester snapshots sys.modules (see conftest)
import pytest
from aiosmtpd.controller import Controller
from helpers import APPS, INI, NO_TRACKING, TEST_FILE, read_report, run, write_apps

from pytest_klaudbiusz.ci import alerts

SECRET = "s3cr3t-hook-value"
LITERAL_PASSWORD = "literal-pw-123"


class Webhook:
    """A JSON webhook receiver: records every POST (path, headers, JSON body)."""

    def __init__(self) -> None:
        received: list[tuple[str, dict[str, str], dict[str, Any]]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((self.path, dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "hook", credentials: str = "") -> str:
        return f"json://{credentials}127.0.0.1:{self.port}/{path}"


class Mailbox:
    """An SMTP server (aiosmtpd) that keeps every message."""

    def __init__(self) -> None:
        messages: list[Message] = []

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.messages = messages
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    @property
    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=ci@example.com&to=team@example.com"


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    yield box
    box.controller.stop()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EVAL_MODE", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "HOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """Synthetic apps and a baseline report in which every app passes its tests."""
    pytester.makeini(INI)
    pytester.makepyfile(test_evals=TEST_FILE)
    write_apps(pytester.path, APPS)
    result = pytester.runpytest("-p", "no:cacheprovider", NO_TRACKING)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # runtime fails: the apps serve nothing
    shutil.copyfile(
        pytester.path / "app-eval" / "evaluation_report.json", pytester.path / "base.json"
    )
    return pytester


def evaluate(
    project: pytest.Pytester, *args: str, failing: frozenset[str] = frozenset()
) -> pytest.RunResult:
    write_apps(project.path, APPS, failing_tests=failing)
    return project.runpytest(
        "-p", "no:cacheprovider", NO_TRACKING, "--klaud-baseline", "base.json", *args
    )


def written_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


def test_gate_failure_alerts_the_webhook_and_the_mailbox_once_without_secrets(
    project: pytest.Pytester, webhook: Webhook, mailbox: Mailbox
) -> None:
    (project.path / ".env").write_text(f"HOOK_SECRET={SECRET}\n")
    result = evaluate(
        project,
        "--klaud-max-new-failures", "0",
        "--klaud-alert", webhook.url(credentials="ci:${HOOK_SECRET}@"),
        f"--klaud-alert={webhook.url('second', f'user:{LITERAL_PASSWORD}@')}",
        "--klaud-alert", mailbox.url,
        failing={"app03", "app07"},
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the gate's verdict
    assert sorted(path for path, _, _ in webhook.received) == ["/hook", "/second"]
    (_, headers, payload) = next(r for r in webhook.received if r[0] == "/hook")
    assert headers["Authorization"] == "Basic " + base64.b64encode(f"ci:{SECRET}".encode()).decode()
    assert payload["title"] == "klaudbiusz manual: quality gate: FAILED (1 of 2 rules failed)"
    body = payload["message"]
    for expected in (
        "Evaluation of mode manual",
        "tests_pass_rate: 80.0% (baseline 100.0%)",
        "FAILED at most 0 apps newly failing a check vs baseline: measured 2, limit 0",
        "apps: app03 (tests_pass), app07 (tests_pass)",
        "pass -> fail: 2: app03 (tests_pass), app07 (tests_pass)",
        "fail -> pass: 0",
        "Not tracked in MLflow",
    ):
        assert expected in body, body
    [mail] = mailbox.messages
    assert mail["Subject"] == payload["title"]
    assert mail["To"] == "team@example.com"
    text = mail.get_payload()[0].get_payload(decode=True).decode()  # type: ignore[index, union-attr]
    assert "pass -> fail: 2: app03 (tests_pass), app07 (tests_pass)" in text
    output = result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(
        [
            f"alert sent to json://127.0.0.1:{webhook.port}",
            f"alert sent to json://127.0.0.1:{webhook.port}",
            f"alert sent to mailto://127.0.0.1:{mailbox.port}",
        ]
    )
    report = read_report(project.path / "app-eval")
    assert report["gate"]["verdict"] == "failed"
    assert f"--klaud-alert=json://127.0.0.1:{webhook.port}" in report["run"]["command"]
    for secret in (SECRET, LITERAL_PASSWORD):
        assert secret not in output
        assert secret not in written_text(project.path / "app-eval")
        assert secret not in json.dumps(payload) + text


def test_new_failures_alert_only_when_an_app_flips(
    project: pytest.Pytester, webhook: Webhook
) -> None:
    args = ("--klaud-alert", webhook.url(), "--klaud-alert-on", "new-failures")
    evaluate(project, *args)  # the same outcomes as the baseline
    assert webhook.received == []
    evaluate(project, *args, failing={"app05"})
    [(_, _, payload)] = webhook.received
    assert payload["title"] == "klaudbiusz manual: 1 app went from pass to fail"
    assert "pass -> fail: 1: app05 (tests_pass)" in payload["message"]


def test_a_passing_gate_sends_nothing(project: pytest.Pytester, webhook: Webhook) -> None:
    result = evaluate(project, "--klaud-max-new-failures", "0", "--klaud-alert", webhook.url())
    assert result.ret == pytest.ExitCode.OK
    assert webhook.received == []
    assert "alert" not in result.stdout.str()


def test_a_receiver_that_is_down_is_a_warning_and_keeps_the_verdict(
    project: pytest.Pytester, closed_port: int
) -> None:
    url = f"json://127.0.0.1:{closed_port}/hook"
    result = evaluate(
        project, "--klaud-max-new-failures", "0", "--klaud-alert", url, "--klaud-alert-on", "always"
    )
    assert result.ret == pytest.ExitCode.OK
    [line] = [line for line in result.stdout.lines if "alert" in line]
    assert line.startswith(f"WARNING: alert to json://127.0.0.1:{closed_port} not delivered: ")
    assert read_report(project.path / "app-eval")["gate"]["verdict"] == "passed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--klaud-alert-on", "sometimes"), "--klaud-alert-on 'sometimes': use one of gate, *"),
        (
            ("--klaud-alert", "json://${NOT_SET_ANYWHERE}@127.0.0.1/x"),
            "*${NOT_SET_ANYWHERE} is not set*",
        ),
        (
            ("--klaud-alert", "bogus://x"),
            "--klaud-alert bogus://***: not a URL Apprise can send to*",
        ),
        (
            ("--klaud-alert", "json://127.0.0.1/x", "--klaud-alert-on", "new-failures"),
            "--klaud-alert-on new-failures needs a baseline*",
        ),
    ],
)
def test_bad_alert_settings_stop_before_any_app_runs(
    pytester: pytest.Pytester, args: tuple[str, ...], message: str
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_evals=TEST_FILE)
    write_apps(pytester.path, APPS[:1])
    result = pytester.runpytest("-p", "no:cacheprovider", NO_TRACKING, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert not (pytester.path / "app-eval" / "evaluation_report.json").exists()


def test_merge_alerts_with_the_mlflow_run(
    pytester: pytest.Pytester, webhook: Webhook, _initialised_mlflow_db: Path
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_evals=TEST_FILE)
    write_apps(pytester.path, APPS, failing_tests={"app01"})
    for number, selection in enumerate(("app00 or app01", "not (app00 or app01)"), 1):
        shard = pytester.runpytest("-p", "no:cacheprovider", NO_TRACKING, "-k", selection,
                                   "--klaud-report-dir", f"shard{number}")  # fmt: skip
        assert shard.ret == pytest.ExitCode.TESTS_FAILED
    shutil.copyfile(_initialised_mlflow_db, pytester.path / "mlflow.db")
    result = run(
        pytester,
        "--klaud-merge", "shard1", "shard2",
        "--klaud-tracking-uri", f"sqlite:///{pytester.path}/mlflow.db",
        "--klaud-alert", webhook.url(), "--klaud-alert-on", "always",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    run_id = read_report(pytester.path / "app-eval")["run"]["mlflow_run_id"]
    [(_, _, payload)] = webhook.received
    assert payload["title"] == "klaudbiusz manual: evaluation finished"
    assert f"MLflow run {run_id} in experiment /Shared/klaudbiusz-evaluations" in payload["message"]
    result.stdout.fnmatch_lines([f"alert sent to json://127.0.0.1:{webhook.port}"])


# --- the pure parts -------------------------------------------------------------------------


def test_shown_and_masked_command_keep_only_scheme_and_host() -> None:
    assert alerts.shown("slack://TokenA/TokenB/TokenC") == "slack://***"  # a token, not a host
    assert alerts.shown("json://u:pw@h.example:1/p?x=1") == "json://h.example:1"
    assert alerts.shown("mailto://${USER}:${PW}@smtp.example.com") == "mailto://smtp.example.com"
    assert alerts.masked_command(
        ["-x", "--klaud-alert", "json://u:pw@10.0.0.1/p", "--klaud-alert=discord://id/token", "a"]
    ) == ["-x", "--klaud-alert", "json://10.0.0.1", "--klaud-alert=discord://***", "a"]


def test_expand_reads_the_environment() -> None:
    assert alerts.expand("json://${A}@h/${B}", {"A": "x", "B": "y"}) == "json://x@h/y"
    with pytest.raises(alerts.AlertError, match=r"\$\{B\} is not set"):
        alerts.expand("json://${A}@h/${B}", {"A": "x"})


def test_run_link_is_the_ui_page_when_the_target_has_one() -> None:
    run = {
        "mlflow_run_id": "abc",
        "tracking_uri": "https://u:p@mlflow.example.com/",
        "experiment": "e",
    }
    assert alerts.run_link(run, "7", {}) == (
        "MLflow run: https://mlflow.example.com/#/experiments/7/runs/abc"
    )
    databricks = {**run, "tracking_uri": "databricks"}
    assert alerts.run_link(databricks, "7", {"DATABRICKS_HOST": "dbc.example.com"}) == (
        "MLflow run: https://dbc.example.com/ml/experiments/7/runs/abc"
    )
    sqlite = {**run, "tracking_uri": "sqlite:///m.db"}
    assert alerts.run_link(sqlite, None, {}).startswith("MLflow run abc in experiment e at sqlite")
