"""Issue #4 end to end: every metric and DevX criterion on the shipped corpus, generation cost,
reproducibility, custom metrics and the summary hook, and the API logging the same run as
the plugin.

The shipped corpus (``evals/apps``, 16 apps) is evaluated once per test process (a module
fixture: a real ``pytest -n 3`` in a subprocess, tracked to a real SQLite store); the tests
below read that one evaluation from every side. The API-versus-plugin comparison uses
small synthetic apps and a real ``mlflow server``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from helpers import NO_TRACKING, REPO, MlflowServer, make_app, make_suite, read_report, run

from pytest_klaudbiusz.apps import scoring
from pytest_klaudbiusz.apps.plan import discover_apps
from pytest_klaudbiusz.results.dataset import corpus_digest

if TYPE_CHECKING:
    from helpers import MlflowServer
    from mlflow.tracking import MlflowClient

SUBPROCESS_TIMEOUT = 300
REPORT_FILES = {"evaluation_report.json", "EVALUATION_REPORT.md", "evaluation_report.csv"}

pytestmark = pytest.mark.e2e


def clean_env() -> dict[str, str]:
    """The caller's environment without xdist's worker markers and without any tracking or
    warehouse settings of the caller."""
    drop = ("PYTEST_XDIST_", "PYTEST_CURRENT_TEST", "MLFLOW_", "DATABRICKS_", "EVAL_MODE")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def client_for(uri: str) -> MlflowClient:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


# --- the shipped corpus, evaluated once --------------------------------------------------

SUITE = textwrap.dedent(
    """\
    def test_app(klaud_app):
        klaud_app.record("source_kloc", klaud_app.metrics["total_loc"] / 1000)
        klaud_app.check()
    """
)
CONFTEST = textwrap.dedent(
    """\
    def pytest_klaud_summary(summary, results):
        summary["apps_with_secrets"] = sum(
            not c["passed"]
            for r in results if r["status"] == "evaluated"
            for c in r["details"]["deployability"] if c["criterion"] == "no hard-coded secrets"
        )
        summary["avg_source_kloc"] = round(summary["avg_source_kloc"], 3)
        summary["note"] = "not a number"
    """
)
#: What a generator's bulk run wrote: joined by folder, never by prompt; per-app files win.
BULK_RESULTS = [
    {"prompt": "A revenue dashboard", "app_name": "broken-build",
     "metrics": {"cost_usd": 0.12, "input_tokens": 30000, "output_tokens": 4000, "turns": 5}},
    {"prompt": "A job monitor", "app_dir": "/home/gen/run-42/crash-on-start",
     "metrics": {"cost_usd": 0.2, "input_tokens": 50000, "output_tokens": 6000, "turns": 7}},
    {"app_name": "failing-tests", "metrics": {"cost_usd": 9.99}},  # its own file wins
    {"app_name": "wrong-port", "metrics": None},  # generation data lost: not joined
    {"app_name": "not-in-this-corpus", "metrics": {"cost_usd": 5.0}},
]  # fmt: skip


@dataclass(frozen=True)
class CorpusRun:
    root: Path
    report: dict[str, Any]
    stdout: str
    returncode: int
    uri: str
    experiment: str

    @property
    def apps(self) -> dict[str, dict[str, Any]]:
        return {app["app_name"]: app for app in self.report["apps"]}

    @property
    def run_id(self) -> str:
        return str(self.report["run"]["mlflow_run_id"])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, _initialised_mlflow_db: Path) -> CorpusRun:
    root = tmp_path_factory.mktemp("corpus")
    shutil.copytree(REPO / "evals" / "apps", root / "apps")
    (root / "pytest.ini").write_text("[pytest]\nklaud_apps = apps\n")
    (root / "test_evals.py").write_text(SUITE)
    (root / "conftest.py").write_text(CONFTEST)
    (root / "bulk_run_results.json").write_text(json.dumps(BULK_RESULTS))
    shutil.copyfile(_initialised_mlflow_db, root / "mlflow.db")
    uri, experiment = f"sqlite:///{root}/mlflow.db", "/Shared/corpus-e2e"
    command = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "3",
        "--klaud-mode=corpus", "--klaud-model-version=claude-sample-1",
        "--klaud-generation-results=bulk_run_results.json",
        "--klaud-tracking-uri", uri, "--klaud-experiment", experiment,
    ]  # fmt: skip
    done = subprocess.run(
        command,
        cwd=root,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert "INTERNALERROR" not in done.stdout + done.stderr, done.stdout + done.stderr
    report = read_report(root / "app-eval")
    return CorpusRun(root, report, done.stdout, done.returncode, uri, experiment)


@dataclass(frozen=True)
class Expect:
    """One sample app's DevX scores, the criteria it fails and its file metrics."""

    local: int
    deploy: int
    failing: frozenset[str]
    loc: int
    coverage: float | None = None
    has_tests: bool = True
    dockerfile: bool = False
    type_safety: bool | None = True
    stage_issues: tuple[str, ...] = ()


