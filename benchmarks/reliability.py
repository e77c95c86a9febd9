"""Reliability: hostile apps in real pytest sessions, and runs tracked through a failing server.

    .venv/bin/python benchmarks/reliability.py     # about 2.5 minutes on 2 cores

1. **Hostile corpus.** Every app of ``tests/hostile_apps`` (copied, with the links
   ``link-writer`` writes through), three more copies of ``well-behaved`` and a
   ``token-printer`` that prints the token it is given into every log, evaluated by one
   real ``pytest`` session serially and one with ``-n 2``: 5 s stage timeouts, JUnit XML,
   tracking to a fresh SQLite store, and secrets in the environment (``DATABRICKS_TOKEN``,
   which apps get, and ``ANTHROPIC_API_KEY``, which they must not). After pytest exits:
   apps in the report vs apps collected, wall time vs the timeouts the hostile apps use
   up, processes of the apps still alive (every process of the machine, found by the
   session's marker or by ``KLAUD_APP_TOKEN``), the apps' ports still listening, bytes of
   the secrets in everything the session wrote, and whether the app folders changed.
2. **Runs lost.** Small evaluations tracked through a fault-injecting proxy
   (``tests/mlflow_proxy.py``) in front of a real ``mlflow server``: refused credentials,
   a server dying mid-run, one that never answers, a lost reply, a session killed
   mid-send; then ``pytest --klaud-upload`` and re-uploads of saved reports. Every
   evaluation id is looked for among the runs of the experiment.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from _common import (
    ROOT,
    clean_env,
    machine_table,
    markdown_table,
    start_mlflow_server,
    stop_mlflow_server,
)

sys.path.insert(0, str(ROOT / "tests"))
from helpers import TEST_FILE, make_app
from hostile_apps import HERE as HOSTILE
from hostile_apps import copy_app, tree_digest
from mlflow_proxy import CountingProxy

from pytest_klaudbiusz.apps.plan import discover_apps
from pytest_klaudbiusz.apps.processes import TOKEN_VAR, port_is_free

STAGE_TIMEOUT = 5
TIMEOUTS = [
    arg for stage in ("install", "build", "typecheck", "test")
    for arg in ("--klaud-timeout", f"{stage}={STAGE_TIMEOUT}")
]  # fmt: skip
SESSION_TIMEOUT = 600
WELL_BEHAVED_COPIES = 3
TOKEN_PRINTER = """\
# Prints the Databricks token it is given, and its whole environment, into every log.
[commands]
build = 'echo "token: $DATABRICKS_TOKEN"; env'
start = 'echo "token: $DATABRICKS_TOKEN"; exec python3 -m http.server --bind 127.0.0.1 "$PORT"'
test = 'env; echo "token: $DATABRICKS_TOKEN" >&2; exit 1'

[runtime]
health = "/"
ready_timeout = 10
"""
GIVEN, REFUSED = "DATABRICKS_TOKEN", "ANTHROPIC_API_KEY"
TIMEOUT_REASON = re.compile(r"(?:timed out after|not healthy within) (\d+(?:\.\d+)?)s$")


def run(args: Sequence[str], cwd: Path, env: dict[str, str]) -> tuple[int, float, str, str]:
    """Exit status, wall time and output of a command."""
    start = time.perf_counter()
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=SESSION_TIMEOUT
    )
    return done.returncode, time.perf_counter() - start, done.stdout, done.stderr


def pytest_env(**extra: str) -> dict[str, str]:
    return clean_env(PYTHONPATH=str(ROOT), **extra)


# --- 1. the hostile corpus ---------------------------------------------------------------


def make_corpus(root: Path) -> tuple[Path, Path]:
    """The apps folder and the user's files ``link-writer`` links to."""
    apps = root / "apps"
    apps.mkdir()
    for app in sorted(p for p in HOSTILE.iterdir() if (p / "klaud.toml").is_file()):
        copy_app(app.name, apps)
    copy_app("bun-lockfile", apps)  # no klaud.toml: run by template detection
    for i in range(2, 2 + WELL_BEHAVED_COPIES):
        copy_app("well-behaved", apps, f"well-behaved-{i}")
    (apps / "token-printer").mkdir()
    (apps / "token-printer" / "klaud.toml").write_text(TOKEN_PRINTER)
    user_files = root / "user-files"
    user_files.mkdir()
    (user_files / "secret.txt").write_text("top secret\n")
    link_writer = apps / "link-writer"
    up = Path(os.path.relpath(user_files, link_writer))
    (link_writer / "abs_link").symlink_to(user_files / "secret.txt")
    (link_writer / "rel_link").symlink_to(up / "secret.txt")
    (link_writer / "dir_link").symlink_to(up, target_is_directory=True)
    (link_writer / "abs_inside_link").symlink_to(link_writer / "data" / "inside.txt")
    (link_writer / "inside_link").symlink_to(Path("data", "inside.txt"))
    return apps, user_files


