"""Shared helpers of the benchmark scripts: machine description, timing, tables.

The benchmarks compare ratios measured within one run on a noisy machine:
repetitions of the variants are interleaved and medians reported.
"""

from __future__ import annotations

import http.client
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.0f} GiB"
    except OSError:
        pass
    return "unknown"


def machine_table() -> str:
    """The machine, as Markdown: paste it beside the results."""
    rows = [
        ("nproc", str(len(os.sched_getaffinity(0)))),
        ("CPU", cpu_model()),
        ("memory", memory_gib()),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", platform.python_version()),
        ("pytest", _version("pytest")),
        ("pytest-xdist", _version("pytest-xdist")),
        ("mlflow", _version("mlflow")),
        ("pytest-klaudbiusz", _version("pytest-klaudbiusz")),
    ]
    return markdown_table(("machine", ""), rows)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def timed(action: Callable[[], object]) -> float:
    """Wall time of ``action()`` in seconds."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def interleaved(
    variants: Mapping[str, Callable[[], object]], repetitions: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Wall times of each variant, run A B A B ... (warm-up rounds discarded)."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(warmup + repetitions):
        for name, action in variants.items():
            elapsed = timed(action)
            if round_ >= warmup:
                times[name].append(elapsed)
    return times


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without variables that would change a pytest run."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "KLAUD_", "MLFLOW_", "EVAL_", "DATABRICKS_"))
    }
    env.update(extra)
    return env


def run_quiet(args: Sequence[str], cwd: Path, env: Mapping[str, str]) -> None:
    """Run a command, failing loudly (with its output) when it fails."""
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):  # 1: some tests failed, which a benchmark may expect
        sys.exit(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")


def wall_and_cpu(command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, of the command and the children it waited
    for) of one run of ``command``; CPU time is less disturbed by other load."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = timed(lambda: run_quiet(command, cwd, env))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_mlflow_server(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A real ``mlflow server`` on 127.0.0.1 (SQLite store and artifacts in ``folder``),
    started as tests/conftest.py's fixture starts it; stop it with ``stop_mlflow_server``."""
    port = free_port()
    command = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination", str(folder / "artifacts"),
    ]  # fmt: skip
    log = open(folder / "server.log", "wb")  # noqa: SIM115 -- the server keeps writing to it
    server = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env=clean_env(MLFLOW_DISABLE_TELEMETRY="true", MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"),
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"mlflow server exited:\n{(folder / 'server.log').read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return server, port
        except OSError:
            pass
        time.sleep(0.2)
    stop_mlflow_server(server)
    sys.exit("mlflow server did not answer /health within 180 s")


def stop_mlflow_server(server: subprocess.Popen[bytes]) -> None:
    """The server and the workers it started (its own process group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(server.pid, sig)
            server.wait(10)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
