"""Screenshots of the dashboard for the README, taken by the real headless browser.

    .venv/bin/python docs/dashboard_screenshots.py [--out docs] [--runs 24]

Logs ``--runs`` synthetic evaluations (two modes, costs, a gate on some, a screenshot of a
failing app) into a fresh SQLite store through the plugin's own ``log_report``, starts
``pytest --klaud-dashboard`` on a free port of 127.0.0.1, and saves one PNG per view
(``?tab=trends|apps|cost|failures|ab``) with ``chromium --headless``; then stops the server.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image, ImageDraw

from pytest_klaudbiusz.ci import gates
from pytest_klaudbiusz.results.aggregate import build_report
from pytest_klaudbiusz.results.files import write_reports
from pytest_klaudbiusz.results.metrics import CHECKS
from pytest_klaudbiusz.results.model import AppResult, Outcome, StageOutcome
from pytest_klaudbiusz.tracking.runs import log_report

EXPERIMENT = "/Shared/klaudbiusz-evaluations"
VIEWS = ("trends", "apps", "cost", "failures", "ab")
GATE = gates.parse_gate(fail_under=["tests_pass_rate=0.8"])
BROWSER = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def evaluation(index: int, mode: str, started: str) -> dict:
    rng = random.Random(index)
    skill = {"mcp": 0.85, "vanilla_sdk": 0.75}[mode] + 0.05 * rng.random()
    apps = []
    for a in range(20):
        name = f"app-{a:02d}"
        metrics = dict.fromkeys(CHECKS)
        metrics.update(
            build_success=rng.random() < skill + 0.1,
            runtime_success=rng.random() < skill + 0.05,
            tests_pass=rng.random() < skill,
        )
        failed = [c for c in CHECKS if metrics[c] is False]
        stages = [
            StageOutcome(c.split("_")[0], Outcome.FAILED, reason="exit status 1") for c in failed
        ]
        cost = {"cost_usd": round((0.45 if mode == "mcp" else 0.3) + 0.2 * rng.random(), 3)}
        apps.append(
            AppResult(
                name, f"/apps/{name}", metrics=metrics, stages=stages, generation_metrics=cost
            )
        )
    run = {"mode": mode, "started_at": started, "finished_at": started, "mlflow_run_id": None}
    report = build_report(apps, run)
    if index % 3 == 0:
        report["gate"] = gates.evaluate_gate(GATE, report)
    return report


def drawn(png: Path) -> bool:
    """Whether the page was drawn: more than a sliver of the screenshot is not white."""
    histogram = Image.open(png).convert("L").histogram()
    return sum(histogram[:200]) > 0.005 * sum(histogram)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--runs", type=int, default=24)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="klaud-dashboard-shots-"))
    uri = f"sqlite:///{root}/mlflow.db"
    last_id, last_report = "", {}
    for i in range(args.runs):
        mode = "mcp" if i % 2 else "vanilla_sdk"
        report = evaluation(i, mode, f"2026-11-{1 + i // 2:02d}T{6 + 12 * (i % 2):02d}:00:00Z")
        files = write_reports(report, root / f"r{i}")
        last_id, last_report = log_report(report, list(files.values()), uri, EXPERIMENT), report
    failing = next(
        a["app_name"] for a in last_report["apps"] if any(v is False for v in a["metrics"].values())
    )
    shot = root / f"{failing}-home.png"
    image = Image.new("RGB", (640, 400), "white")
    ImageDraw.Draw(image).text((20, 20), f"{failing}: blank page after login", fill="red")
    image.save(shot)
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=uri).log_artifact(last_id, str(shot), "screenshots")

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--klaud-tracking-uri", uri,
         f"--klaud-dashboard={port}"],
        cwd=root, start_new_session=True,
    )  # fmt: skip
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        for view in VIEWS:
            out = (args.out / f"dashboard-{view}.png").resolve()
            for _ in range(12):  # a cold first load can be captured before the app draws
                subprocess.run(
                    [BROWSER, "--headless=new", "--no-sandbox", "--disable-gpu",
                     "--hide-scrollbars", "--window-size=1400,1000",
                     "--virtual-time-budget=30000", f"--screenshot={out}",
                     f"http://127.0.0.1:{port}/?tab={view}"],
                    check=True, capture_output=True, timeout=180,
                )  # fmt: skip
                if drawn(out):
                    break
                time.sleep(5)  # the first session is still reading runs and reports
            print(out)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait()


if __name__ == "__main__":
    main()