@dataclass
class HostileSession:
    label: str
    exit_code: int
    wall: float
    collected: int
    report: dict[str, Any]
    junit_cases: int
    timeouts_hit: float
    processes_left: list[str]
    ports_left: list[str]
    leaks: dict[str, dict[str, int]]  # where -> variable -> bytes
    changed: list[str]


def processes_left(marker: str, folder: Path) -> list[str]:
    """Processes of the session's apps still alive, among all processes of the machine:
    the marker in argv or environment, or an app token with the session's TMPDIR or cwd
    (other evaluations may run on this machine: their tokens are not ours)."""
    found = []
    for proc in psutil.process_iter():
        try:
            cmdline = " ".join(proc.cmdline())
            environ = proc.environ()
            ours = marker in cmdline or environ.get("HOSTILE_MARKER") == marker
            if TOKEN_VAR in environ:
                ours |= environ.get("TMPDIR", "").startswith(str(folder))
                ours |= proc.cwd().startswith(str(folder))
            if ours and proc.pid != os.getpid():
                found.append(f"{proc.pid} {proc.status()} {cmdline[:100]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def ports_left(report: dict[str, Any]) -> list[str]:
    """Ports given to the apps that something still holds, with who holds them."""
    left = []
    for app in report["apps"]:
        port = app["details"].get("port")
        if port and not port_is_free(port):
            owners = {
                c.pid for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == port
            }
            left.append(f"{app['app_name']}: {port} (pids {sorted(p for p in owners if p)})")
    return left


def timeouts_hit(report: dict[str, Any]) -> float:
    """Seconds the report's stages spent waiting for a timeout (hangs, never healthy)."""
    total = 0.0
    for app in report["apps"]:
        for stage in app.get("stages", []):
            if match := TIMEOUT_REASON.search(stage.get("reason") or ""):
                total += float(match.group(1))
    return total


def files_under(*folders: Path) -> list[Path]:
    return [p for f in folders if f.exists() for p in f.rglob("*") if p.is_file()]


def leaked(
    secrets: dict[str, str], files: Iterable[Path], texts: Iterable[str] = ()
) -> dict[str, int]:
    """Bytes of each secret value in the files and texts."""
    blobs = [p.read_bytes() for p in files] + [t.encode() for t in texts]
    return {
        name: sum(b.count(value.encode()) for b in blobs) * len(value)
        for name, value in secrets.items()
    }


def changes(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]) -> list[str]:
    return [
        f"{root}/{key}"
        for root in before
        for key in sorted(before[root].keys() | after[root].keys())
        if before[root].get(key) != after[root].get(key)
    ]


def hostile_session(
    root: Path, apps: Path, label: str, xdist: bool, watched: dict[str, Path]
) -> HostileSession:
    folder = root / label.replace(" ", "")
    outside, tmp, store = folder / "outside", folder / "tmp", folder / "store"
    for path in (outside, tmp, store):
        path.mkdir(parents=True)
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / "test_evals.py").write_text(TEST_FILE)
    marker = f"hostile-{uuid.uuid4().hex}"
    secrets = {GIVEN: f"dapi{uuid.uuid4().hex}", REFUSED: f"sk-ant-{uuid.uuid4().hex}"}
    env = pytest_env(
        TMPDIR=str(tmp),
        HOSTILE_MARKER=marker,
        HOSTILE_PIDFILE=str(outside / "pids"),
        HOSTILE_DIR=str(outside),
        HOSTILE_PYTHON=sys.executable,
        **secrets,
    )
    report_dir, junit = folder / "app-eval", folder / "junit.xml"
    args = [
        sys.executable, "-m", "pytest", "test_evals.py", "-p", "no:cacheprovider",
        "--klaud-apps", str(apps), "--klaud-mode", "reliability", *TIMEOUTS,
        "--klaud-tracking-uri", f"sqlite:///{store}/mlflow.db",
        "--klaud-report-dir", str(report_dir), "--junitxml", str(junit),
        *(["-n", "2"] if xdist else []),
    ]  # fmt: skip
    before = {name: tree_digest(path) for name, path in watched.items()}
    code, wall, stdout, stderr = run(args, folder, env)
    left = processes_left(marker, folder)  # at once: nothing may outlive the session
    report_path = report_dir / "evaluation_report.json"
    if not report_path.exists():
        sys.exit(f"{label}: no report (exit {code}):\n{stdout[-3000:]}\n{stderr[-3000:]}")
    report = json.loads(report_path.read_text())
    junit_text = junit.read_text() if junit.exists() else ""
    leaks = {
        "report folder": leaked(secrets, files_under(report_dir)),
        "JUnit XML": leaked(secrets, [], [junit_text]),
        "pytest stdout and stderr": leaked(secrets, [], [stdout, stderr]),
        "MLflow store (mlflow.db, artifacts)": leaked(secrets, files_under(store)),
        "outbox": leaked(secrets, files_under(folder / ".klaud-outbox")),
        "files the apps wrote outside their copy": leaked(secrets, files_under(outside)),
    }
    return HostileSession(
        label=label,
        exit_code=code,
        wall=wall,
        collected=len(discover_apps(apps)),
        report=report,
        junit_cases=junit_text.count("<testcase "),
        timeouts_hit=timeouts_hit(report),
        processes_left=left,
        ports_left=ports_left(report),
        leaks=leaks,
        changed=changes(before, {name: tree_digest(path) for name, path in watched.items()}),
    )


