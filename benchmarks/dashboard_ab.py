"""Dashboard first paint and ``pytest --klaud-ab`` on a store of 1,000 evaluations, beside a
bare MLflow read of the same runs (the floor).

    .venv/bin/python benchmarks/dashboard_ab.py [--runs 1000] [--apps 30] [--repetitions 5]
                                                [--store DIR]

The store is ``compare_history.py``'s (``--runs`` runs, modes alternating ``mcp`` /
``vanilla_sdk``, the newest 10 with their ``evaluation_report.json``; reused from
``--store DIR``). Whole processes, interleaved, median of ``--repetitions``:

* ``pytest --klaud-ab mcp vanilla_sdk`` (latest run of each mode, two report downloads);
  floor: a Python process that imports mlflow, makes the same two searches and downloads
  the same two reports;
* the dashboard's first paint: a process that runs the real app once through Streamlit's
  ``AppTest`` (reads the newest 200 runs, 5 reports for the grid, the latest run's report
  and screenshots, the A/B pair), and the same with all runs read (the sidebar's
  "runs to read" at ``--runs``); floors: a process that imports mlflow and pages through
  the same runs and downloads the same reports (``History``, no Streamlit).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import clean_env, interleaved, machine_table, markdown_table, median
from compare_history import EXPERIMENT, create_store, run_quiet

APP = Path(__file__).resolve().parent.parent / "pytest_klaudbiusz" / "dashboard" / "app.py"

FIRST_PAINT = """
import sys
from streamlit.testing.v1 import AppTest
app = AppTest.from_file({app!r}, default_timeout=600)
app.run()
if {runs} != 200:
    app.sidebar.number_input[0].set_value({runs}).run()
assert not app.exception, app.exception
assert app.subheader, "no A/B verdict"
"""

# the same reads as the first paint, through mlflow alone (History is a thin wrapper)
FLOOR = """
import tempfile
from mlflow.tracking import MlflowClient
client = MlflowClient(tracking_uri={uri!r})
experiment = client.get_experiment_by_name({experiment!r}).experiment_id
where = "tags.framework = 'klaudbiusz' and attributes.status = 'FINISHED'"
runs, token = [], None
while len(runs) < {runs}:
    page = client.search_runs([experiment], where, max_results=min(500, {runs} - len(runs)),
                              order_by=["attributes.start_time DESC"], page_token=token)
    runs += page
    token = page.token
    if not token:
        break
mode = runs[0].data.tags["mode"]
wanted = [r.info.run_id for r in runs if r.data.tags["mode"] == mode][:{reports}]
with tempfile.TemporaryDirectory() as tmp:
    for run_id in wanted:
        try:
            client.download_artifacts(run_id, "evaluation_report.json", tmp)
        except Exception:
            pass
"""

AB_FLOOR = """
import tempfile
from mlflow.tracking import MlflowClient
client = MlflowClient(tracking_uri={uri!r})
experiment = client.get_experiment_by_name({experiment!r}).experiment_id
with tempfile.TemporaryDirectory() as tmp:
    for mode in ("mcp", "vanilla_sdk"):
        where = (f"tags.framework = 'klaudbiusz' and attributes.status = 'FINISHED'"
                 f" and tags.mode = '{{mode}}'")
        [run] = client.search_runs([experiment], where, max_results=1,
                                   order_by=["attributes.start_time DESC"])
        client.download_artifacts(run.info.run_id, "evaluation_report.json", tmp + "/" + mode)
"""


# in one process, imports paid: what a user of a running server waits for (cold caches)
IN_PROCESS = """
import statistics, time
import streamlit as st
from streamlit.testing.v1 import AppTest
paint, floor = [], []
for _ in range({repetitions} + 1):
    st.cache_data.clear()
    st.cache_resource.clear()
    began = time.perf_counter()
    app = AppTest.from_file({app!r}, default_timeout=600).run()
    paint.append(time.perf_counter() - began)
    assert not app.exception and app.subheader, app.exception
    began = time.perf_counter()
    exec(compile({floor!r}, "floor", "exec"))
    floor.append(time.perf_counter() - began)
print(statistics.median(paint[1:]), statistics.median(floor[1:]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--apps", type=int, default=30)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--store", type=Path, help="folder for the store (kept and reused)")
    args = parser.parse_args()

    root = args.store or Path(tempfile.mkdtemp(prefix="klaud-dashboard-bench-"))
    uri = create_store(root / "big", args.runs, args.apps)
    suite = root / "suite"
    suite.mkdir(exist_ok=True)
    (suite / "pytest.ini").write_text("[pytest]\n")
    env = clean_env(
        MLFLOW_DISABLE_TELEMETRY="true",
        KLAUD_DASHBOARD_URI=uri,
        KLAUD_DASHBOARD_EXPERIMENT=EXPERIMENT,
    )
    python = sys.executable

    def script(code: str) -> None:
        run_quiet([python, "-c", code], suite, env)

    def first_paint(runs: int) -> None:
        script(FIRST_PAINT.format(app=str(APP), runs=runs))

    def floor(runs: int) -> None:
        # grid (10 of the latest mode) + latest failures + the A/B pair: at most 12 reports
        script(FLOOR.format(uri=uri, experiment=EXPERIMENT, runs=runs, reports=12))

    variants = {
        "pytest --klaud-ab mcp vanilla_sdk": lambda: run_quiet(
            [
                python,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "--klaud-tracking-uri",
                uri,
                "--klaud-ab",
                "mcp",
                "vanilla_sdk",
            ],
            suite,
            env,
        ),
        "floor: mlflow, 2 searches + 2 report downloads": lambda: script(
            AB_FLOOR.format(uri=uri, experiment=EXPERIMENT)
        ),
        "dashboard first paint (newest 200 runs)": lambda: first_paint(200),
        "floor: mlflow, 200 runs paged + reports": lambda: floor(200),
        f"dashboard paint with all {args.runs} runs": lambda: first_paint(args.runs),
        f"floor: mlflow, {args.runs} runs paged + reports": lambda: floor(args.runs),
    }
    import subprocess

    warm = subprocess.run(
        [python, "-c", IN_PROCESS.format(
            repetitions=args.repetitions, app=str(APP),
            floor=FLOOR.format(uri=uri, experiment=EXPERIMENT, runs=200, reports=12),
        )],
        cwd=suite, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    paint, floor_warm = (float(v) for v in warm.stdout.split()[-2:])
    times = interleaved(variants, args.repetitions)
    medians = {name: median(t) for name, t in times.items()}
    names = list(medians)
    rows = []
    for measured, floor_name in zip(names[::2], names[1::2], strict=True):
        ratio = medians[measured] / medians[floor_name]
        rows.append(
            (measured, f"{medians[measured]:.2f}", f"{medians[floor_name]:.2f}", f"{ratio:.2f}x")
        )
    print(f"## Dashboard and `--klaud-ab` on a SQLite store with {args.runs} evaluations\n")
    print(
        f"Whole-process wall times, median of {args.repetitions} interleaved repetitions; the"
        " floor reads the same runs and reports with mlflow alone:\n"
    )
    rows.append(
        (
            "first paint in a running server (200 runs; imports paid, caches cold)",
            f"{paint:.2f}",
            f"{floor_warm:.2f}",
            f"{paint / floor_warm:.2f}x",
        )
    )
    print(markdown_table(("command", "median wall (s)", "floor (s)", "ratio"), rows))
    print(
        "\nThe 1000-run paint is one process: the first paint (200 runs), then the sidebar's"
        " runs to read set to all; its floor pages through all runs once."
    )
    print()
    print(machine_table())


if __name__ == "__main__":
    main()
