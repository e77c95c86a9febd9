"""The programmatic API (``EvaluationTracker``, ``track_evaluation``) against real stores.

The API and the plugin must log the same run from the same report; that comparison, on a
real evaluation of the sample corpus, is in ``test_metrics_e2e.py``. Here: the API's own
contract, the lazy export, and the fluent-API interplay the seed's "Custom Metrics" uses.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from helpers import FINISHED, STARTED

from pytest_klaudbiusz.results.aggregate import build_report
from pytest_klaudbiusz.results.metrics import CHECKS
from pytest_klaudbiusz.results.model import AppResult
from pytest_klaudbiusz.tracking.store import configure_mlflow_environment

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


EXPERIMENT = "/Shared/api-tests"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """The plugin's MLflow environment, a private cwd (``.env``, ``./mlflow.db``), and MLflow's
    global tracking URI put back afterwards (the fluent API sets it, and its env variable)."""
    environ: dict[str, str] = {}
    configure_mlflow_environment(environ)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "DATABRICKS_HOST"):
        monkeypatch.delenv(name, raising=False)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    yield
    if "mlflow" in sys.modules:
        import mlflow

        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]


def client_for(uri: str) -> MlflowClient:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def sample_report(mode: str = "mcp") -> dict[str, Any]:
    apps = [
        AppResult(
            app_name=f"app-{i}",
            app_dir=f"/apps/app-{i}",
            template_type="trpc",
            metrics={**dict.fromkeys(CHECKS, i != 1), "local_runability_score": 4,
                     "deployability_score": 5, "appeval_100": 90.0 if i != 1 else 3.0},
            issues=[] if i != 1 else ["build: exited non-zero"],
            generation_metrics={"cost_usd": 0.5, "input_tokens": 100, "output_tokens": 10,
                                "turns": 3},
            custom_metrics={"lighthouse_score": 90.0 + i},
        )
        for i in range(3)
    ]  # fmt: skip
    run = {
        "mode": mode,
        "started_at": STARTED,
        "finished_at": FINISHED,
        "plugin_version": "0.1.0",
        "pytest_version": "9.9.9",
        "python_version": "3.11.0",
        "git_commit": "abc123",
        "git_branch": "main",
        "model_version": "claude-test",
        "command": "pytest evals/ --klaud-mode=mcp",
        "apps_dir": "/apps",
        "dataset": {"name": "apps", "source": "/apps", "digest": "0" * 32, "apps": 3,
                    "files": 9, "bytes": 900},
        "mlflow_run_id": None,
        "tracking_uri": None,
        "experiment": None,
    }  # fmt: skip
    return build_report(apps, run)


# --- the package export ------------------------------------------------------------------


def test_package_exports_are_lazy_and_never_import_mlflow() -> None:
    code = (
        "import sys\n"
        "import pytest_klaudbiusz, pytest_klaudbiusz.plugin\n"
        "print('api' in dir(pytest_klaudbiusz), 'pytest_klaudbiusz.tracking.api' in sys.modules)\n"
        "from pytest_klaudbiusz import EvaluationTracker, TrackingError, track_evaluation\n"
        "print(EvaluationTracker.__module__, track_evaluation.__module__, TrackingError.__name__)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'mlflow', 'pandas'}))\n"
        "print('EvaluationTracker' in dir(pytest_klaudbiusz))\n"
        "try:\n"
        "    pytest_klaudbiusz.NoSuchThing\n"
        "except AttributeError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.splitlines() == [
        "False False",  # loading the plugin imports no API module
        "pytest_klaudbiusz.tracking.api pytest_klaudbiusz.tracking.api TrackingError",
        "[]",  # and the API imports no mlflow until it talks to MLflow
        "True",
        "module 'pytest_klaudbiusz' has no attribute 'NoSuchThing'",
    ]


# --- EvaluationTracker ----------------------------------------------------------------------


def test_step_by_step_run_as_in_the_seed(sqlite_tracking_uri: str, tmp_path: Path) -> None:
    from pytest_klaudbiusz import EvaluationTracker

    report_file = tmp_path / "report.json"
    report_file.write_text(json.dumps(sample_report()))
    tracker = EvaluationTracker(experiment_name=EXPERIMENT, tracking_uri=sqlite_tracking_uri)

    run_id = tracker.start_run("my_run", tags={"version": "1.0"})
    tracker.log_evaluation_parameters(
        mode="custom", total_apps=20, timestamp="2025-10-22T12:00:00Z"
    )
    logged = tracker.log_evaluation_metrics(sample_report())
    tracker.log_artifact_file(report_file)
    tracker.end_run()

    run = client_for(sqlite_tracking_uri).get_run(run_id)
    assert run.info.run_name == "my_run"
    assert run.info.status == "FINISHED"
    assert run.data.params == {
        "mode": "custom",
        "total_apps": "20",
        "timestamp": "2025-10-22T12:00:00Z",
        "model_version": "unknown",
    }
    tags = run.data.tags
    assert {k: tags[k] for k in ("framework", "run_name", "version", "mode")} == {
        "framework": "klaudbiusz",
        "run_name": "my_run",
        "version": "1.0",
        "mode": "custom",
    }
    assert tags["plugin_version"] == "0.1.0" and tags["mlflow_version"].startswith("3.")
    summary = sample_report()["summary"]
    expected = {k: float(v) for k, v in summary.items() if v is not None}
    assert run.data.metrics == expected == logged
    assert expected["avg_lighthouse_score"] == 91.0
    artifacts = client_for(sqlite_tracking_uri).list_artifacts(run_id)
    assert [a.path for a in artifacts] == ["report.json"]
    assert tracker.run_id is None


def test_context_manager_ends_the_run_failed_on_error(sqlite_tracking_uri: str) -> None:
    from pytest_klaudbiusz import EvaluationTracker

    with EvaluationTracker(EXPERIMENT, sqlite_tracking_uri) as tracker:
        finished = tracker.start_run("ok")
    with (
        pytest.raises(RuntimeError, match="boom"),
        EvaluationTracker(EXPERIMENT, sqlite_tracking_uri) as tracker,
    ):
        failed = tracker.start_run("broken")
        raise RuntimeError("boom")

    client = client_for(sqlite_tracking_uri)
    assert client.get_run(finished).info.status == "FINISHED"
    assert client.get_run(failed).info.status == "FAILED"


def test_the_open_run_is_mlflows_active_run_for_custom_metrics(sqlite_tracking_uri: str) -> None:
    """The seed's "Custom Metrics": ``mlflow.log_metric`` between start_run and end_run."""
    import mlflow

    from pytest_klaudbiusz import EvaluationTracker

    before = mlflow.is_tracking_uri_set()  # type: ignore[no-untyped-call]
    tracker = EvaluationTracker(EXPERIMENT, sqlite_tracking_uri)
    run_id = tracker.start_run("custom_metrics_run")
    assert mlflow.active_run().info.run_id == run_id  # type: ignore[union-attr]
    mlflow.log_metric("custom_score", 0.95)
    mlflow.log_metric("my_metric", 42)
    tracker.log_metrics({"pass@1 (%)": 0.5})  # the tracker's own way, names made MLflow-safe
    tracker.end_run()

    assert mlflow.active_run() is None
    assert mlflow.is_tracking_uri_set() is before  # type: ignore[no-untyped-call]
    assert "MLFLOW_TRACKING_URI" not in os.environ
    run = client_for(sqlite_tracking_uri).get_run(run_id)
    assert run.data.metrics == {"custom_score": 0.95, "my_metric": 42.0, "pass_1 ___": 0.5}
    assert run.info.status == "FINISHED"


