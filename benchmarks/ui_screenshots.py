"""Screenshots of what an MLflow user sees after two evaluations: the run's description,
its traces (one per app) with their assessments, one app's trace, and the two runs
compared app by app in MLflow's evaluation view.

    .venv/bin/python benchmarks/ui_screenshots.py [--out docs/screenshots] [--apps 15]

Starts a real ``mlflow server`` (SQLite store), logs two evaluations of the same apps
with ``log_report`` (as the plugin does, traces included) and opens the UI pages in
headless Chromium (``chromium --headless --screenshot``; no browser library needed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import ROOT, start_mlflow_server, stop_mlflow_server
from tracking_requests import make_report

from pytest_klaudbiusz.tracking import runs as tracking
from pytest_klaudbiusz.tracking.store import configure_mlflow_environment

EXPERIMENT = "/Shared/klaudbiusz-evaluations"
WINDOW = "1920,1080"
RENDER_BUDGET_MS = "15000"  # virtual time the single-page app gets to load its data


def screenshot(chromium: str, url: str, path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="klaud-chromium-") as profile:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                f"--user-data-dir={profile}",
                f"--window-size={WINDOW}",
                f"--virtual-time-budget={RENDER_BUDGET_MS}",
                f"--screenshot={path}",
                url,
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    print(f"{path}: {url}")


def recent(report: dict[str, Any]) -> dict[str, Any]:
    """The report moved to the last hour: the UI's trace list shows the last 7 days."""
    run = report["run"]
    shift = time.time() - 3600 - datetime.fromisoformat(run["started_at"]).timestamp()
    for key in ("started_at", "finished_at"):
        moved = datetime.fromisoformat(run[key]).timestamp() + shift
        run[key] = datetime.fromtimestamp(moved, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for app in report["apps"]:
        for stage in app["stages"]:
            if stage.get("started_at"):
                stage["started_at"] += shift
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--apps", type=int, default=15)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium is not installed")
    configure_mlflow_environment(os.environ)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="klaud-ui-") as tmp:
        server, port = start_mlflow_server(Path(tmp))
        uri = f"http://127.0.0.1:{port}"
        try:
            run_ids = []
            for seed in (7, 8):  # two evaluations of the same apps, different outcomes
                report = recent(make_report(args.apps, seed=seed))
                report["run"]["evaluation_id"] = uuid.uuid4().hex
                run_ids.append(tracking.log_report(report, [], uri, EXPERIMENT))
            from mlflow.tracking import MlflowClient

            client = MlflowClient(uri)
            experiment = client.get_run(run_ids[0]).info.experiment_id
            trace = client.search_traces(
                locations=[experiment], run_id=run_ids[1], include_spans=False, max_results=1
            )[0]
            base = f"{uri}/#/experiments/{experiment}"
            pages = {
                "run_traces.png": f"{base}/runs/{run_ids[1]}/traces",
                "experiment_traces.png": f"{base}/traces",
                "trace.png": f"{base}/traces/{trace.info.trace_id}",
                "evaluation_compare.png": (
                    f"{base}/evaluation-runs?selectedRunUuid={run_ids[1]}"
                    f"&compareToRunUuid={run_ids[0]}"
                ),
            }
            for name, url in pages.items():
                screenshot(chromium, url, args.out / name)
        finally:
            stop_mlflow_server(server)


if __name__ == "__main__":
    main()
