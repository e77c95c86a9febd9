"""``pytest --klaud-compare`` on a big history: 1,000 runs in a local SQLite store.

    .venv/bin/python benchmarks/compare_history.py [--runs 1000] [--apps 30] [--repetitions 5]
                                                  [--store DIR]

Builds two SQLite MLflow stores in a temp folder (or in ``--store DIR``, reused when it
already holds them, since creating 1,000 runs takes a while): a small one (10 runs) and a big
one (``--runs`` runs), each run shaped like a real evaluation: the summary metrics of a
``build_report`` of ``--apps`` synthetic apps (about 25 metrics), the four params and the
tags the plugin writes, ``FINISHED``, modes alternating ``mcp`` / ``vanilla_sdk``, written with
one ``log_batch`` per run. The newest 10 runs also get their ``evaluation_report.json``
artifact, so the comparison's per-app diff and McNemar tests download two reports.

Then, interleaved, median of ``--repetitions`` wall times of whole processes:

* ``pytest --klaud-compare`` (5 runs, all modes) on the small and the big store;
* ``pytest --klaud-compare=20 --klaud-compare-mode mcp`` on the big store;
* the fixed costs inside them: ``pytest --version`` with the plugin, and a bare
  ``import mlflow`` plus opening the store (``MlflowClient(...).search_experiments()``);

and in-process (after the imports), what grows with the history: the bounded search the
comparison makes (``History.recent``: ``max_results`` + ``order_by``) and the two report
downloads, against an unbounded ``search_runs`` of the same experiment.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import clean_env, interleaved, machine_table, markdown_table, median, timed

from pytest_klaudbiusz.results.aggregate import build_report
from pytest_klaudbiusz.results.files import write_reports
from pytest_klaudbiusz.results.metrics import CHECKS
from pytest_klaudbiusz.results.model import AppResult

EXPERIMENT = "/Shared/klaudbiusz-evaluations"
WITH_REPORTS = 10  # newest runs that get their evaluation_report.json artifact
SMALL = 10


def synthetic_report(index: int, mode: str, apps: int, started: datetime) -> dict:
    rng = random.Random(index)
    quality = 0.6 + 0.3 * rng.random()
    results = []
    for a in range(apps):
        metrics = {c: rng.random() < quality for c in CHECKS}
        metrics["type_safety"] = None if a % 4 else metrics["type_safety"]
        metrics.update(
            local_runability_score=rng.randint(1, 5),
            deployability_score=rng.randint(1, 5),
            appeval_100=round(100 * rng.random(), 1),
            build_time_sec=round(5 + 20 * rng.random(), 2),
            startup_time_sec=round(1 + 3 * rng.random(), 2),
        )
        results.append(
            AppResult(
                f"app-{a:03d}",
                f"/apps/app-{a:03d}",
                template_type="trpc",
                metrics=metrics,
                generation_metrics={
                    "cost_usd": round(0.5 + rng.random(), 3),
                    "input_tokens": rng.randint(10_000, 50_000),
                    "output_tokens": rng.randint(2_000, 9_000),
                    "turns": rng.randint(5, 30),
                },
            )
        )
    stamp = started.strftime("%Y-%m-%dT%H:%M:%SZ")
    run = {
        "mode": mode,
        "started_at": stamp,
        "finished_at": stamp,
        "plugin_version": "bench",
        "git_commit": f"{index:040x}",
        "git_branch": "main",
        "model_version": "claude-sonnet-4-5",
        "mlflow_run_id": None,
    }
    return build_report(results, run)


def create_store(folder: Path, runs: int, apps: int) -> str:
    """A SQLite store with ``runs`` finished evaluation runs; reused if already complete."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "mlflow.db"
    uri = f"sqlite:///{db}"
    done = folder / "complete"
    if done.is_file() and done.read_text() == f"{runs} {apps}":
        return uri
    db.unlink(missing_ok=True)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment(EXPERIMENT, artifact_location=str(folder / "mlruns"))
    start = datetime(2025, 1, 1, tzinfo=UTC)
    began = time.perf_counter()
    for i in range(runs):
        mode = "mcp" if i % 2 == 0 else "vanilla_sdk"
        started = start + timedelta(hours=6 * i)
        report = synthetic_report(i, mode, apps, started)
        name = f"eval_{mode}_{report['run']['started_at']}"
        ms = int(started.timestamp() * 1000)
        tags = {"framework": "klaudbiusz", "mode": mode, "run_name": name, "git_branch": "main"}
        run = client.create_run(experiment, start_time=ms, tags=tags, run_name=name)
        run_id = run.info.run_id
        metrics = [
            Metric(k, float(v), ms, 0)
            for k, v in report["summary"].items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        params = {"mode": mode, "total_apps": apps, "timestamp": name[-20:], "model_version": "x"}
        client.log_batch(
            run_id,
            metrics=metrics,
            params=[Param(k, str(v)) for k, v in params.items()],
            tags=[RunTag("plugin_version", "bench")],
        )
        if i >= runs - WITH_REPORTS:
            report["run"]["mlflow_run_id"] = run_id
            with tempfile.TemporaryDirectory() as tmp:
                files = write_reports(report, Path(tmp))
                client.log_artifact(run_id, str(files["json"]))
        client.set_terminated(run_id, "FINISHED", end_time=ms + 60_000)
        if (i + 1) % 200 == 0:
            print(f"  {i + 1}/{runs} runs ({time.perf_counter() - began:.0f} s)", file=sys.stderr)
    done.write_text(f"{runs} {apps}")
    return uri


def in_process(label: str, uri: str) -> tuple[str, str, str, str]:
    """Milliseconds of the bounded search, two report downloads, and an unbounded search."""
    from pytest_klaudbiusz.tracking.history import History

    history = History(uri, EXPERIMENT)
    history.recent(1)  # warm: experiment lookup, SQLAlchemy mappers
    latest = history.recent(5)
    ids = [r.run_id for r in latest[:2] if r.run_id]
    assert len(ids) == 2 and all(history.report(i) is not None for i in ids)
    experiment_id = history.experiment_id()
    bounded = [timed(lambda: history.recent(5)) for _ in range(5)]
    reports = [timed(lambda: [history.report(i) for i in ids]) for _ in range(5)]
    unbounded = [
        timed(lambda: history.client.search_runs([experiment_id], max_results=50_000))
        for _ in range(3)
    ]
    return (
        label,
        f"{1000 * median(bounded):.0f}",
        f"{1000 * median(reports):.0f}",
        f"{1000 * median(unbounded):.0f}",
    )


def run_quiet(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    import subprocess

    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--apps", type=int, default=30)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--store", type=Path, help="folder for the stores (kept and reused)")
    args = parser.parse_args()

    root = args.store or Path(tempfile.mkdtemp(prefix="klaud-compare-bench-"))
    print(f"stores in {root}", file=sys.stderr)
    began = time.perf_counter()
    small = create_store(root / "small", SMALL, args.apps)
    big = create_store(root / "big", args.runs, args.apps)
    created = time.perf_counter() - began
    print(f"stores ready in {created:.0f} s", file=sys.stderr)

    suite = root / "suite"
    suite.mkdir(exist_ok=True)
    (suite / "pytest.ini").write_text("[pytest]\n")
    env = clean_env(MLFLOW_DISABLE_TELEMETRY="true")
    pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]

    def compare(uri: str, *options: str) -> None:
        run_quiet([*pytest, "--klaud-tracking-uri", uri, *options], suite, env)

    variants = {
        f"pytest --klaud-compare, {SMALL} runs": lambda: compare(small, "--klaud-compare"),
        f"pytest --klaud-compare, {args.runs} runs": lambda: compare(big, "--klaud-compare"),
        f"pytest --klaud-compare=20 --klaud-compare-mode mcp, {args.runs} runs": lambda: compare(
            big, "--klaud-compare=20", "--klaud-compare-mode", "mcp"
        ),
        "fixed cost: pytest --version (plugin loaded)": lambda: run_quiet(
            [*pytest, "--version"], suite, env
        ),
        "fixed cost: import mlflow + open the store": lambda: run_quiet(
            [
                sys.executable,
                "-c",
                "from mlflow.tracking import MlflowClient; "
                f"MlflowClient(tracking_uri={big!r}).search_experiments()",
            ],
            suite,
            env,
        ),
    }
    times = interleaved(variants, args.repetitions)

    # in-process: what grows with the history, once the imports are paid
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    inner = [
        in_process(label, uri)
        for label, uri in ((f"{SMALL} runs", small), (f"{args.runs} runs", big))
    ]

    print(f"## `pytest --klaud-compare` on a SQLite store with {args.runs} runs\n")
    print(
        f"Each run: {args.apps} apps' summary (~25 metrics), 4 params, 5 tags, one `log_batch`;"
        f" the newest {WITH_REPORTS} runs carry their `evaluation_report.json`. Creating the"
        f" {args.runs}-run store took {created:.0f} s (cached with `--store DIR`). Whole-process"
        f" wall times, median of {args.repetitions} interleaved repetitions:\n"
    )
    rows = [(name, f"{median(t):.2f}", f"{min(t):.2f}") for name, t in times.items()]
    print(markdown_table(("command", "median wall (s)", "min wall (s)"), rows))
    print(
        "\nIn-process, after the imports (ms, median): the comparison's bounded search"
        " (`max_results=5`, `order_by start_time DESC`), its two report downloads, and an"
        " unbounded `search_runs` of the same experiment for contrast:\n"
    )
    print(
        markdown_table(
            ("history", "bounded search (ms)", "2 report downloads (ms)", "unbounded search (ms)"),
            inner,
        )
    )
    print()
    print(machine_table())


if __name__ == "__main__":
    main()