def test_a_callers_own_active_run_is_left_alone(sqlite_tracking_uri: str) -> None:
    import mlflow

    from pytest_klaudbiusz import EvaluationTracker

    mlflow.set_tracking_uri(sqlite_tracking_uri)
    with mlflow.start_run(run_name="outer") as outer:
        tracker = EvaluationTracker(EXPERIMENT, sqlite_tracking_uri)
        inner = tracker.start_run("inner")
        assert mlflow.active_run().info.run_id == outer.info.run_id  # type: ignore[union-attr]
        tracker.log_metrics({"x": 1})
        tracker.end_run()
        assert mlflow.active_run().info.run_id == outer.info.run_id  # type: ignore[union-attr]
    client = client_for(sqlite_tracking_uri)
    assert client.get_run(inner).data.metrics == {"x": 1.0}
    assert client.get_run(inner).info.status == "FINISHED"
    assert client.get_run(outer.info.run_id).data.metrics == {}


def test_misuse_is_a_one_line_tracking_error(sqlite_tracking_uri: str, tmp_path: Path) -> None:
    from pytest_klaudbiusz import EvaluationTracker, TrackingError

    tracker = EvaluationTracker(EXPERIMENT, sqlite_tracking_uri)
    with pytest.raises(TrackingError, match=r"^no run is open: call start_run\(\) first$"):
        tracker.log_metrics({"x": 1})
    run_id = tracker.start_run("one")
    with pytest.raises(TrackingError, match=f"^run {run_id} is still open"):
        tracker.start_run("two")
    with pytest.raises(TrackingError, match="no such file"):
        tracker.log_artifact_file(tmp_path / "missing.json")
    tracker.log_evaluation_parameters("mcp", 3, STARTED)
    with pytest.raises(TrackingError) as info:  # params cannot change once logged
        tracker.log_evaluation_parameters("vanilla_sdk", 3, STARTED)
    assert str(info.value).startswith(f"MLflow logging params failed at {sqlite_tracking_uri} (")
    assert "\n" not in str(info.value)
    tracker.end_run()
    tracker.end_run()  # nothing open: nothing to do
    with pytest.raises(TrackingError, match="reading run no-such-run failed"):
        tracker.compare_runs(["no-such-run"])