S = scoring
NO_DEPLOY = frozenset({S.DEPLOY_TARGET})  # no app.yaml nor Dockerfile: one point
EXPECTED = {
    "billing-export-docker": Expect(5, 4, frozenset({S.NO_SECRETS}), 98, dockerfile=True,
                                    type_safety=None),
    "broken-build": Expect(4, 4, NO_DEPLOY | {S.ENV_TEMPLATE}, 78, type_safety=None,
                           stage_issues=("build: exited non-zero",)),
    "crash-on-start": Expect(4, 4, NO_DEPLOY | {S.ENV_TEMPLATE}, 115, type_safety=None,
                             stage_issues=("runtime: start command exited",)),
    "empty-results": Expect(4, 4, NO_DEPLOY | {S.ENV_TEMPLATE}, 118,
                            stage_issues=("data_returned: no rows",)),
    "failing-tests": Expect(3, 4, NO_DEPLOY | {S.ENV_TEMPLATE, S.ENTRY_POINT}, 70,
                            stage_issues=("test: exited non-zero",)),
    "inventory-dbx-sdk": Expect(5, 5, frozenset(), 156, coverage=88.81),
    "manifest-app": Expect(4, 4, NO_DEPLOY | {S.ENTRY_POINT}, 100),
    "nightly-digest-batch": Expect(
        3, 2,
        NO_DEPLOY | {S.ENV_TEMPLATE, S.START_COMMAND, S.HEALTH_CHECK, S.DEPENDENCIES_PINNED},
        56, coverage=79.66, type_safety=None, stage_issues=("runtime: no start command",),
    ),
    "no-tests-no-build": Expect(
        3, 3, NO_DEPLOY | {S.README, S.ENV_TEMPLATE, S.HEALTH_CHECK}, 20, has_tests=False,
        type_safety=None, stage_issues=("build: no build command", "test: no test command"),
    ),
    "ops-metrics-python": Expect(4, 5, frozenset({S.ENV_TEMPLATE}), 109, dockerfile=True,
                                 type_safety=None),
    "sales-dashboard-trpc": Expect(5, 5, frozenset(), 276),
    "tasks-bun-trpc": Expect(4, 5, frozenset({S.ENV_TEMPLATE}), 175, dockerfile=True),
    "type-errors": Expect(3, 4, NO_DEPLOY | {S.ENV_TEMPLATE, S.ENTRY_POINT}, 91,
                          type_safety=False, stage_issues=("typecheck: exited non-zero",)),
    "unresolvable-deps": Expect(4, 4, frozenset({S.DEPENDENCIES_INSTALL, S.DEPLOY_CONFIG}), 41,
                                dockerfile=True, type_safety=None,
                                stage_issues=("install: exited non-zero",)),
    "warehouse-down": Expect(4, 5, frozenset({S.ENV_TEMPLATE}), 103,
                             stage_issues=("data: endpoint answered non-2xx",
                                           "ui: api request failed")),
    "wrong-port": Expect(4, 4, NO_DEPLOY | {S.ENV_TEMPLATE}, 41, type_safety=None,
                         stage_issues=(  # not "... within 3s", no port numbers
                             "runtime: not healthy; its log says it listens on another port",
                         )),
}  # fmt: skip
MEASUREMENT = re.compile(r"\d+(\.\d+)?\s*(s|sec|ms|%)?(\b|$)(?!xx)")  # "2xx" is a word
LOCAL = (S.README, S.ENV_TEMPLATE, S.DEPENDENCIES_INSTALL, S.START_COMMAND, S.ENTRY_POINT)
DEPLOY = (S.DEPLOY_TARGET, S.DEPLOY_CONFIG, S.HEALTH_CHECK, S.NO_SECRETS, S.DEPENDENCIES_PINNED)


