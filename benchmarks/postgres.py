"""PostgreSQL for the apps: the session cluster's start-up, an app's databases, pytest start-up.

    .venv/bin/python benchmarks/postgres.py [--clusters 5] [--apps 20] [--startups 10]

* The throwaway cluster the plugin starts once per session (initdb, start, first
  connection) and its stop (server stopped, folder deleted), ``--clusters`` times.
* One app's two databases on one cluster: created (before the app) and dropped (after
  it, connections terminated), ``--apps`` times.
* What installing pytest-postgresql (a dependency, a pytest plugin of its own) costs every
  pytest start-up: 20 trivial tests with and without ``-p no:postgresql``, interleaved.
Medians are printed as Markdown tables.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import clean_env, interleaved, machine_table, markdown_table, median, run_quiet

from pytest_klaudbiusz.apps.postgres import AppDatabases, SessionCluster, find_pg_ctl


def cluster_times(pg_ctl: Path, repetitions: int) -> tuple[list[float], list[float]]:
    starts, stops = [], []
    for _ in range(repetitions):
        cluster = SessionCluster(pg_ctl)
        began = time.perf_counter()
        cluster.start()
        started = time.perf_counter()
        cluster.stop()
        starts.append(started - began)
        stops.append(time.perf_counter() - started)
        assert not cluster.folder.exists()
    return starts, stops


def database_times(pg_ctl: Path, repetitions: int) -> tuple[list[float], list[float]]:
    cluster = SessionCluster(pg_ctl)
    server = cluster.start()
    creates, drops = [], []
    try:
        for i in range(repetitions):
            began = time.perf_counter()
            databases = AppDatabases.create(server, f"app-{i}")
            created = time.perf_counter()
            problem = databases.drop()
            drops.append(time.perf_counter() - created)
            creates.append(created - began)
            assert problem is None, problem
    finally:
        cluster.stop()
    return creates, drops


def startup_times(repetitions: int) -> dict[str, list[float]]:
    folder = Path(tempfile.mkdtemp(prefix="klaud-bench-"))
    tests = "".join(f"def test_{i}():\n    pass\n\n" for i in range(20))
    (folder / "test_plain.py").write_text(tests, encoding="utf-8")
    env = clean_env()
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    return interleaved(
        {
            "with pytest-postgresql's plugin": lambda: run_quiet(base, folder, env),
            "-p no:postgresql": lambda: run_quiet([*base, "-p", "no:postgresql"], folder, env),
        },
        repetitions,
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=5, help="cluster start/stop rounds")
    parser.add_argument("--apps", type=int, default=20, help="create/drop rounds")
    parser.add_argument("--startups", type=int, default=10, help="pytest start-ups per variant")
    args = parser.parse_args()
    pg_ctl = find_pg_ctl()
    if pg_ctl is None:
        sys.exit("PostgreSQL is not installed (apt-get install postgresql)")
    starts, stops = cluster_times(pg_ctl, args.clusters)
    creates, drops = database_times(pg_ctl, args.apps)
    startups = startup_times(args.startups)
    print(machine_table())
    print(f"\nPostgreSQL binaries: {pg_ctl}\n")
    rows = [
        ("session cluster start (initdb, start, connect)", args.clusters, ms(median(starts))),
        ("session cluster stop (and folder deleted)", args.clusters, ms(median(stops))),
        ("an app's two databases: create", args.apps, ms(median(creates))),
        ("an app's two databases: drop", args.apps, ms(median(drops))),
        ("an app's two databases: create + drop", args.apps, ms(median(creates) + median(drops))),
    ]
    print(markdown_table(("step", "rounds", "median (ms)"), rows))
    print()
    print(
        markdown_table(
            ("pytest start-up, 20 trivial tests", "runs", "median (ms)"),
            [(name, len(times), ms(median(times))) for name, times in startups.items()],
        )
    )


if __name__ == "__main__":
    main()