def test_unreachable_server_fails_at_construction_in_one_line(closed_port: int) -> None:
    from pytest_klaudbiusz import EvaluationTracker, TrackingError

    with pytest.raises(TrackingError, match="is unreachable \\(connection refused\\)"):
        EvaluationTracker(tracking_uri=f"http://127.0.0.1:{closed_port}")


def test_uri_and_experiment_resolve_as_in_the_plugin(
    monkeypatch: pytest.MonkeyPatch, sqlite_tracking_uri: str
) -> None:
    from pytest_klaudbiusz import EvaluationTracker

    default = EvaluationTracker()
    assert default.tracking_uri == f"sqlite:///{quote(str(Path.cwd() / 'mlflow.db'))}"
    assert default.experiment_name == "/Shared/klaudbiusz-evaluations"
    Path(".env").write_text(
        f"MLFLOW_TRACKING_URI={sqlite_tracking_uri}\nMLFLOW_EXPERIMENT_NAME=/Shared/dotenv\n"
    )
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "/Shared/from-env")  # the environment wins
    try:
        from_env = EvaluationTracker()
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)  # loaded from .env
    assert (from_env.tracking_uri, from_env.experiment_name) == (
        sqlite_tracking_uri,
        "/Shared/from-env",
    )


def test_compare_runs(sqlite_tracking_uri: str) -> None:
    from pytest_klaudbiusz import EvaluationTracker, track_evaluation

    first = track_evaluation(
        sample_report("mcp"), tracking_uri=sqlite_tracking_uri, experiment_name=EXPERIMENT
    )
    second = track_evaluation(
        sample_report("vanilla_sdk"), tracking_uri=sqlite_tracking_uri, experiment_name=EXPERIMENT
    )
    comparison = EvaluationTracker(EXPERIMENT, sqlite_tracking_uri).compare_runs([second, first])

    assert list(comparison) == [second, first]
    for run_id, mode in ((first, "mcp"), (second, "vanilla_sdk")):
        data = comparison[run_id]
        assert set(data) == {
            "run_name", "status", "start_time", "end_time", "metrics", "params", "tags"
        }  # fmt: skip
        assert data["run_name"] == f"eval_{mode}_{STARTED}"
        assert data["status"] == "FINISHED"
        assert data["params"]["mode"] == data["tags"]["mode"] == mode
        assert data["metrics"]["build_success_rate"] == pytest.approx(2 / 3)
        assert not any(key.startswith("mlflow.") for key in data["tags"])


# --- track_evaluation -----------------------------------------------------------------------