def test_every_devx_criterion_passes_and_fails_somewhere_in_the_corpus() -> None:
    """The corpus is a real test of the scoring: no criterion is constant."""
    for criterion in LOCAL + DEPLOY:
        failing = {name for name, e in EXPECTED.items() if criterion in e.failing}
        assert failing, f"no sample app fails {criterion!r}"
        assert failing != set(EXPECTED), f"no sample app passes {criterion!r}"
    for field in ("coverage", "has_tests", "dockerfile", "type_safety"):
        assert len({getattr(e, field) for e in EXPECTED.values()}) > 1, field


def test_each_sample_app_scores_exactly(corpus: CorpusRun) -> None:
    assert sorted(corpus.apps) == sorted(EXPECTED)
    for name, expect in EXPECTED.items():
        app = corpus.apps[name]
        metrics, details = app["metrics"], app["details"]
        assert [c["criterion"] for c in details["local_runability"]] == list(LOCAL), name
        assert [c["criterion"] for c in details["deployability"]] == list(DEPLOY), name
        failing = {c["criterion"] for c in details["local_runability"] + details["deployability"]
                   if not c["passed"]}  # fmt: skip
        assert failing == expect.failing, name
        assert (metrics["local_runability_score"], metrics["deployability_score"]) == (
            expect.local,
            expect.deploy,
        ), name
        assert metrics["total_loc"] == expect.loc, name
        assert metrics["test_coverage_pct"] == expect.coverage, name
        assert metrics["has_tests"] is expect.has_tests, name
        assert metrics["has_dockerfile"] is expect.dockerfile, name
        assert metrics["type_safety"] is expect.type_safety, name
        devx = sorted(S.CRITERION_ISSUES[c] for c in expect.failing)
        assert sorted(app["issues"]) == sorted([*expect.stage_issues, *devx]), name
        assert not any(MEASUREMENT.search(issue) for issue in app["issues"]), name
    secrets = corpus.apps["billing-export-docker"]["details"]["deployability"][3]
    assert secrets == {"criterion": S.NO_SECRETS, "passed": False, "files": ["billing.py"]}
    # placeholders in .env.example / .env.template earn the env point and cost nothing
    assert S.NO_SECRETS not in EXPECTED["inventory-dbx-sdk"].failing


def test_custom_metrics_and_the_summary_hook_survive_xdist(corpus: CorpusRun) -> None:
    for name, expect in EXPECTED.items():
        assert corpus.apps[name]["custom_metrics"] == {"source_kloc": expect.loc / 1000}, name
    summary = corpus.report["summary"]
    mean_kloc = sum(e.loc for e in EXPECTED.values()) / 1000 / len(EXPECTED)
    assert summary["avg_source_kloc"] == round(mean_kloc, 3)  # changed by the hook
    assert summary["apps_with_secrets"] == 1  # added by the hook
    assert "note" not in summary  # not a number: dropped, and said so
    assert "WARNING: pytest_klaud_summary: dropped note='not a number' (not a finite number)" in (
        corpus.stdout
    )
    rows = list(csv.DictReader(io.StringIO((corpus.root / "app-eval" / "evaluation_report.csv")
                                           .read_text(encoding="utf-8"))))  # fmt: skip
    assert {r["app_name"]: float(r["source_kloc"]) for r in rows} == {
        name: e.loc / 1000 for name, e in EXPECTED.items()
    }
    assert "created: 3/3 workers" in corpus.stdout


