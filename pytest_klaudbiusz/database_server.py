"""The session's PostgreSQL, for the apps that use one (see ``apps/postgres.py``).

The controller (or a serial run) settles it in ``pytest_configure``, before any app runs:
the user's server (``--klaud-postgres``, checked by connecting: a bad one is a usage
error), else, when an app of the corpus needs one, a throwaway cluster started once and
stopped at the end of the session. xdist workers get it in their ``workerinput``. When
there is none, the apps that need one are infrastructure errors that say how to get one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_klaudbiusz.apps.plan import ManifestError, discover_apps
from pytest_klaudbiusz.apps.postgres import (
    NO_POSTGRES,
    USER_SERVER,
    PostgresError,
    PostgresServer,
    SessionCluster,
    connect_server,
    find_pg_ctl,
)
from pytest_klaudbiusz.apps.templates import plan_app
from pytest_klaudbiusz.options import OptionReader
from pytest_klaudbiusz.settings import Settings

POSTGRES_INPUT = "klaud_postgres"  # the workerinput key
POSTGRES_KEY = pytest.StashKey["SessionPostgres"]()


def add_options(parser: pytest.Parser) -> None:
    help = (
        "PostgreSQL server where the apps that use one get their databases, as"
        " postgresql://USER:PASSWORD@HOST:PORT/DB (default: a throwaway cluster started"
        " from the machine's PostgreSQL binaries when an app needs one)"
    )
    parser.getgroup("klaudbiusz").addoption(
        "--klaud-postgres", dest="klaud_postgres", metavar="URL", help=help
    )
    parser.addini("klaud_postgres", help)


@dataclass
class SessionPostgres:
    """What this session's apps get: a server, or the reason there is none."""

    server: PostgresServer | None = None
    problem: str = NO_POSTGRES

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        server = self.server.to_dict() if self.server else None
        node.workerinput[POSTGRES_INPUT] = {"server": server, "problem": self.problem}

    def pytest_report_header(self) -> str | None:
        if self.server is None:
            return None
        server = self.server.describe()
        return f"klaudbiusz: PostgreSQL {server['version']}, {server['origin']} at {server['url']}"


def register(config: pytest.Config, settings: Settings) -> None:
    """Settle this process's PostgreSQL (on the controller, or on an xdist worker)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        given = workerinput.get(POSTGRES_INPUT) or {}
        server = given.get("server")
        config.stash[POSTGRES_KEY] = SessionPostgres(
            PostgresServer.from_dict(server) if server else None,
            given.get("problem", NO_POSTGRES),
        )
        return
    session = _on_controller(config, settings)
    config.stash[POSTGRES_KEY] = session
    config.pluginmanager.register(session, "klaud-postgres")


def _on_controller(config: pytest.Config, settings: Settings) -> SessionPostgres:
    url = OptionReader(config).value("klaud_postgres")
    if url:
        try:
            return SessionPostgres(connect_server(url, USER_SERVER))
        except PostgresError as exc:
            raise pytest.UsageError(f"--klaud-postgres: {exc}") from None
    apps_dir = settings.apps_dir
    if apps_dir is None or config.option.collectonly:
        return SessionPostgres()
    if not any(_needs_postgres(app) for app in discover_apps(apps_dir)):
        return SessionPostgres()
    pg_ctl = find_pg_ctl()
    if pg_ctl is None:
        return SessionPostgres()
    cluster = SessionCluster(pg_ctl)
    config.add_cleanup(cluster.stop)  # before starting it: Ctrl-C or SIGTERM may come meanwhile
    try:
        return SessionPostgres(cluster.start())
    except PostgresError as exc:
        return SessionPostgres(problem=str(exc))


def _needs_postgres(app_dir: Path) -> bool:
    try:
        return plan_app(app_dir).postgres
    except ManifestError:  # the app's evaluation reports it
        return False


def session_postgres(config: pytest.Config) -> SessionPostgres:
    return config.stash.get(POSTGRES_KEY, None) or SessionPostgres()


def run_field(config: pytest.Config) -> dict[str, str] | None:
    """The report's ``run.postgres``: which PostgreSQL the apps used, if any."""
    server = session_postgres(config).server
    return server.describe() if server else None
