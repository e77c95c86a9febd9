"""Wall time of ``pytest -n W`` with the apps in collected order versus longest first.

    .venv/bin/python benchmarks/scheduling.py [--workers 2 4] [--repetitions 1]

The corpus: a few long apps whose names sort last (``zz-long-*``: 8, 7 and 6 s) and
many short ones (``app-*``: 12 x 1 s); each app's build stage sleeps for its time and
it has no server, so the harness adds little. A first run writes the report whose
durations the longest-first order reads. Then, for each worker count, the variants
run interleaved:

* collected: ``--klaud-order=collected`` (xdist's ``load`` scheduling);
* longest-first, xdist load: the order, with xdist's own ``load`` scheduler
  (a conftest returns it from ``pytest_xdist_make_scheduler``);
* longest-first, worksteal: the order with ``--dist worksteal``;
* longest-first: the default (the order, dealt by ``LongestFirstScheduling``);
* fixed cost: the same apps without their sleeps (start-up of the session and the
  workers, harness, reports: 4-9 s on a loaded 2-core machine).

Each variant's wall time less the fixed cost is printed against the ideal,
max(longest app, total work / workers), computed from the durations in the first report.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _common import clean_env, interleaved, machine_table, markdown_table, median, run_quiet

from pytest_klaudbiusz.scale.scheduling import app_durations

LONG = {"zz-long-1": 8.0, "zz-long-2": 7.0, "zz-long-3": 6.0}
SHORT = {f"app-{i:02d}": 1.0 for i in range(12)}
FIXED = "fixed cost"
SUITE = "def test_app(klaud_app):\n    klaud_app.check()\n"
STOCK_LOAD = """\
import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScheduling

    return LoadScheduling(config, log)
"""


def make_apps(folder: Path, sleep: bool = True) -> None:
    for name, seconds in {**LONG, **SHORT}.items():
        app = folder / name
        app.mkdir(parents=True)
        build = f"sleep {seconds}" if sleep else "true"
        (app / "klaud.toml").write_text(
            f'[commands]\nbuild = "{build}"\nstart = ""\ntest = ""\n', encoding="utf-8"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--repetitions", type=int, default=1)
    args = parser.parse_args()
    env = clean_env()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_apps(root / "apps")
        make_apps(root / "instant-apps", sleep=False)
        for suite, conftest in (("suite", None), ("suite-stock-load", STOCK_LOAD)):
            (root / suite).mkdir()
            (root / suite / "test_evals.py").write_text(SUITE, encoding="utf-8")
            if conftest:
                (root / suite / "conftest.py").write_text(conftest, encoding="utf-8")
        common = ["--klaud-no-tracking", "-q", "-p", "no:cacheprovider"]

        def pytest(suite: str, apps: str = "apps") -> list[str]:
            reports = f"{apps}-reports"
            return [
                sys.executable,
                "-m",
                "pytest",
                suite,
                "--klaud-apps",
                apps,
                *common,
                "--klaud-report-dir",
                reports,
            ]

        run_quiet([*pytest("suite"), "--klaud-order=collected"], root, env)
        report_file = root / "apps-reports" / "evaluation_report.json"
        report = json.loads(report_file.read_text(encoding="utf-8"))
        durations = app_durations(report)
        print(machine_table(), end="\n\n")
        print(
            f"{len(durations)} apps, {sum(durations.values()):.1f} s of work in all,"
            f" longest {max(durations.values()):.1f} s (from the first report)\n"
        )
        rows = []
        for workers in args.workers:
            n = ["-n", str(workers)]
            variants = {
                "collected": [*pytest("suite"), *n, "--klaud-order=collected"],
                "longest-first, xdist load": [*pytest("suite-stock-load"), *n],
                "longest-first, worksteal": [*pytest("suite"), *n, "--dist", "worksteal"],
                "longest-first": [*pytest("suite"), *n],
                FIXED: [*pytest("suite", "instant-apps"), *n],
            }
            times = interleaved(
                {name: (lambda a=argv: run_quiet(a, root, env)) for name, argv in variants.items()},
                args.repetitions,
                warmup=0,
            )
            ideal = max(max(durations.values()), sum(durations.values()) / workers)
            fixed = median(times.pop(FIXED))
            for name, elapsed in times.items():
                wall = median(elapsed)
                rows.append(
                    (
                        workers,
                        name,
                        f"{wall:.1f}",
                        f"{fixed:.1f}",
                        f"{wall - fixed:.1f}",
                        f"{ideal:.1f}",
                        f"{(wall - fixed) / ideal:.2f}",
                    )
                )
        header = ("-n", "order", "wall s", "fixed cost s", "wall - fixed", "ideal s", "ratio")
        print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
