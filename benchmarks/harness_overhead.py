"""Harness overhead per app: what evaluating an app costs beyond its own commands.

    .venv/bin/python benchmarks/harness_overhead.py [--apps 200] [--profile 50]

Generates trivial apps whose klaud.toml stages are ``true`` and whose start command
is a minimal Python HTTP server answering /health ("server"), or that have no start
command ("no server": runtime fails fast with "no start command"). For each kind:

* paired, app by app (order alternating): the baseline, i.e. the app's commands run
  directly with ``subprocess`` in the harness's pattern (``shell=True``,
  ``start_new_session``, output to a log file; the server polled every 5 ms until
  /health answers, then its group killed), and ``evaluate_app`` on the same app in
  this process. Overhead = evaluate_app - baseline, per app; pairing keeps the
  machine's load drift out of the difference;
* pytest: ``pytest <suite> --klaud-apps DIR --klaud-no-tracking -q`` on all apps and
  on one app (its fixed cost: start-up, collection, reports), so
  marginal = ((pytest_N - baseline_N) - (pytest_1 - baseline_1)) / (N - 1).
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import json
import os
import pstats
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from functools import partial
from pathlib import Path

import psutil
from _common import (
    clean_env,
    interleaved,
    machine_table,
    markdown_table,
    median,
    run_quiet,
    timed,
)

from pytest_klaudbiusz.apps.evaluation import EvalOptions, evaluate_app
from pytest_klaudbiusz.results.model import AppResult

STAGES = ("install", "build", "typecheck", "test")
SERVER = """\
import http.server
import os


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Health).serve_forever()
"""
SUITE = "def test_app(klaud_app):\n    klaud_app.check()\n"


def make_apps(folder: Path, count: int, server: bool) -> list[Path]:
    folder.mkdir(parents=True)
    start = "python3 server.py" if server else ""
    commands = "".join(f'{stage} = "true"\n' for stage in STAGES)
    manifest = f'[commands]\n{commands}start = "{start}"\n[runtime]\nhealth = "/health"\n'
    apps = []
    for i in range(count):
        app = folder / f"app-{i:03d}"
        app.mkdir()
        (app / "klaud.toml").write_text(manifest)
        if server:
            (app / "server.py").write_text(SERVER)
        apps.append(app)
    return apps


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _spawn(command: str, cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            command, shell=True, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def baseline(app: Path, logs: Path, server: bool) -> None:
    """The app's own commands, nothing else: what no harness can avoid paying."""
    port = _free_port()
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"), "PORT": str(port)}
    for stage in STAGES[:3]:
        _spawn("true", app, env, logs / f"{stage}.log").wait()
    if server:
        popen = _spawn("python3 server.py", app, env, logs / "runtime.log")
        while not _healthy(port):
            if popen.poll() is not None:
                sys.exit(f"baseline server of {app.name} exited {popen.returncode}")
            time.sleep(0.005)
        os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()
        reap_orphans()
    _spawn("true", app, env, logs / "test.log").wait()


def reap_orphans() -> None:
    """Reap killed grandchildren re-parented to us (evaluate_app made us a subreaper)."""
    with suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def evaluate(app: Path, errors: list[str]) -> None:
    """evaluate_app; like the plugin, a harness exception is recorded, not raised."""
    try:
        result: AppResult = evaluate_app(app, EvalOptions(os.environ))
        runtime = result.stage("runtime")
        if runtime is not None and runtime.reason not in ("", "no start command"):
            errors.append(f"{app.name}: runtime {runtime.reason}")
    except Exception as exc:
        errors.append(f"{app.name}: harness error: {type(exc).__name__}: {exc}")


def check_report(report_dir: Path, apps: int, server: bool) -> str | None:
    """What is wrong with the evaluation the pytest run reported, if anything."""
    report = json.loads((report_dir / "evaluation_report.json").read_text())
    summary = report["summary"]
    if summary["evaluated"] == apps and summary["runtime_success_rate"] == float(server):
        return None
    app = next((a for a in report["apps"] if a["status"] != "evaluated"), report["apps"][0])
    return f"pytest run: {summary['evaluated']}/{apps} evaluated; e.g. {app['app_name']}: " + (
        app["error"] or "; ".join(app["issues"])
    )


def reap_leftovers(root: Path) -> int:
    """Kill processes still running in our temp folder (which the harness must not leave)."""
    leftovers = []
    for proc in psutil.process_iter(["cwd"]):
        cwd = proc.info["cwd"] or ""
        if cwd.startswith(str(root)) and proc.pid != os.getpid():
            leftovers.append(proc)
    for proc in leftovers:
        proc.kill()
    psutil.wait_procs(leftovers, timeout=3)
    return len(leftovers)


