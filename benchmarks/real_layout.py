"""An app of the generated layout: the plugin's evaluation against the minimal by-hand run.

    .venv/bin/python benchmarks/real_layout.py [--repetitions 3] [--app evals/apps/tasks-bun-trpc]

The by-hand sequence is the least that establishes the same verdicts: install, both
builds (their ``tsc`` is the type check), two empty databases, the schema and seed
scripts, start the server and probe its health and queries, stop it, run the tests.
The plugin's run is ``evaluate_app`` with the session's PostgreSQL and, as by default,
the bubblewrap sandbox and limits; the UI check (a separate, optional stage) is off
here and measured by ``benchmarks/ui.py``. Both run on a fresh copy of the app each
time with bun's package cache warm, interleaved; one PostgreSQL cluster serves both.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import machine_table, markdown_table, median

from pytest_klaudbiusz.apps.evaluation import EvalOptions, evaluate_app
from pytest_klaudbiusz.apps.isolation import (
    Bubblewrap,
    CgroupLayout,
    Isolation,
    Limits,
    default_cache_dir,
    tool_folders,
)
from pytest_klaudbiusz.apps.postgres import (
    AppDatabases,
    PostgresServer,
    SessionCluster,
    find_pg_ctl,
)
from pytest_klaudbiusz.apps.processes import free_port
from pytest_klaudbiusz.apps.templates import plan_app

REPO = Path(__file__).resolve().parents[1]


def by_hand(app: Path, server: PostgresServer) -> float:
    """The Dockerfile's and supervisord's steps, then the tests, as a person runs them."""
    plan = plan_app(app)
    databases = AppDatabases.create(server, "by-hand")
    env = {**os.environ, **databases.environment(plan.database_env, test=False)}
    test_env = {**os.environ, **databases.environment(plan.database_env, test=True)}
    began = time.perf_counter()

    def sh(command: str, environ: dict[str, str] = env) -> None:
        subprocess.run(command, shell=True, cwd=app, env=environ, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    try:
        sh("bun install --frozen-lockfile")
        sh("( cd client && bun run build ) && ( cd server && bun run build )")
        sh("bun run db:push-ci && bun run db:seed")
        port = free_port()
        server_process = subprocess.Popen(
            "cd server && exec bun run src/index.ts", shell=True, cwd=app,
            env={**env, "SERVER_PORT": str(port)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for path in ("/healthcheck", *(e.path for e in plan.data)):
                for _ in range(600):
                    try:
                        urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5)
                        break
                    except OSError:
                        time.sleep(0.01)
        finally:
            server_process.terminate()
            server_process.wait()
        sh("cd server && bun test ./src", test_env)
        return time.perf_counter() - began
    finally:
        databases.drop()


def plugin(app: Path, options: EvalOptions) -> float:
    began = time.perf_counter()
    result = evaluate_app(app, options)
    elapsed = time.perf_counter() - began
    failed = result.failed_checks()
    assert not failed, (failed, [s.reason for s in result.stages])
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--app", type=Path, default=REPO / "evals" / "apps" / "tasks-bun-trpc")
    args = parser.parse_args()
    pg_ctl = find_pg_ctl()
    assert pg_ctl is not None, "PostgreSQL binaries are needed"
    cluster = SessionCluster(pg_ctl)
    server = cluster.start()
    bwrap = Bubblewrap(default_cache_dir(os.environ), tool_folders(os.environ["PATH"]))
    isolation = Isolation(None if bwrap.problem() else bwrap, Limits(), CgroupLayout.find())
    options = EvalOptions(os.environ, isolation=isolation, ui=False, postgres=server)
    times: dict[str, list[float]] = {"by hand": [], "plugin": []}
    try:
        with tempfile.TemporaryDirectory(prefix="klaud-bench-") as tmp:
            for i in range(args.repetitions + 1):  # the first round warms bun's cache
                for name in times:
                    copy = Path(tmp, f"{name.replace(' ', '-')}-{i}", args.app.name)
                    shutil.copytree(args.app, copy, ignore=shutil.ignore_patterns("node_modules"))
                    took = by_hand(copy, server) if name == "by hand" else plugin(copy, options)
                    if i:
                        times[name].append(took)
    finally:
        cluster.stop()
    hand, ours = median(times["by hand"]), median(times["plugin"])
    print(machine_table())
    print(markdown_table(
        ["run", f"median wall of {args.repetitions} (s)"],
        [["by hand (minimal sequence)", f"{hand:.2f}"], ["plugin (sandboxed)", f"{ours:.2f}"],
         ["ratio", f"{ours / hand:.2f}x"]],
    ))  # fmt: skip


if __name__ == "__main__":
    main()