def test_track_evaluation_logs_a_report_file_like_the_plugin(
    sqlite_tracking_uri: str, tmp_path: Path
) -> None:
    from pytest_klaudbiusz import track_evaluation

    report = sample_report()
    path = tmp_path / "evaluation_report.json"
    path.write_text(json.dumps(report))

    run_id = track_evaluation(path, tracking_uri=sqlite_tracking_uri, experiment_name=EXPERIMENT)

    assert json.loads(path.read_text()) == report  # the user's file is not rewritten
    client = client_for(sqlite_tracking_uri)
    run = client.get_run(run_id)
    assert run.info.run_name == f"eval_mcp_{STARTED}"
    assert run.data.params == {
        "mode": "mcp",
        "total_apps": "3",
        "timestamp": STARTED,
        "model_version": "claude-test",
    }
    tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
    assert tags == {
        "framework": "klaudbiusz",
        "run_name": f"eval_mcp_{STARTED}",
        "mode": "mcp",
        "git_commit": "abc123",
        "git_branch": "main",
        "plugin_version": "0.1.0",
        "pytest_version": "9.9.9",
        "python_version": "3.11.0",
        "mlflow_version": tags["mlflow_version"],
        "command": "pytest evals/ --klaud-mode=mcp",
        "dataset_digest": "0" * 32,
    }
    [dataset_input] = run.inputs.dataset_inputs
    assert (dataset_input.dataset.name, dataset_input.dataset.digest) == ("apps", "0" * 32)
    assert json.loads(dataset_input.dataset.profile) == {"apps": 3, "files": 9, "bytes": 900}
    assert [(t.key, t.value) for t in dataset_input.tags] == [("mlflow.data.context", "evaluation")]
    assert {a.path for a in client.list_artifacts(run_id)} == {
        "evaluation_report.json",
        "EVALUATION_REPORT.md",
        "evaluation_report.csv",
        "apps_table.json",
    }
    uploaded = json.loads(
        Path(client.download_artifacts(run_id, "evaluation_report.json", str(tmp_path))).read_text()
    )
    assert uploaded["run"]["mlflow_run_id"] == run_id  # the uploaded copy knows its run
    assert uploaded["run"]["mlflow_version"] == tags["mlflow_version"]
    assert uploaded["apps"] == report["apps"]
    table = json.loads(
        Path(client.download_artifacts(run_id, "apps_table.json", str(tmp_path))).read_text()
    )
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    assert [(r["app_name"], r["lighthouse_score"], r["cost_usd"]) for r in rows] == [
        ("app-0", 90.0, 0.5),
        ("app-1", 91.0, 0.5),
        ("app-2", 92.0, 0.5),
    ]


def test_track_evaluation_of_a_dict_with_another_mode_leaves_the_dict_alone(
    sqlite_tracking_uri: str,
) -> None:
    from pytest_klaudbiusz import track_evaluation

    report = sample_report()
    before = copy.deepcopy(report)
    run_id = track_evaluation(
        report, mode="vanilla_sdk", tracking_uri=sqlite_tracking_uri, experiment_name=EXPERIMENT
    )
    assert report == before
    run = client_for(sqlite_tracking_uri).get_run(run_id)
    assert run.info.run_name == f"eval_vanilla_sdk_{STARTED}"
    assert run.data.params["mode"] == run.data.tags["mode"] == "vanilla_sdk"


@pytest.mark.parametrize(
    ("report", "mode", "error", "message"),
    [
        ({"summary": {}}, None, ValueError, "missing schema_version, run, counts, apps"),
        ({**sample_report(), "schema_version": 99}, None, ValueError, "schema_version 99"),
        (sample_report(), "mcp mode", ValueError, "invalid mode 'mcp mode'"),
        ([1, 2], None, TypeError, "a report is a path"),
    ],
)
def test_track_evaluation_refuses_what_is_not_a_report(
    report: Any, mode: str | None, error: type[Exception], message: str, tmp_path: Path
) -> None:
    from pytest_klaudbiusz import track_evaluation

    with pytest.raises(error, match=message.replace("(", r"\(")):
        track_evaluation(report, mode, tracking_uri=f"sqlite:///{tmp_path}/never.db")
    assert not (tmp_path / "never.db").exists()  # refused before MLflow was touched


def test_track_evaluation_of_a_missing_file(tmp_path: Path) -> None:
    from pytest_klaudbiusz import track_evaluation

    with pytest.raises(ValueError, match="cannot read"):
        track_evaluation(tmp_path / "nope.json", tracking_uri=f"sqlite:///{tmp_path}/x.db")
