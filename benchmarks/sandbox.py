"""What the sandbox costs: per command, per app, and on the sample corpus.

    .venv/bin/python benchmarks/sandbox.py [--commands 200] [--apps 200] [--corpus]

* per command: ``AppProcesses.run("true")`` as the harness runs every command of an app
  (log pipe, subreaper, clean-up), 5 commands per ``AppProcesses`` (made untimed, as
  for each app) and its ``close`` (which removes the app's cgroup): the time per command
  is that sequence's over 5. Unconfined and confined three ways: limits only (the app's
  cgroup, or rlimits), bubblewrap only, bubblewrap with limits. Variants interleaved,
  medians; the added time is the difference of medians to "none"; the machine's load;
* per app: ``evaluate_app`` on trivial apps (every stage ``true``, a minimal Python
  server answering /health), paired app by app with and without the sandbox and limits
  (order alternating), so the machine's drift stays out of the difference;
* ``--corpus``: the sample corpus (evals/apps) evaluated by pytest with
  ``--klaud-sandbox=none`` and ``=bwrap``, wall time of each (one run each, after a
  warm-up run that fills the package caches).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from _common import (
    ROOT,
    clean_env,
    machine_table,
    markdown_table,
    median,
    timed,
    wall_and_cpu,
)

from pytest_klaudbiusz.apps.evaluation import EvalOptions, evaluate_app
from pytest_klaudbiusz.apps.isolation import (
    Bubblewrap,
    CgroupLayout,
    Isolation,
    Limits,
    default_cache_dir,
)
from pytest_klaudbiusz.apps.logs import BoundedLog
from pytest_klaudbiusz.apps.processes import AppProcesses
from pytest_klaudbiusz.results.model import AppResult

COMMANDS_PER_APP = 5  # install, build, typecheck, start, test
SERVER = """\
import http.server, os
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Health).serve_forever()
"""
MANIFEST = """\
[commands]
install = "true"
build = "true"
typecheck = "true"
start = "exec python3 server.py"
test = "true"

[runtime]
health = "/health"
"""


def variants() -> dict[str, Isolation]:
    bwrap, limits = Bubblewrap(default_cache_dir(os.environ)), Limits()
    cgroups = CgroupLayout.find()
    return {
        "none": Isolation(),
        "limits": Isolation(limits=limits, cgroups=cgroups),
        "bwrap": Isolation(bwrap=bwrap),
        "bwrap + limits": Isolation(bwrap=bwrap, limits=limits, cgroups=cgroups),
    }


def per_command(count: int, tmp: Path) -> str:
    workdir = tmp / "app"
    workdir.mkdir()
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}

    def app(processes: AppProcesses) -> None:
        for _ in range(COMMANDS_PER_APP):
            processes.run("true", workdir, env, BoundedLog(), 30)
        processes.close()

    chosen = variants()
    times: dict[str, list[float]] = {name: [] for name in chosen}
    for round_ in range(count // COMMANDS_PER_APP + 1):  # the first round warms up
        for name, isolation in chosen.items():
            processes = AppProcesses(isolation.confine(workdir, tmp / "own"))  # as for an app
            elapsed = timed(lambda p=processes: app(p)) / COMMANDS_PER_APP  # type: ignore[misc]
            if round_:
                times[name].append(elapsed)
    base = median(times["none"])
    rows = [
        (name, f"{1000 * median(t):.1f}", f"{1000 * (median(t) - base):+.1f}")
        for name, t in times.items()
    ]
    limits_by = chosen["limits"].limits_by
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    title = (
        f"Per command (`true`, {count} runs each in apps of {COMMANDS_PER_APP}, limits by"
        f" {limits_by}; load {load})"
    )
    return f"{title}\n\n" + markdown_table(("variant", "median ms", "added ms"), rows)


def per_app(count: int, tmp: Path) -> str:
    apps = []
    for index in range(count):
        app = tmp / "apps" / f"app-{index:03d}"
        app.mkdir(parents=True)
        (app / "klaud.toml").write_text(MANIFEST)
        (app / "server.py").write_text(SERVER)
        apps.append(app)
    chosen = variants()
    plain = EvalOptions(os.environ, isolation=chosen["none"])
    sandboxed = EvalOptions(os.environ, isolation=chosen["bwrap + limits"])
    without, with_ = [], []
    for index, app in enumerate(apps):
        pair = [(without, plain), (with_, sandboxed)]
        for times, options in pair if index % 2 else reversed(pair):
            times.append(timed(lambda o=options, a=app: check(evaluate_app(a, o))))  # type: ignore[misc]
    differences = [b - a for a, b in zip(without, with_, strict=True)]
    rows = [
        ("without", f"{1000 * median(without):.0f}"),
        ("with bwrap + limits", f"{1000 * median(with_):.0f}"),
        ("added (median of pairs)", f"{1000 * median(differences):+.0f}"),
    ]
    title = f"Per app ({count} trivial apps: 4 commands and a server each)"
    return f"{title}\n\n" + markdown_table(("evaluate_app", "median ms"), rows)


def check(result: AppResult) -> None:
    if failed := result.failed_checks():
        sys.exit(f"a trivial app failed {failed}: {result}")


def corpus(tmp: Path) -> str:
    suite = tmp / "corpus"
    suite.mkdir()
    (suite / "test_apps.py").write_text((ROOT / "evals" / "test_apps.py").read_text())
    (suite / "pytest.ini").write_text(f"[pytest]\nklaud_apps = {ROOT / 'evals' / 'apps'}\n")
    env = clean_env()
    rows = []
    for sandbox in ("bwrap", "none", "bwrap"):  # the first fills the sandbox's caches
        command = [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "--klaud-no-tracking", f"--klaud-sandbox={sandbox}", "--klaud-report-dir=out",
        ]  # fmt: skip
        wall, cpu = wall_and_cpu(command, suite, env)
        rows.append((sandbox, f"{wall:.1f}", f"{cpu:.1f}"))
    rows[0] = ("bwrap (warm-up)", *rows[0][1:])
    title = "Sample corpus (evals/apps, serial)"
    return f"{title}\n\n" + markdown_table(("sandbox", "wall s", "CPU s"), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--apps", type=int, default=200)
    parser.add_argument("--corpus", action="store_true", help="also time the sample corpus")
    args = parser.parse_args()
    problem = Bubblewrap(default_cache_dir(os.environ)).problem()
    if problem:
        sys.exit(f"bubblewrap does not work here: {problem}")
    sections = [machine_table()]
    with tempfile.TemporaryDirectory(prefix="klaud-bench-") as tmp:
        sections.append(per_command(args.commands, Path(tmp)))
        sections.append(per_app(args.apps, Path(tmp)))
        if args.corpus:
            sections.append(corpus(Path(tmp)))
    print("\n\n".join(sections))


if __name__ == "__main__":
    main()