def print_hostile(sessions: list[HostileSession], apps: Path) -> None:
    hostile = sorted(p.name for p in HOSTILE.iterdir() if (apps / p.name).is_dir())
    print("## Hostile apps in a real pytest session\n")
    print(
        f"{len(discover_apps(apps))} apps: the {len(hostile)} of `tests/hostile_apps` "
        f"({', '.join(f'`{n}`' for n in hostile)}), {WELL_BEHAVED_COPIES} more copies of "
        f"`well-behaved`, and `token-printer` (prints its `{GIVEN}` into every log). Stage "
        f"timeouts {STAGE_TIMEOUT} s; `{GIVEN}` (given to apps) and `{REFUSED}` (never given) "
        "set to random values. The exit status is 1: apps fail, which is what is measured.\n"
    )
    rows = []
    for s in sessions:
        summary = s.report["summary"]
        secret_bytes = sum(
            n
            for where, by_name in s.leaks.items()
            for name, n in by_name.items()
            if where != "files the apps wrote outside their copy" or name == REFUSED
        )
        rows.append(
            (
                s.label,
                f"{s.collected} / {len(s.report['apps'])} / {s.junit_cases}",
                f"{summary['evaluated']} / {summary['infra_errors']} / {summary['not_run']}",
                s.exit_code,
                f"{s.wall:.1f}",
                f"{s.timeouts_hit:g}",
                len(s.processes_left),
                len(s.ports_left),
                secret_bytes,
                "yes" if not s.changed else f"**no** ({len(s.changed)} entries)",
            )
        )
    header = (
        "session", "apps collected / in report / JUnit cases", "evaluated / infra_error / not_run",
        "exit", "wall (s)", "timeouts waited out (s)", "processes left", "ports left listening",
        "secret bytes leaked", "app folders unchanged",
    )  # fmt: skip
    print(markdown_table(header, rows))
    print(
        "\n*timeouts waited out*: the sum of the stage timeouts the report's stages hit "
        "(hangs, never healthy), the least a serial session could take. *secret bytes "
        f"leaked*: bytes of either secret in the report folder, the JUnit XML, pytest's "
        f"output, the MLflow store and the outbox, plus `{REFUSED}` anywhere the apps wrote "
        f"(`{GIVEN}` is theirs: `env-dump` writes it to its own files).\n"
    )
    print("Where the secrets were looked for (bytes found):\n")
    rows = [
        (s.label, where, by_name[GIVEN], by_name[REFUSED])
        for s in sessions
        for where, by_name in s.leaks.items()
    ]
    print(markdown_table(("session", "where", f"`{GIVEN}`", f"`{REFUSED}`"), rows))
    last = sessions[-1].report
    printer = next(a for a in last["apps"] if a["app_name"] == "token-printer")
    redacted = json.dumps(printer["stages"]).count("[REDACTED]")
    print(
        f"\nControl: `token-printer`'s log tails in the `-n 2` report hold `[REDACTED]` "
        f"{redacted} times where it printed the token.\n"
    )
    print("Outcome of each app (the `-n 2` session):\n")
    rows = [
        (
            f"`{app['app_name']}`",
            app["status"],
            "; ".join(
                f"{s['name']}: {s['reason']}" for s in app["stages"] if s["outcome"] == "failed"
            )
            or app.get("error")
            or "-",
        )
        for app in last["apps"]
    ]
    print(markdown_table(("app", "status", "failed stages"), rows))
    for s in sessions:
        for line in s.processes_left + s.ports_left + s.changed:
            print(f"\n**{s.label}: left behind**: {line}")
    print()


