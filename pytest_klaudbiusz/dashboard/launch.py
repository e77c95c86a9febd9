"""``pytest --klaud-dashboard``: serve the Streamlit dashboard of the configured tracking
store on 127.0.0.1 until Ctrl-C; runs no apps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_klaudbiusz.ci.sources import configured_store, open_history

DEFAULT_PORT = 8501
APP = Path(__file__).with_name("app.py")
MISSING = (
    "--klaud-dashboard needs Streamlit, which is not installed:"
    " pip install 'pytest-klaudbiusz[dashboard]'"
)


def add_options(parser: pytest.Parser) -> None:
    parser.getgroup("klaudbiusz").addoption(
        "--klaud-dashboard",
        dest="klaud_dashboard",
        nargs="?",
        const=-1,
        type=int,
        metavar="PORT",
        help="serve the dashboard of the tracked evaluations on 127.0.0.1:PORT (default: ini"
        f" klaud_dashboard_port or {DEFAULT_PORT}) until Ctrl-C; runs no apps",
    )
    parser.addini(
        "klaud_dashboard_port", f"port of --klaud-dashboard (default {DEFAULT_PORT})", default=""
    )


def wants_dashboard(config: pytest.Config) -> bool:
    return config.getoption("klaud_dashboard") is not None


def port(config: pytest.Config) -> int:
    raw = config.getoption("klaud_dashboard")
    if raw in (None, -1):
        raw = config.getini("klaud_dashboard_port") or DEFAULT_PORT
    try:
        number = int(raw)
    except ValueError:
        number = -1
    if not 0 < number < 65536:
        raise pytest.UsageError(f"--klaud-dashboard: port {raw!r} is not a number 1-65535")
    return number


def dashboard_main(config: pytest.Config) -> int:
    """Check the store (a clear error now, not in the browser), then run Streamlit."""
    try:
        import streamlit  # noqa: F401  the server process imports it; this says if it can
    except ImportError:
        raise pytest.UsageError(MISSING) from None
    number = port(config)
    store = configured_store(config)
    uri, experiment = store.uri, store.experiment
    history = open_history(store)
    from pytest_klaudbiusz.tracking.history import HistoryError

    try:
        history.experiment_id()
    except HistoryError as exc:
        raise pytest.UsageError(str(exc)) from None
    print(
        f"klaudbiusz dashboard of experiment {experiment} at {store.shown}:"
        f" http://127.0.0.1:{number} (Ctrl-C stops it)",
        flush=True,
    )
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", "127.0.0.1", "--server.port", str(number),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    env = {**os.environ, "KLAUD_DASHBOARD_URI": uri, "KLAUD_DASHBOARD_EXPERIMENT": experiment}
    signal.signal(signal.SIGTERM, _interrupt)  # a stopped job stops the server too
    with subprocess.Popen(command, env=env) as server:
        try:
            return server.wait()
        except KeyboardInterrupt:
            server.terminate()
            server.wait()
            return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)
