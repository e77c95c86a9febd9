"""HTTP requests and time the tracking layer spends logging one evaluation.

    .venv/bin/python benchmarks/tracking_requests.py [--sizes 15 200] [--repetitions 3]

Starts a real ``mlflow server`` (SQLite store, artifacts in a temp dir) and a small
counting reverse proxy in front of it, builds evaluation reports of 2 and 200 apps
with the real ``build_report`` and ``write_reports``, and logs each with the
function the plugin uses, ``pytest_klaudbiusz.tracking.runs.log_report``. For comparison,
the naive way logs the same content one call at a time (``mlflow.log_metric`` per
summary metric, ``log_param`` per param, ``set_tag`` per tag). Requests are counted
on one run of each through the proxy; times are medians of interleaved runs straight
to the server. The first run (which creates the experiment) is reported apart. The
per-app traces and assessments (``--klaud-no-traces`` leaves them out) are measured as the
difference between ``log_report`` with and without them, against the server and against
the SQLite store the plugin uses by default.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import (
    ROOT,
    machine_table,
    markdown_table,
    median,
    start_mlflow_server,
    stop_mlflow_server,
)

sys.path.insert(0, str(ROOT / "tests"))
from mlflow_proxy import CountingProxy  # the tests' proxy: one copy

from pytest_klaudbiusz import __version__
from pytest_klaudbiusz.results.aggregate import build_report
from pytest_klaudbiusz.results.files import write_reports
from pytest_klaudbiusz.results.model import STAGES, AppResult, Outcome, StageOutcome
from pytest_klaudbiusz.tracking import runs as tracking
from pytest_klaudbiusz.tracking.store import configure_mlflow_environment

EXPERIMENT = "/Shared/klaudbiusz-evaluations"


def take(proxy: CountingProxy) -> list[str]:
    """The requests the proxy saw since the last call ("METHOD /path")."""
    taken = list(proxy.requests)
    proxy.requests.clear()
    return taken


def make_report(apps: int, seed: int = 7) -> dict[str, Any]:
    """A realistic report: evaluated apps with all stages, metrics, issues and costs."""
    rng = random.Random(seed)
    results = []
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(apps):
        passed = {stage: rng.random() < 0.8 for stage in STAGES}
        stages = [
            StageOutcome(
                name, Outcome.PASSED if ok else Outcome.FAILED, round(rng.uniform(0.1, 30), 3),
                "" if ok else "exited non-zero", f"npm run {name}", 0 if ok else 1,
                "" if ok else "error TS2322: Type 'string' is not assignable\n" * 5,
                start.timestamp() + 40 * i + 5 * k,
            )
            for k, (name, ok) in enumerate(passed.items())
        ]  # fmt: skip
        metrics: dict[str, Any] = {
            "build_success": passed["build"], "runtime_success": passed["runtime"],
            "type_safety": passed["typecheck"], "tests_pass": passed["test"],
            "databricks_connectivity": passed["data"], "data_returned": passed["data_returned"],
            "ui_renders": None, "local_runability_score": rng.randint(0, 5),
            "deployability_score": rng.randint(0, 5), "test_coverage_pct": rng.uniform(0, 100),
            "build_time_sec": rng.uniform(5, 60), "startup_time_sec": rng.uniform(1, 10),
            "total_loc": rng.randint(200, 5000), "has_dockerfile": False, "has_tests": True,
            "appeval_100": round(rng.uniform(0, 100), 2),
        }  # fmt: skip
        results.append(
            AppResult(
                app_name=f"app-{i:04d}",
                app_dir=f"/apps/app-{i:04d}",
                template_type="trpc",
                stages=stages,
                metrics=metrics,
                issues=[f"{s.name}: {s.reason}" for s in stages if s.reason],
                details={"port": 40000 + i},
                generation_metrics={
                    "cost_usd": rng.uniform(0.5, 3),
                    "input_tokens": rng.randint(10**5, 10**6),
                    "output_tokens": rng.randint(10**4, 10**5),
                    "turns": rng.randint(5, 40),
                },
            )
        )
    run = {
        "mode": "mcp", "started_at": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "finished_at": (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "plugin_version": __version__, "pytest_version": "9", "python_version": "3.11",
        "git_commit": "0" * 40, "git_branch": "main", "model_version": "claude-x",
        "apps_dir": "/apps", "command": "pytest evals/", "tracking_uri": None,
        "experiment": EXPERIMENT, "mlflow_run_id": None,
    }  # fmt: skip
    return build_report(results, run)


def batched(report: dict[str, Any], paths: dict[str, Path], uri: str, traces: bool = False) -> None:
    """What the plugin does at the end of a tracked evaluation, once the reports are written."""

    def remember_run(run_id: str) -> None:
        report["run"]["mlflow_run_id"] = run_id
        write_reports(report, paths["json"].parent)

    report["run"]["evaluation_id"] = uuid.uuid4().hex  # each log is another evaluation
    files = list(paths.values())
    tracking.log_report(report, files, uri, EXPERIMENT, on_run_id=remember_run, traces=traces)


def with_traces(report: dict[str, Any], paths: dict[str, Path], uri: str) -> None:
    batched(report, paths, uri, traces=True)


def naive(report: dict[str, Any], paths: dict[str, Path], uri: str) -> None:
    """The same content, one call per metric, param and tag (the earlier evaluator's way)."""
    import mlflow

    run = report["run"]
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=tracking.run_name(report)):
        for key in ("framework", "mode", "git_commit", "git_branch", "plugin_version"):
            mlflow.set_tag(key, run.get(key, "klaudbiusz"))
        for key in ("mode", "timestamp", "model_version"):
            mlflow.log_param(key, run.get(key, run["started_at"]))
        mlflow.log_param("total_apps", len(report["apps"]))
        for key, value in report["summary"].items():
            if isinstance(value, int | float):
                mlflow.log_metric(key, value)
        for path in paths.values():
            mlflow.log_artifact(str(path))
        mlflow.log_table(tracking.apps_table(report), artifact_file="apps_table.json")