# --- 2. runs lost -------------------------------------------------------------------------

EXPERIMENT = "/Shared/klaud-reliability"
REUPLOADED = (1, 3, 6, 7)  # sent at once, replaced a partial run, lost reply, killed
FAST_FAIL = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "1", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}


@dataclass(frozen=True)
class Fault:
    label: str
    mode: str
    healthy_until: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    kill: bool = False  # SIGKILL the session once a request after healthy_until hangs


FAULTS = (
    Fault("server answers", "forward"),
    Fault("credentials refused (401)", "deny"),
    Fault("server dies after creating the run", "drop", "runs/create"),
    Fault("server never answers (timeout 1 s, no retries)", "hang", None, FAST_FAIL),
    Fault("server answers (sends what waits)", "forward"),
    Fault("reply to the final update lost", "lose-reply", "runs/set-tag"),
    Fault("session killed (SIGKILL) mid-send", "hang", "runs/create", kill=True),
    Fault("server dies before the run", "drop"),
)


@dataclass
class Tracked:
    fault: Fault
    exit_code: int
    wall: float
    evaluation_id: str
    said: str


def what_it_said(stdout: str) -> str:
    sent = len(re.findall(r"^outbox: sent ", stdout, re.MULTILINE))
    said = "kept in the outbox" if "MLflow tracking failed" in stdout else "tracked"
    return f"{said}, sent {sent} waiting" if sent else said


def upload_outcome(line: str) -> str:
    """What ``pytest --klaud-upload`` says it did with one evaluation of the outbox."""
    if line.startswith("outbox: sent "):
        return "sent"
    if line.startswith("outbox: could not send "):
        return "could not be sent"
    if "was already in MLflow" in line:
        return "already in MLflow"
    return "waiting for another target"


def killed_mid_send(
    args: list[str], project: Path, env: dict[str, str], proxy: CountingProxy
) -> tuple[int, float, str]:
    """Run the session until a request after ``healthy_until`` hangs, then SIGKILL it."""
    start = time.perf_counter()
    with subprocess.Popen(
        args, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    ) as session:  # fmt: skip
        deadline = time.monotonic() + SESSION_TIMEOUT
        while proxy.behaviour() != "hang":  # until a request after healthy_until came
            if session.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the session to be killed ended first (exit {session.poll()})")
            time.sleep(0.05)
        time.sleep(0.5)  # the hanging request is on its way
        os.killpg(session.pid, signal.SIGKILL)
        code = session.wait()
    return code, time.perf_counter() - start, "killed mid-send"