def test_generation_cost_joins_per_app_files_and_the_bulk_file(corpus: CorpusRun) -> None:
    generation = {name: app["generation_metrics"] for name, app in corpus.apps.items()}
    assert generation["broken-build"] == BULK_RESULTS[0]["metrics"]  # by app_name
    assert generation["crash-on-start"] == BULK_RESULTS[1]["metrics"]  # by app_dir's folder
    assert generation["failing-tests"]["cost_usd"] == 0.27  # its own file, not the bulk's 9.99
    assert generation["wrong-port"] is None
    assert generation["billing-export-docker"]["model"] == "claude-sonnet-4-5-20250929"
    costs = {n: g["cost_usd"] for n, g in generation.items() if g}
    assert costs == {
        "billing-export-docker": 0.22, "broken-build": 0.12, "crash-on-start": 0.2,
        "failing-tests": 0.27, "inventory-dbx-sdk": 0.31, "nightly-digest-batch": 0.35,
        "ops-metrics-python": 0.18, "sales-dashboard-trpc": 0.42,
    }  # fmt: skip
    passing_with_cost = ["billing-export-docker", "inventory-dbx-sdk", "ops-metrics-python",
                         "sales-dashboard-trpc"]  # fmt: skip
    summary = corpus.report["summary"]
    total = sum(costs.values())
    assert summary["apps_with_generation_metrics"] == 8
    assert summary["generation_cost_usd"] == pytest.approx(2.07)
    assert summary["avg_cost_per_app_usd"] == pytest.approx(total / 8)
    assert summary["total_input_tokens"] == 570_500
    assert summary["total_output_tokens"] == 77_000
    assert summary["avg_turns_per_app"] == 9.0
    assert summary["apps_per_dollar"] == pytest.approx(8 / total)
    assert summary["cost_per_passing_app_usd"] == pytest.approx(total / len(passing_with_cost))
    assert summary["total_cache_read_tokens"] == 104_000
    assert summary["total_cache_creation_tokens"] == 12_000
    assert summary["avg_generation_time_sec"] == pytest.approx(172.25)
    run = corpus.report["run"]
    assert run["generation_results"] == str(corpus.root / "bulk_run_results.json")
    assert run["model_version"] == "claude-sample-1"  # the option; the apps do not all agree


def test_markdown_report_has_distribution_stars_and_cost_vs_quality(corpus: CorpusRun) -> None:
    md = (corpus.root / "app-eval" / "EVALUATION_REPORT.md").read_text(encoding="utf-8")
    issue_counts = [len(app["issues"]) for app in corpus.report["apps"]]
    buckets = {
        "0": sum(n == 0 for n in issue_counts),
        "1-2": sum(1 <= n <= 2 for n in issue_counts),
        "3-4": sum(3 <= n <= 4 for n in issue_counts),
        "5+": sum(n >= 5 for n in issue_counts),
    }
    # a missing deploy target is one issue; warehouse-down's page fails too
    assert buckets == {"0": 2, "1-2": 4, "3-4": 8, "5+": 2}
    for bucket, count in buckets.items():
        assert f"| {bucket} | {count} |" in md
    assert "| nightly-digest-batch | ★★★☆☆ 3/5 | ★★☆☆☆ 2/5 |" in md
    assert "| sales-dashboard-trpc | ★★★★★ 5/5 | ★★★★★ 5/5 | - |" in md
    assert "| corpus | 8 / 16 | 2.07 | 0.26 | 4 / 8 | 0.52 |" in md
    assert "| nightly-digest-batch | 0.35 | 12 | 12,500 |" in md
    assert "8 of 16 apps have generation data" in md
    digest = corpus.report["run"]["dataset"]["digest"]
    assert f"| dataset | apps digest {digest} (16 apps, " in md