def profile(apps: list[Path], top: int) -> str:
    profiler = cProfile.Profile()
    errors: list[str] = []
    for app in apps:
        profiler.runcall(evaluate, app, errors)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats("pytest_klaudbiusz|psutil", top)
    stats.sort_stats("tottime").print_stats(top)
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip() and "Ordered by" not in ln]
    return "\n".join(lines)


def measure(tmp: Path, env: dict[str, str], n: int, server: bool) -> list[str]:
    label = "server" if server else "no server"
    apps = make_apps(tmp / f"apps-{label}", n, server)
    single = make_apps(tmp / f"single-{label}", 1, server)
    report_n, report_1 = tmp / f"report-{label}-n", tmp / f"report-{label}-1"
    logs = tmp / "logs"
    errors: list[str] = []

    def pytest_run(folder: Path, report: Path) -> None:
        command = [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "--klaud-apps", str(folder), "--klaud-no-tracking", "--klaud-report-dir", str(report),
        ]  # fmt: skip
        run_quiet(command, tmp / "suite", env)

    evaluate(single[0], errors)  # warm-up
    base: list[float] = []
    harness: list[float] = []
    for i, app in enumerate(apps):
        run_base, run_harness = partial(baseline, app, logs, server), partial(evaluate, app, errors)
        if i % 2:
            base.append(timed(run_base))
            harness.append(timed(run_harness))
        else:
            harness.append(timed(run_harness))
            base.append(timed(run_base))
    small = {
        "baseline 1": lambda: baseline(single[0], logs, server),
        "pytest 1": lambda: pytest_run(single[0].parent, report_1),
    }
    t1 = {k: median(v) for k, v in interleaved(small, 5, warmup=1).items()}
    wall = timed(lambda: pytest_run(apps[0].parent, report_n))
    problems = [p for p in (check_report(report_n, n, server), *errors[:1]) if p]
    if problems:
        sys.exit(f"{label}: the evaluation went wrong, nothing was measured:\n{problems[0]}")
    overhead = [h - b for h, b in zip(harness, base, strict=True)]
    marginal = (wall - sum(base)) - (t1["pytest 1"] - t1["baseline 1"])
    return [
        label,
        f"{1000 * median(base):.0f}",
        f"{1000 * median(harness):.0f}",
        f"**{1000 * median(overhead):.1f}**",
        f"{1000 * sum(overhead) / n:.1f}",
        f"{wall:.2f}",
        f"{t1['pytest 1'] - t1['baseline 1']:.2f}",
        f"**{1000 * marginal / (n - 1):.1f}**",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=200, help="apps per evaluation")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also cProfile evaluate_app over N server apps")  # fmt: skip
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="klaud-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for folder in ("suite", "logs", "work"):
            (tmp / folder).mkdir()
        (tmp / "suite" / "pytest.ini").write_text("[pytest]\n")
        (tmp / "suite" / "test_apps.py").write_text(SUITE)
        # Working copies go under tmp (found and removed with it); byte-code cached as usual.
        env = clean_env(PYTHONPYCACHEPREFIX=str(tmp / "pycache"), TMPDIR=str(tmp / "work"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        tempfile.tempdir = str(tmp / "work")
        try:
            rows = [measure(tmp, env, args.apps, s) for s in (True, False)]
            profiled = ""
            if args.profile:
                profiled = profile(make_apps(tmp / "apps-profile", args.profile, True), 15)
        finally:
            leftovers = reap_leftovers(tmp)
            tempfile.tempdir = None

    print(f"## Harness overhead per app ({args.apps} apps, serial)\n")
    print(
        "Stages `true`; start `python3 server.py` (http.server answering /health) or none. "
        "Baseline: the same commands run directly; evaluate_app and baseline measured in "
        "pairs, app by app. pytest: one run on all apps; its fixed cost from 5 runs on one app.\n"
    )
    header = (
        "apps", "baseline (ms/app, median)", "evaluate_app (ms/app, median)",
        "evaluate_app overhead (ms/app, median of pairs)", "(mean)", "pytest, all apps (s)",
        "pytest fixed cost (s)", "pytest marginal overhead (ms/app)",
    )  # fmt: skip
    print(markdown_table(header, rows))
    print(f"\nProcesses left running in the benchmark's folders afterwards: {leftovers}.\n")
    if profiled:
        print(f"### cProfile of evaluate_app over {args.profile} server apps\n")
        print("```\n" + profiled + "\n```\n")
    print(machine_table())


if __name__ == "__main__":
    main()