def runs_lost(root: Path) -> None:
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    project = root / "project"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\nklaud_apps = apps\n")
    (project / "test_evals.py").write_text(TEST_FILE)
    make_app(project, "passing")
    make_app(project, "failing-tests", test="false")
    server_root = root / "server"
    server_root.mkdir()
    server, port = start_mlflow_server(server_root)
    direct = f"http://127.0.0.1:{port}"
    proxy = CountingProxy(direct)
    common = [
        "-p", "no:cacheprovider", "--klaud-mode", "reliability", "--klaud-tracking-uri",
        proxy.uri, "--klaud-experiment", EXPERIMENT, "--klaud-outbox", "outbox",
    ]  # fmt: skip
    tracked: list[Tracked] = []
    try:
        for i, fault in enumerate(FAULTS, 1):
            proxy.requests.clear()
            proxy.mode, proxy.healthy_until = fault.mode, fault.healthy_until
            reports = project / "reports" / f"{i:02d}"
            args = [sys.executable, "-m", "pytest", *common, "--klaud-report-dir", str(reports)]
            env = pytest_env(**fault.env)
            if fault.kill:
                code, wall, said = killed_mid_send(args, project, env, proxy)
            else:
                code, wall, stdout, stderr = run(args, project, env)
                said = what_it_said(stdout)
            report = json.loads((reports / "evaluation_report.json").read_text())
            tracked.append(Tracked(fault, code, wall, report["run"]["evaluation_id"], said))
        proxy.requests.clear()
        proxy.mode, proxy.healthy_until = "forward", None
        code, upload_wall, stdout, stderr = run(
            [sys.executable, "-m", "pytest", *common, "--klaud-upload"], project, pytest_env()
        )
        upload_lines = [line for line in stdout.splitlines() if line.startswith("outbox:")]
        if code != 0:
            sys.exit(f"--klaud-upload exited {code}:\n{stdout}\n{stderr}")
        reuploads: Counter[str] = Counter()
        start = time.perf_counter()
        for i in REUPLOADED:
            report = f"reports/{i:02d}/evaluation_report.json"
            code, _, stdout, stderr = run(
                [sys.executable, "-m", "pytest", *common, "--klaud-upload", report],
                project,
                pytest_env(),
            )
            reuploads["not logged again" if "not logged again" in stdout else f"exit {code}"] += 1
        reupload_wall = time.perf_counter() - start
        client = MlflowClient(tracking_uri=direct)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        runs = client.search_runs(
            [experiment.experiment_id], run_view_type=ViewType.ALL, max_results=1000
        )
    finally:
        proxy.stop()
        stop_mlflow_server(server)

    waiting = list((project / "outbox").glob("*"))
    ids = [t.evaluation_id for t in tracked]
    active = [r for r in runs if r.info.lifecycle_stage == "active"]
    complete = Counter(
        r.data.tags.get("klaud_evaluation_id")
        for r in active
        if r.info.status in ("FINISHED", "KILLED")
    )
    by_id = Counter(r.data.tags.get("klaud_evaluation_id") for r in active)
    statuses = Counter(r.info.status for r in active)
    deleted = sum(r.info.lifecycle_stage == "deleted" for r in runs)

    print("## Runs lost: tracking through a failing server\n")
    print(
        f"{len(FAULTS)} evaluations (2 tiny apps each, one with failing tests: exit 1) tracked "
        "through a proxy in front of a real "
        "`mlflow server`, one fault each, then `pytest --klaud-upload` with the server "
        "answering, then `pytest --klaud-upload <report>` of some saved reports (the same "
        "options, `--klaud-mode` included).\n"
    )
    rows = [
        (i, t.fault.label, t.exit_code, f"{t.wall:.1f}", t.said) for i, t in enumerate(tracked, 1)
    ]
    print(markdown_table(("#", "fault", "exit", "wall (s)", "what the session did"), rows))
    outcomes = Counter(upload_outcome(line) for line in upload_lines)
    print(
        f"\n`pytest --klaud-upload` ({upload_wall:.1f} s), the evaluations left in the outbox: "
        + (", ".join(f"{n} {kind}" for kind, n in outcomes.items()) or "nothing to send")
    )
    print(
        f"\n`pytest --klaud-upload <report>` again for evaluations {REUPLOADED} "
        f"({reupload_wall:.1f} s): "
        + ", ".join(f"{n} {what}" for what, n in reuploads.items())
        + "\n"
    )
    lost = [i for i in ids if complete[i] == 0]
    duplicated = [i for i in ids if by_id[i] > 1]
    rows = [
        ("evaluations (distinct `run.evaluation_id` in the reports)", len(set(ids))),
        ("runs in MLflow with `klaud_evaluation_id`, FINISHED or KILLED", sum(complete.values())),
        (
            "other runs left active (RUNNING, FAILED)",
            sum(n for s, n in statuses.items() if s not in ("FINISHED", "KILLED")),
        ),
        ("partial runs deleted when their evaluation was sent again", deleted),
        ("**lost** (evaluation without a complete run)", len(lost)),
        ("**duplicated** (evaluation with more than one active run)", len(duplicated)),
        ("left in the outbox", len(waiting)),
    ]
    print(markdown_table(("runs", "count"), rows))
    for i in lost:
        print(f"\n**lost**: evaluation {i}")
    for i in duplicated:
        print(f"\n**duplicated**: evaluation {i} ({by_id[i]} runs)")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-hostile", action="store_true", help="only the runs-lost part")
    parser.add_argument("--skip-runs-lost", action="store_true", help="only the hostile part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="klaud-reliability-") as tmp_name:
        root = Path(tmp_name)
        if not args.skip_hostile:
            apps, user_files = make_corpus(root)
            watched = {"apps": apps, "user-files": user_files, "tests/hostile_apps": HOSTILE}
            sessions = [
                hostile_session(root, apps, label, xdist, watched)
                for label, xdist in (("serial", False), ("-n 2", True))
            ]
            print_hostile(sessions, apps)
        if not args.skip_runs_lost:
            runs_lost(root)
    print(machine_table())


if __name__ == "__main__":
    main()