def test_run_records_what_reproduces_it(corpus: CorpusRun) -> None:
    run = corpus.report["run"]
    assert run["plugin_version"] == "0.1.0"
    assert run["pytest_version"] == pytest.__version__
    assert run["python_version"] == sys.version.split()[0]
    assert run["mlflow_version"].startswith("3.")  # known at tracking time only
    assert run["command"].startswith("pytest -p no:cacheprovider -n 3 --klaud-mode=corpus")
    dataset = run["dataset"]
    shipped = corpus_digest(discover_apps(REPO / "evals" / "apps"))
    assert {k: dataset[k] for k in ("digest", "apps", "files", "bytes")} == shipped
    assert dataset["name"] == "apps"
    assert dataset["source"] == str(corpus.root / "apps")


def test_tracked_run_holds_params_tags_metrics_dataset_and_apps_table(
    corpus: CorpusRun, tmp_path: Path
) -> None:
    assert corpus.run_id and corpus.run_id != "None"
    client = client_for(corpus.uri)
    run = client.get_run(corpus.run_id)
    report_run = corpus.report["run"]
    assert run.info.status == "FINISHED"
    assert run.info.run_name == f"eval_corpus_{report_run['started_at']}"
    assert run.data.params == {
        "mode": "corpus",
        "total_apps": "16",
        "timestamp": report_run["started_at"],
        "model_version": "claude-sample-1",
    }
    tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
    assert tags == {
        "framework": "klaudbiusz",
        "mode": "corpus",
        "run_name": run.info.run_name,
        "plugin_version": report_run["plugin_version"],
        "pytest_version": report_run["pytest_version"],
        "python_version": report_run["python_version"],
        "mlflow_version": report_run["mlflow_version"],
        "command": report_run["command"],
        "sandbox": "bwrap",
        "limits": report_run["limits"],
        "dataset_digest": report_run["dataset"]["digest"],
        "klaud_evaluation_id": report_run["evaluation_id"],
    }  # no git tags: the corpus copy is in no repository
    summary = corpus.report["summary"]
    assert run.data.metrics == {k: float(v) for k, v in summary.items() if v is not None}
    assert {"avg_source_kloc", "apps_with_secrets", "cost_per_passing_app_usd"} <= set(
        run.data.metrics
    )
    [dataset_input] = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest == report_run["dataset"]["digest"]
    assert dataset_input.dataset.name == "apps"
    assert json.loads(dataset_input.dataset.profile)["apps"] == 16
    assert {a.path for a in client.list_artifacts(corpus.run_id)} >= {
        *REPORT_FILES,
        "apps_table.json",
    }
    table = json.loads(
        Path(client.download_artifacts(corpus.run_id, "apps_table.json", str(tmp_path)))
        .read_text()
    )  # fmt: skip
    rows = {row[0]: dict(zip(table["columns"], row, strict=True)) for row in table["data"]}
    assert sorted(rows) == sorted(EXPECTED)
    assert rows["broken-build"]["cost_usd"] == 0.12
    assert rows["nightly-digest-batch"]["test_coverage_pct"] == 79.66
    assert rows["nightly-digest-batch"]["deployability_score"] == 2
    assert rows["unresolvable-deps"]["build_success"] is False
    assert rows["sales-dashboard-trpc"]["source_kloc"] == 0.276


# --- API and plugin: the same run from the same report ---------------------------------------


def artifact_texts(client: MlflowClient, run_id: str, folder: Path) -> dict[str, bytes]:
    folder.mkdir()
    return {
        a.path: Path(client.download_artifacts(run_id, a.path, str(folder))).read_bytes()
        for a in client.list_artifacts(run_id)
    }


