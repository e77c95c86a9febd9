"""Tracking that fails keeps the evaluation in the outbox, and it is sent later exactly once.

Through a proxy in front of a real ``mlflow server``: the proxy refuses the credentials,
never answers, drops the connection part-way through a run or loses an answer, then
forwards again.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from helpers import MlflowServer, make_app, make_suite, read_report, run
from mlflow.tracking import MlflowClient
from mlflow_proxy import CountingProxy

from pytest_klaudbiusz.tracking.outbox import ENTRY_FILE, Outbox
from pytest_klaudbiusz.tracking.runs import _ms


@pytest.fixture
def proxy(mlflow_server: MlflowServer) -> Any:
    proxy = CountingProxy(mlflow_server.uri)
    yield proxy
    proxy.stop()


def evaluation(pytester: pytest.Pytester, uri: str, experiment: str, *args: str) -> Any:
    return run(pytester, "--klaud-tracking-uri", uri, "--klaud-experiment", experiment, *args)


def runs_of(server: MlflowServer, experiment: str) -> list[Any]:
    client = MlflowClient(tracking_uri=server.uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


def one_good_app(pytester: pytest.Pytester) -> str:
    """A suite of one passing app; returns a fresh experiment name for it."""
    make_app(pytester.path, "good")
    make_suite(pytester)
    return f"/Shared/outbox-{uuid.uuid4().hex[:8]}"


def outbox_entries(pytester: pytest.Pytester) -> list[Path]:
    folder = pytester.path / ".klaud-outbox"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_refused_credentials_keep_the_run_until_upload_sends_it_once(
    pytester: pytest.Pytester, proxy: CountingProxy, mlflow_server: MlflowServer
) -> None:
    experiment = one_good_app(pytester)
    proxy.mode = "deny"

    result = evaluation(pytester, proxy.uri, experiment)

    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK  # tracking is not the apps' quality
    report = read_report(pytester.path / "app-eval")
    [entry] = outbox_entries(pytester)
    assert entry.name == report["run"]["evaluation_id"]
    kept = json.loads((entry / "evaluation_report.json").read_text())
    assert kept["apps"] == report["apps"]
    assert "401" in json.loads((entry / ENTRY_FILE).read_text())["error"]
    result.stdout.fnmatch_lines(
        ["MLflow tracking failed: *-- the reports are kept; the evaluation waits in the outbox*"]
    )
    assert runs_of(mlflow_server, experiment) == []

    proxy.mode = "forward"
    upload = run(pytester, "--klaud-upload", "--klaud-tracking-uri", proxy.uri)

    assert upload.ret == 0, upload.stdout.str()
    upload.stdout.fnmatch_lines(["outbox: sent eval_manual_* as MLflow run *"])
    [logged] = runs_of(mlflow_server, experiment)
    assert logged.info.status == "FINISHED"
    assert logged.info.start_time == _ms(report["run"]["started_at"])  # its own time
    assert logged.info.end_time == _ms(report["run"]["finished_at"])
    assert logged.data.tags["klaud_evaluation_id"] == report["run"]["evaluation_id"]
    assert logged.data.metrics["total_apps"] == 1
    assert outbox_entries(pytester) == []

    again = run(pytester, "--klaud-upload", "--klaud-tracking-uri", proxy.uri)
    again.stdout.fnmatch_lines(["the outbox * is empty: nothing to upload"])
    for same_mode in ((), ("--klaud-mode", "manual")):  # the report's own mode: no relabel
        by_file = run(
            pytester,
            "--klaud-upload",
            "app-eval/evaluation_report.json",
            "--klaud-tracking-uri",
            proxy.uri,
            "--klaud-experiment",
            experiment,
            *same_mode,
        )
        by_file.stdout.fnmatch_lines(
            [f"* is already in MLflow as run {logged.info.run_id}: not logged again"]
        )
    assert len(runs_of(mlflow_server, experiment)) == 1
    relabel = ("--klaud-upload", "app-eval/evaluation_report.json", "--klaud-mode", "mcp")
    tracking = ("--klaud-tracking-uri", proxy.uri, "--klaud-experiment", experiment)
    first, second = (run(pytester, *relabel, *tracking) for _ in range(2))
    first.stdout.fnmatch_lines(["logged app-eval/evaluation_report.json as MLflow run *"])
    second.stdout.fnmatch_lines(["* is already in MLflow as run *: not logged again"])
    assert sorted(r.data.tags["mode"] for r in runs_of(mlflow_server, experiment)) == [
        "manual",
        "mcp",
    ]  # another mode is another evaluation, logged once


def test_server_dying_mid_run_is_made_good_by_the_next_tracked_run(
    pytester: pytest.Pytester, proxy: CountingProxy, mlflow_server: MlflowServer
) -> None:
    experiment = one_good_app(pytester)
    proxy.mode, proxy.healthy_until = "drop", "runs/create"  # the server dies mid-run

    first = evaluation(pytester, proxy.uri, experiment)

    assert first.ret == pytest.ExitCode.OK
    first_report = read_report(pytester.path / "app-eval")
    [partial] = runs_of(mlflow_server, experiment)
    assert partial.info.status != "FINISHED"  # what the dying server was left with
    assert first_report["run"]["mlflow_run_id"] is None  # the report never names it
    assert "mlflow run:" not in first.stdout.str()
    assert len(outbox_entries(pytester)) == 1

    proxy.mode, proxy.healthy_until = "forward", None
    second = evaluation(pytester, proxy.uri, experiment)

    assert second.ret == pytest.ExitCode.OK
    second.stdout.fnmatch_lines(["outbox: sent eval_manual_* (kept since *) as MLflow run *"])
    second_report = read_report(pytester.path / "app-eval")
    runs = runs_of(mlflow_server, experiment)
    assert sorted(r.data.tags["klaud_evaluation_id"] for r in runs) == sorted(
        [first_report["run"]["evaluation_id"], second_report["run"]["evaluation_id"]]
    )  # each evaluation exactly once: the partial run was replaced
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert partial.info.run_id not in {r.info.run_id for r in runs}
    assert outbox_entries(pytester) == []


def test_a_lost_answer_to_the_final_update_leaves_one_run(
    pytester: pytest.Pytester, proxy: CountingProxy, mlflow_server: MlflowServer
) -> None:
    """The server ends the run but its answer never arrives: the plugin cannot know the
    run is whole, keeps the evaluation, and the resend still leaves exactly one run."""
    experiment = one_good_app(pytester)
    proxy.mode, proxy.healthy_until = "lose-reply", "runs/set-tag"  # then runs/update

    first = evaluation(pytester, proxy.uri, experiment)

    assert first.ret == pytest.ExitCode.OK
    assert any("runs/update" in r for r in proxy.requests)  # it reached the server
    assert len(outbox_entries(pytester)) == 1
    proxy.mode, proxy.healthy_until = "forward", None
    upload = run(pytester, "--klaud-upload", "--klaud-tracking-uri", proxy.uri)

    assert upload.ret == 0, upload.stdout.str()
    [logged] = runs_of(mlflow_server, experiment)
    assert logged.info.status == "FINISHED"
    evaluation_id = read_report(pytester.path / "app-eval")["run"]["evaluation_id"]
    assert logged.data.tags["klaud_evaluation_id"] == evaluation_id
    assert outbox_entries(pytester) == []


def test_a_server_that_never_answers_costs_bounded_time(
    pytester: pytest.Pytester, proxy: CountingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The evaluation finishes (the subprocess's own timeout bounds this test) and keeps
    the run; MLflow's HTTP timeout and retries are what bound it."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    experiment = one_good_app(pytester)
    proxy.mode = "hang"

    result = evaluation(pytester, proxy.uri, experiment)

    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["MLflow tracking failed: *timed out*waits in the outbox*"])
    assert len(outbox_entries(pytester)) == 1


def test_entries_for_another_tracking_target_stay(
    pytester: pytest.Pytester, proxy: CountingProxy, mlflow_server: MlflowServer
) -> None:
    experiment = one_good_app(pytester)
    proxy.mode = "deny"
    evaluation(pytester, proxy.uri, experiment)

    upload = run(pytester, "--klaud-upload", "--klaud-tracking-uri", mlflow_server.uri)

    upload.stdout.fnmatch_lines(
        [f"outbox: 1 evaluation(s) wait for another tracking target ({proxy.uri}):*"]
    )
    assert len(outbox_entries(pytester)) == 1
    assert runs_of(mlflow_server, experiment) == []


def test_outbox_entries_are_whole_and_oldest_first(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox")
    assert outbox.entries() == []
    files = []
    for name in ("evaluation_report.json", "EVALUATION_REPORT.md"):
        (tmp_path / name).write_text("{}")
        files.append(tmp_path / name)
    reports = [
        {"run": {"evaluation_id": eid, "mode": "mcp", "started_at": "2026-11-26T08:00:00Z"}}
        for eid in ("b", "a")
    ]
    first = outbox.put(reports[0], files, "http://server", "/Shared/x")
    second = outbox.put(reports[1], files, "http://server", "/Shared/x")
    (outbox.root / "c.tmp").mkdir()  # a put that never finished
    (outbox.root / "d").mkdir()  # not an entry
    assert {p.name for p in first.folder.iterdir()} == {*(f.name for f in files), ENTRY_FILE}
    for entry, saved_at, order in ((first, "2099", ["a", "b"]), (second, "2100", ["b", "a"])):
        entry_file = entry.folder / ENTRY_FILE
        data = json.loads(entry_file.read_text()) | {"saved_at": f"{saved_at}-01-01T00:00:00Z"}
        entry_file.write_text(json.dumps(data))
        assert [e.folder.name for e in outbox.entries()] == order  # oldest first
    outbox.note_error(first, "connection refused")
    assert {e.folder.name: e.error for e in outbox.entries()}["b"] == "connection refused"
    outbox.remove(first)
    assert [e.folder.name for e in outbox.entries()] == ["a"]
    assert first.run_name == "eval_mcp_2026-11-26T08:00:00Z"
