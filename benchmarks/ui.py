"""What the UI check adds per app: the page opened in headless Chromium, judged and shot.

    .venv/bin/python benchmarks/ui.py [--apps 12] [--repeat 3]

Copies the UI sample apps ``renders`` (a page served by the app) and ``trpc-static`` (a
built client served by the plugin, ``/api`` forwarded) from tests/ui_apps, alternately,
into N apps, and runs ``pytest --klaud-no-tracking`` on them with the UI check and with
``--klaud-no-ui``, serially and with ``-n 2``, interleaved. Added wall time per app =
(with - without) / N. While each run goes, the Chromium browser processes it starts are
counted (the main process of each browser, by a marker in its environment): one per
worker, not one per app. After each run, no process carrying the marker may be left.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil
from _common import ROOT, clean_env, machine_table, markdown_table, median, wall_and_cpu

sys.path.insert(0, str(ROOT / "tests"))
from ui_apps import copy_app

SAMPLES = ("renders", "trpc-static")
SUITE = "def test_app(klaud_app):\n    klaud_app.check()\n"


def make_apps(root: Path, count: int) -> Path:
    apps = root / "apps"
    for i in range(count):
        copy_app(SAMPLES[i % len(SAMPLES)], apps / f"app{i:03d}")
    (root / "test_evals.py").write_text(SUITE)
    return apps


class BrowserCounter:
    """Counts the Chromium browsers (main processes) started by processes with ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker, self.browsers = marker, set[int]()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            for proc in psutil.process_iter():
                try:
                    # the browser: the process Playwright's driver started (Debian's
                    # /usr/bin/chromium wrapper script execs the browser in its place)
                    parent = proc.parent()
                    if parent is None or "run-driver" not in " ".join(parent.cmdline()):
                        continue
                    if proc.environ().get("KLAUD_UI_BENCHMARK") == self.marker:
                        self.browsers.add(proc.pid)
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue

    def __enter__(self) -> BrowserCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def left_behind(marker: str) -> int:
    count = 0
    for proc in psutil.process_iter():
        try:
            count += proc.environ().get("KLAUD_UI_BENCHMARK") == marker
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="klaud-ui-bench-") as tmp:
        root = Path(tmp)
        apps = make_apps(root, args.apps)
        layouts = {"serial": [], "-n 2": ["-n", "2"]}
        variants = {"ui": [], "no ui": ["--klaud-no-ui"]}
        walls: dict[tuple[str, str], list[float]] = {}
        cpus: dict[tuple[str, str], list[float]] = {}
        browsers: dict[str, set[int]] = {}
        stage_times: list[float] = []
        leftovers = 0
        for _ in range(args.repeat):
            for layout, layout_args in layouts.items():
                for variant, variant_args in variants.items():
                    marker = uuid.uuid4().hex
                    env = clean_env(KLAUD_UI_BENCHMARK=marker)
                    command = [
                        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "--klaud-apps", str(apps), "--klaud-no-tracking", "--klaud-report-dir",
                        str(root / "report"), *layout_args, *variant_args,
                    ]  # fmt: skip
                    with BrowserCounter(marker) as counter:
                        wall, cpu = wall_and_cpu(command, root, env)
                    time.sleep(0.2)
                    leftovers += left_behind(marker)
                    walls.setdefault((layout, variant), []).append(wall)
                    cpus.setdefault((layout, variant), []).append(cpu)
                    if variant == "ui":
                        browsers[f"{layout} #{len(walls[(layout, variant)])}"] = counter.browsers
                        report = json.loads(
                            (root / "report" / "evaluation_report.json").read_text()
                        )
                        verdicts = {a["metrics"]["ui_renders"] for a in report["apps"]}
                        if verdicts != {True}:
                            sys.exit(f"expected every app to render, got {verdicts}")
                        stage_times += [
                            s["duration_sec"]
                            for a in report["apps"]
                            for s in a["stages"]
                            if s["name"] == "ui"
                        ]
    rows = []
    for layout in layouts:
        ui_wall, no_wall = median(walls[(layout, "ui")]), median(walls[(layout, "no ui")])
        ui_cpu, no_cpu = median(cpus[(layout, "ui")]), median(cpus[(layout, "no ui")])
        rows.append((
            layout,
            f"{no_wall:.1f} s",
            f"{ui_wall:.1f} s",
            f"{(ui_wall - no_wall) / args.apps:.2f} s",
            f"{(ui_cpu - no_cpu) / args.apps:.2f} s",
        ))  # fmt: skip
    print(machine_table())
    print()
    print(f"{args.apps} apps ({', '.join(SAMPLES)} alternately), median of {args.repeat} runs")
    print()
    header = ("layout", "--klaud-no-ui", "UI check", "added wall / app", "added CPU / app")
    print(markdown_table(header, rows))
    print()
    print(
        f"ui stage duration per app: median {median(stage_times):.2f} s,"
        f" max {max(stage_times):.2f} s (first app of each process includes the launch)"
    )
    launches = ", ".join(f"{run}: {len(pids)}" for run, pids in browsers.items())
    print(f"browsers started per run: {launches}")
    print(f"processes left after the runs: {leftovers}")


if __name__ == "__main__":
    main()