def endpoint(request: str) -> str:
    """A request without its run and experiment ids, so equal requests count together."""
    return re.sub(
        r"/artifacts/\d+/[0-9a-f]{32}/artifacts/", "/artifacts/<exp>/<run>/artifacts/", request
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[15, 200], help="apps per report")
    parser.add_argument("--repetitions", type=int, default=3, help="interleaved runs of each")
    args = parser.parse_args()
    configure_mlflow_environment(os.environ)  # as the plugin does, before mlflow loads

    requests: dict[tuple[str, int], list[str]] = {}
    times: dict[tuple[str, int], list[float]] = {}
    cpu_times: dict[tuple[str, int], list[float]] = {}  # of this process, SQLite store
    with tempfile.TemporaryDirectory(prefix="klaud-bench-") as tmp_name:
        tmp = Path(tmp_name)
        server, port = start_mlflow_server(tmp)
        direct = f"http://127.0.0.1:{port}"
        proxy = CountingProxy(direct)
        counted = proxy.uri
        try:
            reports = {n: make_report(n) for n in args.sizes}
            paths = {n: write_reports(r, tmp / f"report-{n}") for n, r in reports.items()}
            ways: dict[str, Callable[[dict[str, Any], dict[str, Path], str], None]] = {
                "log_report (batched)": batched,
                "log_report + traces": with_traces,
                "per-metric calls": naive,
            }
            start = time.perf_counter()
            batched(reports[args.sizes[0]], paths[args.sizes[0]], counted)
            first_run = (len(take(proxy)), time.perf_counter() - start)
            # Counted once through the proxy; timed directly, so the proxy adds nothing.
            for round_ in range(args.repetitions + 1):
                for n, report in reports.items():
                    for way, log in ways.items():
                        start = time.perf_counter()
                        log(report, paths[n], direct if round_ else counted)
                        if round_:
                            times.setdefault((way, n), []).append(time.perf_counter() - start)
                        else:
                            requests[way, n] = take(proxy)
        finally:
            proxy.stop()
            stop_mlflow_server(server)
        (tmp / "sqlite").mkdir()  # the server's store is tmp/mlflow.db
        sqlite = f"sqlite:///{tmp}/sqlite/mlflow.db"
        batched(reports[args.sizes[0]], paths[args.sizes[0]], sqlite)  # creates the store
        for _ in range(args.repetitions):
            for n, report in reports.items():
                for way, log in (("log_report (batched)", batched), ("+ traces", with_traces)):
                    start, cpu = time.perf_counter(), time.process_time()
                    log(report, paths[n], sqlite)
                    times.setdefault((f"sqlite {way}", n), []).append(time.perf_counter() - start)
                    cpu_times.setdefault((way, n), []).append(time.process_time() - cpu)

    print("## MLflow requests per tracked evaluation\n")
    print(
        "A real `mlflow server` (SQLite store, `--artifacts-destination`); requests counted by "
        "a reverse proxy in front of it on one run of each, times are medians of "
        f"{args.repetitions} interleaved runs straight to the server. Each run logs the summary "
        "metrics, params, tags, the three report files and the per-app table.\n"
    )
    rows = [(way, n, len(requests[way, n]), f"{median(times[way, n]):.3f}") for way, n in requests]
    print(markdown_table(("way", "apps", "HTTP requests per run", "time per run (s)"), rows))
    print(
        f"\nFirst run of the process (creates the experiment, {args.sizes[0]} apps, log_report): "
        f"{first_run[0]} requests, {first_run[1]:.2f} s including `import mlflow`.\n"
    )
    print("## Time the per-app traces add\n")
    print(
        "`log_report` with traces minus without (medians), per app; requests from the proxy's"
        " counts above.\n"
    )
    rows = []
    for n in args.sizes:
        server_added = median(times["log_report + traces", n]) - median(
            times["log_report (batched)", n]
        )
        sqlite_added = median(times["sqlite + traces", n]) - median(
            times["sqlite log_report (batched)", n]
        )
        extra = len(requests["log_report + traces", n]) - len(requests["log_report (batched)", n])
        cpu_added = median(cpu_times["+ traces", n]) - median(cpu_times["log_report (batched)", n])
        added = (server_added, sqlite_added, cpu_added)
        rows.append((n, extra, *(f"{1000 * seconds / n:.1f}" for seconds in added)))
    header = (
        "apps",
        "requests added",
        "ms per app (server)",
        "ms per app (SQLite)",
        "CPU ms (SQLite)",
    )
    print(markdown_table(header, rows))
    print(f"\nLoad average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.\n")
    largest = ("log_report + traces", max(args.sizes))
    print(f"Requests of one log_report run with {largest[1]} apps:\n")
    counts = Counter(endpoint(r) for r in requests[largest])
    print(markdown_table(("request", "count"), [(f"`{e}`", c) for e, c in counts.items()]))
    print()
    print(machine_table())


if __name__ == "__main__":
    main()
