"""Per-app traces, assessments, descriptions and registered generators, read back through
MLflow's public API from the SQLite store and from a real ``mlflow server``."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
from helpers import (
    STARTED,
    MlflowServer,
    make_app,
    make_report,
    make_suite,
    read_report,
    run,
    write_files,
)
from mlflow.tracking import MlflowClient
from mlflow_proxy import CountingProxy

from pytest_klaudbiusz.results.metrics import CHECKS
from pytest_klaudbiusz.tracking.outbox import Outbox, send_waiting
from pytest_klaudbiusz.tracking.registry import (
    Champion,
    RegisterRequest,
    decide_champion,
    register_generator,
)
from pytest_klaudbiusz.tracking.runs import TrackingError, _ms, log_report
from pytest_klaudbiusz.tracking.store import configure_mlflow_environment
from pytest_klaudbiusz.tracking.traces import app_traces

T0 = _ms(STARTED) / 1000 + 5  # seconds: the first stage starts 5 s into the run


@pytest.fixture(autouse=True)
def _fail_fast_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    environ: dict[str, str] = {}
    configure_mlflow_environment(environ)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)


def staged_report(n_apps: int, evaluation_id: str | None = None) -> dict[str, Any]:
    """``make_report`` with timed stages, a null check and recorded values on each app."""
    report = make_report(n_apps)
    report["run"]["evaluation_id"] = evaluation_id or uuid.uuid4().hex
    report["run"]["dataset"] = {"name": "apps", "digest": "d1gest", "apps": n_apps}
    for i, app in enumerate(report["apps"]):
        if app["status"] != "evaluated":
            continue
        passing = app["metrics"]["build_success"]
        app["metrics"]["data_returned"] = None  # not checked: no feedback
        app["custom_metrics"] = {"latency_ms": 10.0 * i, "appeval_100": 1.0}  # name taken
        start = T0 + i
        app["stages"] = [
            {"name": "install", "outcome": "passed", "duration_sec": 1.5, "started_at": start,
             "command": "npm ci", "exit_code": 0, "log_tail": "added 12 packages"},
            {"name": "build", "outcome": "passed" if passing else "failed", "duration_sec": 2.0,
             "started_at": start + 1.5, "command": "npm run build", "reason":
             "" if passing else "exited non-zero", "exit_code": 0 if passing else 2,
             "log_tail": "" if passing else "error TS2304 ***"},
            {"name": "runtime", "outcome": "passed" if passing else "skipped", "duration_sec":
             0.5 if passing else 0.0, "started_at": start + 3.5 if passing else None,
             "reason": "" if passing else "build failed"},
        ]  # fmt: skip
    return report


def traces_of(uri: str, run_id: str) -> list[Any]:
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.get_run(run_id).info.experiment_id
    return list(client.search_traces(run_id=run_id, locations=[experiment_id]))


def assert_traces_match(report: dict[str, Any], traces: list[Any]) -> None:
    """One trace per app; a span per stage at its recorded times; assessments = report."""
    by_name = {t.info.tags["mlflow.traceName"]: t for t in traces}
    assert sorted(by_name) == sorted(app["app_name"] for app in report["apps"])
    for app in report["apps"]:
        trace = by_name[app["app_name"]]
        assert trace.info.tags["klaud_evaluation_id"] == report["run"]["evaluation_id"]
        root, *stages = sorted(trace.data.spans, key=lambda s: s.parent_id is not None)
        assert root.parent_id is None and root.inputs["app_name"] == app["app_name"]
        assert root.outputs["metrics"] == app["metrics"]
        by_stage = {s.name: s for s in stages}
        assert sorted(by_stage) == sorted(s["name"] for s in app["stages"])
        for stage in app["stages"]:
            span = by_stage[stage["name"]]
            assert span.outputs["outcome"] == stage["outcome"]
            assert span.outputs["exit_code"] == stage.get("exit_code")
            if stage.get("started_at"):
                took = (span.end_time_ns - span.start_time_ns) / 1e9
                assert abs(span.start_time_ns / 1e9 - stage["started_at"]) < 1e-3
                assert abs(took - stage["duration_sec"]) < 1e-3
        feedback = {a.name: a for a in trace.info.assessments}
        expected = {c: app["metrics"][c] for c in CHECKS if app["metrics"].get(c) is not None}
        for score in ("local_runability_score", "deployability_score", "appeval_100"):
            if app["metrics"].get(score) is not None:
                expected[score] = float(app["metrics"][score])
        for name, value in (app.get("custom_metrics") or {}).items():
            expected["custom_appeval_100" if name == "appeval_100" else name] = value
        assert {name: a.value for name, a in feedback.items()} == expected
        assert {a.source.source_type for a in feedback.values()} <= {"CODE"}
        if app["metrics"].get("build_success") is False:
            assert feedback["build_success"].rationale == "exited non-zero"


def test_app_traces_are_plain_data_from_the_report() -> None:
    report = staged_report(3, "ev-1")
    traces = app_traces(report)
    again = app_traces(report)

    assert [t.trace_id for t in traces] == [t.trace_id for t in again]  # a resend: same ids
    infra, failing, passing = traces  # make_report: app 1 fails, app 2 passes
    assert infra.stages == [] and not infra.ok and infra.verdicts == []
    assert infra.outputs["error"] == "no npm"
    assert passing.ok and not failing.ok
    install, build, runtime = failing.stages
    assert (build.start_ns, build.end_ns) == (round((T0 + 2.5) * 1e9), round((T0 + 4.5) * 1e9))
    assert (build.status, runtime.status) == ("ERROR", "UNSET")
    assert runtime.start_ns == build.end_ns  # a stage that never ran sits where it would have
    assert failing.start_ns == install.start_ns and failing.end_ns == build.end_ns
    names = [v.name for v in failing.verdicts]
    assert "data_returned" not in names  # null: not written
    assert names[-2:] == ["custom_appeval_100", "latency_ms"]
    assert failing.inputs["commands"] == {"install": "npm ci", "build": "npm run build"}


def test_sqlite_run_has_a_trace_per_app_with_its_assessments(sqlite_tracking_uri: str) -> None:
    report = staged_report(5)
    experiment = "/Shared/traces"

    run_id = log_report(report, [], sqlite_tracking_uri, experiment)

    assert_traces_match(report, traces_of(sqlite_tracking_uri, run_id))
    client = MlflowClient(tracking_uri=sqlite_tracking_uri)
    note = client.get_run(run_id).data.tags["mlflow.note.content"]
    assert "| build_success_rate | 50.0% | 2 / 4 |" in note
    assert "| app 001 | build_success, runtime_success" in note  # needs attention
    assert "app 002" not in note  # passed everything
    described = client.get_experiment_by_name(experiment)
    assert "Evaluations of AI-generated apps" in described.tags["mlflow.note.content"]

    quiet = log_report(staged_report(2), [], sqlite_tracking_uri, experiment, traces=False)
    assert traces_of(sqlite_tracking_uri, quiet) == []


@pytest.fixture
def proxy(mlflow_server: MlflowServer) -> Iterator[CountingProxy]:
    proxy = CountingProxy(mlflow_server.uri)
    yield proxy
    proxy.stop()


def test_server_traces_batch_spans_and_images_render(
    proxy: CountingProxy, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    experiment = f"/Shared/traces-{uuid.uuid4().hex[:8]}"
    log_report(staged_report(1), [], proxy.uri, experiment)  # the experiment exists
    report = staged_report(60)
    files = write_files(report, tmp_path / "app-eval")
    files[1].write_text("# Report\n\n![rates of the last 3 mcp runs](trend.png)\n")
    png = tmp_path / "app-eval" / "trend.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    proxy.requests.clear()

    run_id = log_report(report, [*files, png], proxy.uri, experiment)

    assert_traces_match(report, traces_of(mlflow_server.uri, run_id))
    started = [r for r in proxy.requests if r.endswith("/mlflow/traces")]
    spans = [r for r in proxy.requests if "/v1/traces" in r]
    assert (len(started), len(spans)) == (60, 2)  # one per app; spans 50 apps a request
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    markdown = Path(client.download_artifacts(run_id, "EVALUATION_REPORT.md", str(tmp_path)))
    link = f"{proxy.uri}/get-artifact?path=trend.png&run_uuid={run_id}"
    assert f"![rates of the last 3 mcp runs]({link})" in markdown.read_text()
    with urllib.request.urlopen(link, timeout=10) as answer:  # the preview's image loads
        assert answer.read() == png.read_bytes()


def test_a_resend_replaces_the_traces_of_a_partial_send(
    proxy: CountingProxy, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    experiment = f"/Shared/resend-{uuid.uuid4().hex[:8]}"
    report = staged_report(4)
    files = write_files(report, tmp_path / "app-eval")
    outbox = Outbox(tmp_path / "outbox")
    outbox.put(report, files, proxy.uri, experiment)
    proxy.mode, proxy.healthy_until = "drop", "/mlflow/traces"  # dies mid-traces

    [failed], _ = send_waiting(outbox, proxy.uri)
    assert failed.error is not None
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    partial = client.search_traces(locations=[experiment_id], include_spans=False)
    assert partial  # what the partial send wrote (requests run in parallel: one or more)

    proxy.mode, proxy.healthy_until = "forward", None
    [sent], _ = send_waiting(outbox, proxy.uri)

    assert sent.error is None and sent.run_id
    every = client.search_traces(locations=[experiment_id], include_spans=False)
    assert len(every) == 4  # the partial send's traces were replaced, not added to
    assert_traces_match(report, traces_of(mlflow_server.uri, sent.run_id))


def test_champion_rule() -> None:
    held = Champion("3", 0.74, "d")
    assert decide_champion(True, 0.712, "d", held) == (
        False,
        "champion stays version 3: 71.2% vs 74.0%",
    )
    assert decide_champion(True, 0.8, "d", held)[0]
    assert decide_champion(False, 0.9, "d", held) == (
        False,
        "champion stays version 3: the quality gate did not pass",
    )
    assert not decide_champion(True, 0.9, "other", held)[0]
    assert decide_champion(True, 0.1, "d", None) == (True, "it is the first champion")


def gated(score: float, verdict: str, digest: str = "d1gest") -> dict[str, Any]:
    report = staged_report(2)
    report["summary"]["overall_quality_score"] = score
    report["run"]["dataset"]["digest"] = digest
    report["gate"] = {"verdict": verdict, "rules": []}
    return report


def test_registered_versions_and_the_champion_alias(
    sqlite_tracking_uri: str, tmp_path: Path
) -> None:
    config = tmp_path / "generator.yaml"
    config.write_text("model: claude\ntemperature: 0\n")
    request = RegisterRequest("app-generator", config)
    client = MlflowClient(tracking_uri=sqlite_tracking_uri)
    lines = []
    for report in (
        gated(0.50, "passed"),
        gated(0.40, "passed"),  # worse
        gated(0.90, "failed"),  # better, but the gate failed
        gated(0.95, "passed", digest="other"),  # better, on other apps
        gated(0.80, "passed"),  # better
    ):
        report["run"]["experiment"] = "/Shared/registry"
        run_id = log_report(report, [], sqlite_tracking_uri, "/Shared/registry", traces=False)
        lines.append(register_generator(sqlite_tracking_uri, run_id, report, request))

    assert lines == [
        "registered app-generator version 1; it is the first champion",
        "registered app-generator version 2; champion stays version 1: 40.0% vs 50.0%",
        "registered app-generator version 3; champion stays version 1: the quality gate did"
        " not pass",
        "registered app-generator version 4; champion stays version 1: it was evaluated on"
        " other apps (dataset digest differs)",
        "registered app-generator version 5; champion moves to it from version 1: 80.0% vs 50.0%",
    ]
    champion = client.get_model_version_by_alias("app-generator", "champion")
    assert str(champion.version) == "5" and champion.tags["overall_quality_score"] == "0.8"
    model_id = champion.tags["logged_model_id"]
    model = client.get_logged_model(model_id)
    assert model.source_run_id == champion.run_id
    assert model.params == {"mode": "mcp", "model_version": "None"}
    linked = {m.key: m.value for m in model.metrics or []}
    assert linked["overall_quality_score"] == 0.8
    assert {m.dataset_digest for m in model.metrics or []} == {"d1gest"}
    artifacts = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{model.artifact_location}/generator.yaml", dst_path=str(tmp_path / "m")
    )
    assert Path(artifacts).read_text() == config.read_text()


def test_register_failure_is_one_line(sqlite_tracking_uri: str) -> None:
    report = gated(0.5, "passed")
    with pytest.raises(TrackingError, match=r"^MLflow registering the generator as g failed at"):
        register_generator(sqlite_tracking_uri, "0" * 32, report, RegisterRequest("g", None))


def test_an_evaluation_writes_traces_with_real_stage_times_and_registers(
    pytester: pytest.Pytester, sqlite_tracking_uri: str
) -> None:
    make_app(pytester.path, "good")
    make_app(pytester.path, "broken", build="exit 3")
    make_suite(pytester)
    config = pytester.path / "gen.toml"
    config.write_text("temperature = 0\n")

    result = run(
        pytester,
        "--klaud-tracking-uri", sqlite_tracking_uri,
        "--klaud-register", "gen",
        "--klaud-generation-config", "gen.toml",
    )  # fmt: skip

    result.stdout.fnmatch_lines(["registered gen version 1; no champion yet: *"])
    report = read_report(pytester.path / "app-eval")
    traces = traces_of(sqlite_tracking_uri, report["run"]["mlflow_run_id"])
    assert_traces_match(report, traces)
    run_start, run_end = (_ms(report["run"][k]) / 1000 for k in ("started_at", "finished_at"))
    for app in report["apps"]:
        ran = [
            s for s in app["stages"] if s["outcome"] in ("passed", "failed") and s.get("command")
        ]
        assert ran and all(run_start - 1 <= s["started_at"] <= run_end + 1 for s in ran)

    quiet = run(pytester, "--klaud-tracking-uri", sqlite_tracking_uri, "--klaud-no-traces")
    assert quiet.ret == 1  # the broken app fails its case
    report = read_report(pytester.path / "app-eval")
    assert traces_of(sqlite_tracking_uri, report["run"]["mlflow_run_id"]) == []