def without_run_id(name: str, content: bytes) -> Any:
    """An artifact's content with the run id blanked (each copy names its own run)."""
    if not name.endswith((".json", ".md", ".csv")):
        return content
    text = content.decode("utf-8")
    if name.endswith(".json"):
        data = json.loads(text)
        if name == "evaluation_report.json":
            data["run"]["mlflow_run_id"] = None
        return data
    text = re.sub(r"run_uuid=\w+", "run_uuid=-", text)  # image links into its own run
    return re.sub(r"\| mlflow_run_id \| \w+ \|", "| mlflow_run_id | - |", text)


def test_api_and_plugin_log_the_same_run(
    pytester: pytest.Pytester, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    make_app(pytester.path, "alpha", files={"generation_metrics.json": '{"cost_usd": 0.5, '
             '"input_tokens": 100, "output_tokens": 20, "turns": 3}'})  # fmt: skip
    make_app(pytester.path, "beta", test="exit 1")
    make_app(pytester.path, "gamma", start="", data=False)
    make_suite(pytester, "def test_app(klaud_app):\n    klaud_app.record('score', 7)\n")
    pytester.makeconftest(
        "def pytest_klaud_summary(summary, results):\n    summary['hooked'] = len(results)\n"
    )
    experiment = f"/Shared/api-vs-plugin-{uuid.uuid4().hex[:8]}"
    tracking = ("--klaud-tracking-uri", mlflow_server.uri, "--klaud-experiment", experiment)
    result = run(pytester, "-p", "no:cacheprovider", "--klaud-mode=mcp", *tracking)
    result.assert_outcomes(passed=3)
    report_path = pytester.path / "app-eval" / "evaluation_report.json"
    report = read_report(report_path.parent)
    plugin_run = report["run"]["mlflow_run_id"]
    assert plugin_run

    # 1. track_evaluation on the saved report
    from pytest_klaudbiusz import EvaluationTracker, track_evaluation

    with pytest.MonkeyPatch.context() as mp:
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
            mp.delenv(name, raising=False)
        mp.chdir(tmp_path)
        api_run = track_evaluation(
            report_path, tracking_uri=mlflow_server.uri, experiment_name=experiment
        )
    # 2. pytest --klaud-upload: the way to log a report whose tracking failed
    # (into another experiment: in this one, MLflow already has the evaluation, and
    # --klaud-upload never logs an evaluation twice; tests/test_outbox.py checks that)
    upload_experiment = ("--klaud-experiment", f"{experiment}-upload")
    upload = run(pytester, "--klaud-upload", str(report_path), *tracking, *upload_experiment)
    assert upload.ret == 0, upload.stdout.str() + upload.stderr.str()
    match = re.search(r"as MLflow run (\w+) ", upload.stdout.str())
    assert match, upload.stdout.str()
    upload_run = match.group(1)

    client = client_for(mlflow_server.uri)
    runs = {rid: client.get_run(rid) for rid in (plugin_run, api_run, upload_run)}
    assert len(runs) == 3
    texts = {
        rid: artifact_texts(client, rid, tmp_path / f"artifacts-{i}") for i, rid in enumerate(runs)
    }
    for rid in (api_run, upload_run):
        one, other = runs[plugin_run], runs[rid]
        assert other.info.run_name == one.info.run_name == f"eval_mcp_{report['run']['started_at']}"
        assert other.info.status == one.info.status == "FINISHED"
        assert (other.info.start_time, other.info.end_time) == (
            one.info.start_time,
            one.info.end_time,
        )
        assert other.data.params == one.data.params
        assert {k: v for k, v in other.data.tags.items() if not k.startswith("mlflow.")} == {
            k: v for k, v in one.data.tags.items() if not k.startswith("mlflow.")
        }
        assert other.data.metrics == one.data.metrics
        assert [
            (d.dataset.name, d.dataset.digest, d.dataset.profile, d.dataset.source)
            for d in other.inputs.dataset_inputs
        ] == [
            (d.dataset.name, d.dataset.digest, d.dataset.profile, d.dataset.source)
            for d in one.inputs.dataset_inputs
        ]
        assert set(texts[rid]) == set(texts[plugin_run]) >= {*REPORT_FILES, "apps_table.json"}
        for name, text in texts[plugin_run].items():
            copy = texts[rid][name].replace(f"{experiment}-upload".encode(), experiment.encode())
            assert without_run_id(name, copy) == without_run_id(name, text), name
        uploaded = json.loads(texts[rid]["evaluation_report.json"].decode("utf-8"))
        assert uploaded["run"]["mlflow_run_id"] == rid  # each copy names its own run
    metrics = runs[plugin_run].data.metrics
    assert (metrics["hooked"], metrics["avg_score"], metrics["generation_cost_usd"]) == (3, 7, 0.5)
    assert runs[plugin_run].data.tags["dataset_digest"] == report["run"]["dataset"]["digest"]

    # 3. the step-by-step API: the same params and metrics conventions
    with EvaluationTracker(experiment, mlflow_server.uri) as tracker:
        step_run = tracker.start_run("step_by_step", tags={"origin": "api"})
        tracker.log_evaluation_parameters(
            mode=report["run"]["mode"],
            total_apps=len(report["apps"]),
            timestamp=report["run"]["started_at"],
            model_version=report["run"]["model_version"],
        )
        tracker.log_evaluation_metrics(report)
        tracker.log_artifact_file(report_path)
    comparison = tracker.compare_runs([plugin_run, step_run])
    assert comparison[step_run]["params"] == comparison[plugin_run]["params"]
    assert comparison[step_run]["metrics"] == comparison[plugin_run]["metrics"]
    assert comparison[step_run]["tags"]["origin"] == "api"
    assert comparison[step_run]["tags"]["framework"] == "klaudbiusz"


# --- bad input and the hook's failure modes -------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "ERROR: generation results */nope.json: cannot read (No such file or directory)"),
        ("[{]", "ERROR: generation results */bulk.json: not valid JSON"),
        ('[{"app_name": "a", "metrics": {"turns": "x"}}]',
         "ERROR: generation results */bulk.json: entry 0 (a) metrics: turns is not a number"),
    ],
)  # fmt: skip
def test_unusable_generation_results_are_a_one_line_usage_error(
    pytester: pytest.Pytester, content: str | None, message: str
) -> None:
    make_app(pytester.path, "a", start="", data=False)
    make_suite(pytester)
    name = "nope.json" if content is None else "bulk.json"
    if content is not None:
        (pytester.path / name).write_text(content)
    result = run(pytester, NO_TRACKING, f"--klaud-generation-results={name}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not (pytester.path / "app-eval").exists()  # refused before any app ran


def test_a_failing_summary_hook_leaves_the_summary_and_reports_intact(
    pytester: pytest.Pytester,
) -> None:
    make_app(pytester.path, "a", start="", data=False)
    make_suite(pytester)
    pytester.makeconftest(
        "def pytest_klaud_summary(summary):\n"
        "    summary['total_apps'] = -1\n"
        "    raise KeyError('lighthouse_score')\n"
    )
    result = run(pytester, NO_TRACKING, "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["WARNING: pytest_klaud_summary failed (KeyError: 'lighthouse_score'); summary unchanged"]
    )
    assert read_report(pytester.path / "app-eval")["summary"]["total_apps"] == 1


def test_summary_hook_values_must_be_finite_numbers(pytester: pytest.Pytester) -> None:
    make_app(pytester.path, "a", start="", data=False)
    make_suite(pytester)
    pytester.makeconftest(
        "def pytest_klaud_summary(summary, results, config):\n"
        "    summary['ok_int'] = 3\n"
        "    summary['ok_none'] = None\n"
        "    summary['nan'] = float('nan')\n"
        "    summary['flag'] = True\n"
        "    summary['mode'] = config.getoption('klaud_mode')\n"
        "    del summary['not_run']\n"
    )
    result = run(pytester, NO_TRACKING, "-p", "no:cacheprovider", "--klaud-mode=mcp")
    result.assert_outcomes(failed=1)
    summary = read_report(pytester.path / "app-eval")["summary"]
    assert (summary["ok_int"], summary["ok_none"]) == (3, None)
    assert not {"nan", "flag", "mode"} & set(summary)
    assert summary["not_run"] == 0  # built-in metrics cannot be removed
    result.stdout.fnmatch_lines(
        [
            "WARNING: pytest_klaud_summary: kept not_run (a hook may not remove metrics)",
            "WARNING: pytest_klaud_summary: dropped nan=nan (not a finite number)",
            "WARNING: pytest_klaud_summary: dropped flag=True (not a finite number)",
            "WARNING: pytest_klaud_summary: dropped mode='mcp' (not a finite number)",
        ]
    )


# --- type safety: a check that can fail, or does not apply; never a silent pass -------------


def test_typecheck_comes_from_the_script_or_a_tsconfig_else_does_not_apply(
    tmp_path: Path,
) -> None:
    from pytest_klaudbiusz.apps.templates import plan_app

    def app(name: str, files: dict[str, str]) -> Path:
        for rel, text in files.items():
            (tmp_path / name / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name / rel).write_text(text)
        return tmp_path / name

    package = '{"scripts": {"start": "node server.js"}}'
    assert plan_app(app("js", {"package.json": package})).commands["typecheck"] is None
    assert (
        plan_app(app("ts", {"package.json": package, "tsconfig.json": "{}"})).commands["typecheck"]
        == "npx --no-install tsc --noEmit"
    )
    scripted = '{"scripts": {"start": "node s.js", "typecheck": "tsc -b"}}'
    assert (
        plan_app(app("script", {"package.json": scripted, "tsconfig.json": "{}"})).commands[
            "typecheck"
        ]
        == "npm run typecheck"
    )
    trpc = {"server/package.json": package, "client/index.html": "", "tsconfig.json": "{}",
            "package.json": '{"scripts": {"start": "node server"}}'}  # fmt: skip
    assert plan_app(app("trpc-root-tsconfig", trpc)).commands["typecheck"] == (
        "npx --no-install tsc --noEmit"  # the root tsconfig.json of a tRPC app counts too
    )


def test_a_tsconfig_the_app_cannot_check_fails_type_safety(tmp_path: Path) -> None:
    """TypeScript sources with a tsconfig: typecheck runs and fails here (a type error, or no
    TypeScript installed at all), so type_safety is False, never a pass; no types: None."""
    from pytest_klaudbiusz.apps.evaluation import EvalOptions, evaluate_app

    typed = tmp_path / "typed"
    (typed / "src").mkdir(parents=True)
    (typed / "package.json").write_text('{"name": "typed", "scripts": {"build": "true"}}')
    (typed / "tsconfig.json").write_text('{"compilerOptions": {"strict": true}}')
    (typed / "src" / "index.ts").write_text('const total: number = "12";\nexport { total };\n')
    untyped = tmp_path / "untyped"
    untyped.mkdir()
    (untyped / "package.json").write_text('{"name": "untyped", "scripts": {"build": "true"}}')

    options = EvalOptions(os.environ)
    typed_result, untyped_result = evaluate_app(typed, options), evaluate_app(untyped, options)

    stage = typed_result.stage("typecheck")
    assert stage is not None
    assert (stage.outcome, stage.command) == ("failed", "npx --no-install tsc --noEmit")
    assert typed_result.metrics["type_safety"] is False
    assert "typecheck: exited non-zero" in typed_result.issues
    assert untyped_result.metrics["type_safety"] is None
    assert untyped_result.metrics["build_success"] is True
