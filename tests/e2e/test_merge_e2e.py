"""Sharded evaluations end to end: a whole run, the same corpus in shards (pytest-split
groups or ``-k`` selections), ``pytest --klaud-merge``, and the runs on a real MLflow server.

The synthetic apps and helpers come from ``test_plugin.py``; the report comparison that
ignores timings comes from ``test_plugin_xdist.py``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from helpers import (
    NO_TRACKING,
    MlflowServer,
    assert_same_report,
    make_app,
    make_suite,
    read_report,
    run,
)

if TYPE_CHECKING:
    from helpers import MlflowServer
    from mlflow.tracking import MlflowClient

#: (shard 1 args, shard 2 args) per way of sharding.
SHARDINGS = {
    "pytest-split": (("--splits", "2", "--group", "1"), ("--splits", "2", "--group", "2")),
    "keyword": (("-k", "good or café or failing"), ("-k", "not (good or café or failing)")),
}
VOLATILE_METRICS = {"avg_build_time_sec", "avg_startup_time_sec"}
VOLATILE_COLUMNS = {"build_time_sec", "startup_time_sec"}


def make_corpus(pytester: pytest.Pytester) -> None:
    make_app(pytester.path, "good")
    make_app(pytester.path, "empty-data", rows=())
    make_app(pytester.path, "failing-tests", test="exit 1")
    make_app(pytester.path, "no-start", start="", data=False)
    make_app(pytester.path, "café app")
    make_app(
        pytester.path,
        "with-generation-data",
        files={"generation_metrics.json": '{"cost_usd": 0.5, "input_tokens": 1000, "turns": 4}'},
    )
    make_suite(pytester)


def app_names(report: dict[str, Any]) -> set[str]:
    return {app["app_name"] for app in report["apps"]}


@pytest.mark.e2e
@pytest.mark.parametrize("sharding", SHARDINGS)
def test_merged_shards_equal_the_whole_run(pytester: pytest.Pytester, sharding: str) -> None:
    make_corpus(pytester)
    whole = run(pytester, NO_TRACKING, "--store-durations", "--klaud-report-dir", "whole")
    assert whole.ret == pytest.ExitCode.TESTS_FAILED, whole.stdout.str()
    assert (pytester.path / ".test_durations").is_file()  # what pytest-split balances by
    for number, args in enumerate(SHARDINGS[sharding], 1):
        shard = run(pytester, NO_TRACKING, "--klaud-report-dir", f"shard{number}", *args)
        assert shard.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)

    merged = run(pytester, NO_TRACKING, "--klaud-merge", "shard1", "shard2/evaluation_report.json",
                 "--klaud-report-dir", "merged")  # fmt: skip

    assert merged.ret == whole.ret, merged.stdout.str() + merged.stderr.str()  # failing apps
    merged.stdout.fnmatch_lines(["merged 2 shard reports (6 apps)", "apps: 6 total, *"])
    shards = [read_report(pytester.path / f"shard{n}") for n in (1, 2)]
    assert all(app_names(shard) for shard in shards)  # really split: apps in each
    whole_report = read_report(pytester.path / "whole")
    assert app_names(shards[0]) | app_names(shards[1]) == app_names(whole_report)
    result = read_report(pytester.path / "merged")
    assert_same_report(whole_report, result)
    assert result["run"]["dataset"] == whole_report["run"]["dataset"]
    assert result["run"]["corpus"] == whole_report["run"]["corpus"]
    assert [s["apps"] for s in result["run"]["shards"]] == [len(s["apps"]) for s in shards]
    assert result["run"]["started_at"] == min(s["run"]["started_at"] for s in shards)
    assert result["run"]["finished_at"] == max(s["run"]["finished_at"] for s in shards)
    for name in ("EVALUATION_REPORT.md", "evaluation_report.csv"):
        assert (pytester.path / "merged" / name).is_file()
    if sharding == "pytest-split":
        assert [s["run"]["shard"] for s in shards] == ["1/2", "2/2"]


@pytest.mark.e2e
def test_the_quality_gate_decides_the_exit_status_of_a_merge(pytester: pytest.Pytester) -> None:
    make_corpus(pytester)
    for number, args in enumerate(SHARDINGS["keyword"], 1):
        run(pytester, NO_TRACKING, "--klaud-report-dir", f"shard{number}", *args)
    merge = (NO_TRACKING, "--klaud-report-dir", "merged", "--klaud-merge", "shard1", "shard2")

    passing = run(pytester, *merge, "--klaud-fail-under", "build_success_rate=0.9")
    failing = run(pytester, *merge, "--klaud-fail-under", "data_returned_rate=0.9")

    assert passing.ret == pytest.ExitCode.OK, passing.stdout.str()  # though apps fail
    passing.stdout.fnmatch_lines(["*quality gate: PASSED*", "the gate decides the exit status: 0"])
    assert failing.ret == pytest.ExitCode.TESTS_FAILED, failing.stdout.str()
    failing.stdout.fnmatch_lines(
        ["*quality gate: FAILED*", "FAILED  data_returned_rate >= 0.9: measured 80.0%, limit 90.0%"]
    )
    assert read_report(pytester.path / "merged")["gate"]["verdict"] == "failed"


@pytest.mark.e2e
def test_merge_refuses_a_missing_or_duplicated_app_in_one_line(pytester: pytest.Pytester) -> None:
    make_corpus(pytester)
    for number, args in enumerate(SHARDINGS["keyword"], 1):
        run(pytester, NO_TRACKING, "--klaud-report-dir", f"shard{number}", *args)
    run(pytester, NO_TRACKING, "--klaud-report-dir", "other-mode", "--klaud-mode", "mcp",
        *SHARDINGS["keyword"][1])  # fmt: skip

    cases = {
        ("shard1",): "ERROR: app 'empty-data' of the corpus is in no shard (and 2 more): *",
        ("shard1", "shard2", "shard1"): "ERROR: app 'café app' is in two shards: */shard1/* and *",
        ("shard1", "other-mode"): "ERROR: shards of different modes: * is manual, * is mcp",
    }
    for reports, message in cases.items():
        result = run(
            pytester, NO_TRACKING, "--klaud-report-dir", "merged", "--klaud-merge", *reports
        )
        assert result.ret == pytest.ExitCode.USAGE_ERROR, reports
        errors = [line for line in result.stderr.lines if line.strip()]
        assert len(errors) == 1, result.stderr.str()
        result.stderr.fnmatch_lines([message])
    assert not (pytester.path / "out").exists()


@pytest.mark.e2e
def test_a_tracked_shard_needs_a_parent_run(pytester: pytest.Pytester) -> None:
    make_corpus(pytester)
    result = run(
        pytester, "--splits", "2", "--group", "1", "--klaud-tracking-uri", "sqlite:///x.db"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: this run is shard 1/2 of an evaluation: log it under*"])
    assert not (pytester.path / "app-eval").exists() and not (pytester.path / "x.db").exists()
    result = run(pytester, "--klaud-parent-run", "not an id!", NO_TRACKING)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --klaud-parent-run 'not an id!': not an MLflow run id*"])


def client_for(uri: str) -> MlflowClient:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def logged(client: MlflowClient, run_id: str, folder: Path) -> dict[str, Any]:
    """What a run holds, without what differs between two evaluations of the same apps."""
    run = client.get_run(run_id)
    table_file = client.download_artifacts(run_id, "apps_table.json", str(folder))
    table = json.loads(Path(table_file).read_text(encoding="utf-8"))
    columns = [c for c in table["columns"] if c not in VOLATILE_COLUMNS]
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    return {
        "metrics": {k: v for k, v in run.data.metrics.items() if k not in VOLATILE_METRICS},
        "params": {k: v for k, v in run.data.params.items() if k != "timestamp"},
        "table": [{c: row[c] for c in columns} for row in rows],
        "dataset": [i.dataset.digest for i in run.inputs.dataset_inputs],
        # the trend chart: a merge draws it too, but one point later than the whole run
        "artifacts": sorted(a.path for a in client.list_artifacts(run_id) if a.path != "trend.png"),
    }


@pytest.mark.e2e
def test_merge_completes_the_parent_run_as_a_single_run_would_log_it(
    pytester: pytest.Pytester, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    make_corpus(pytester)
    experiment = f"merge-{uuid.uuid4().hex[:8]}"
    store = ("--klaud-tracking-uri", mlflow_server.uri, "--klaud-experiment", experiment)
    whole = run(pytester, *store, "--store-durations", "--klaud-report-dir", "whole")
    assert whole.ret == pytest.ExitCode.TESTS_FAILED, whole.stdout.str() + whole.stderr.str()
    opened = run(pytester, *store, "--klaud-open-run")
    assert opened.ret == pytest.ExitCode.OK, opened.stderr.str()
    parent = opened.stdout.str().strip()  # the id alone, for $(pytest --klaud-open-run)
    for number, args in enumerate(SHARDINGS["pytest-split"], 1):
        shard = run(pytester, *store, "--klaud-parent-run", parent,
                    "--klaud-report-dir", f"shard{number}", *args)  # fmt: skip
        assert "MLflow tracking failed" not in shard.stdout.str()

    merged = run(pytester, *store, "--klaud-merge", "shard1", "shard2", "--klaud-report-dir", "m")

    assert merged.ret == whole.ret, merged.stdout.str() + merged.stderr.str()
    merged.stdout.fnmatch_lines(
        [f"mlflow run: {parent}", f"MLflow experiment {experiment}; open it with: *"]
    )
    report = read_report(pytester.path / "m")
    assert report["run"]["mlflow_run_id"] == parent
    whole_run_id = read_report(pytester.path / "whole")["run"]["mlflow_run_id"]
    client = client_for(mlflow_server.uri)
    single = logged(client, whole_run_id, tmp_path / "single")
    assert logged(client, parent, tmp_path / "merged") == single
    assert single["metrics"]["total_apps"] == 6 and single["params"]["total_apps"] == "6"
    assert len(single["table"]) == 6

    parent_run = client.get_run(parent)
    assert parent_run.info.status == "FINISHED"
    assert parent_run.info.run_name == f"eval_manual_{report['run']['started_at']}"
    assert parent_run.data.tags["framework"] == "klaudbiusz"
    assert parent_run.data.tags["klaud_shards"] == "2"
    assert parent_run.info.end_time >= max(
        client.get_run(s["mlflow_run_id"]).info.end_time for s in report["run"]["shards"]
    )
    children = client.search_runs(
        [parent_run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'"
    )
    assert sorted(c.data.tags["klaud_shard"] for c in children) == ["1/2", "2/2"]
    assert {c.data.tags["framework"] for c in children} == {"klaudbiusz-shard"}
    assert sorted(int(c.data.params["total_apps"]) for c in children) == sorted(
        s["apps"] for s in report["run"]["shards"]
    )
    experiment_id = parent_run.info.experiment_id
    traced = client.search_traces(locations=[experiment_id], run_id=parent, include_spans=False)
    assert sorted(t.info.tags["klaud_app"] for t in traced) == sorted(
        app["app_name"] for app in report["apps"]
    )  # the merge writes a trace per app once; its shards write none
    assert not any(
        client.search_traces(locations=[experiment_id], run_id=c.info.run_id) for c in children
    )

    from pytest_klaudbiusz.tracking.history import History  # what baselines and --klaud-compare see

    recent = History(mlflow_server.uri, experiment).recent(10)
    assert [r.run_id for r in recent] == [parent, whole_run_id] or [r.run_id for r in recent] == [
        whole_run_id,
        parent,
    ]
