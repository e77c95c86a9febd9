"""The PostgreSQL adapter: a server where apps get databases, and two empty ones per app.

The server is the user's (``--klaud-postgres URL``) or a throwaway cluster started once
per session from the machine's PostgreSQL binaries with pytest-postgresql's executor
(initdb in a temporary folder, a free port, TCP on 127.0.0.1 only, trust authentication
as that executor sets up). PostgreSQL refuses to run as root: as root, ``pg_ctl`` runs
as the unprivileged ``postgres`` user (else ``nobody``) through a ``runuser`` wrapper,
and the cluster's folder belongs to that user.

Each app gets one database for its server stages and another for its tests, created
with pytest-postgresql's ``DatabaseJanitor`` and dropped after the app (its connections
terminated first). psycopg and pytest-postgresql are imported only when needed.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shlex
import shutil
import stat
import tempfile
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pytest_klaudbiusz.apps.database import LIBPQ_ENV

if TYPE_CHECKING:
    from pytest_postgresql.executors import PostgreSQLExecutor
    from pytest_postgresql.janitor import DatabaseJanitor

SESSION_CLUSTER = "session cluster"
USER_SERVER = "user server"
NO_POSTGRES = (
    "this app uses PostgreSQL and no PostgreSQL was found: install it"
    " (apt-get install postgresql, brew install postgresql) or name a server with"
    " --klaud-postgres URL"
)
#: Where PostgreSQL's server binaries live when they are not on PATH (Debian, Homebrew).
PG_INSTALL_GLOBS = (
    "/usr/lib/postgresql/*/bin",
    "/opt/homebrew/opt/postgresql*/bin",
    "/usr/local/opt/postgresql*/bin",
)
CONNECT_TIMEOUT_SEC = 5
START_TIMEOUT_SEC = 60
_UNPRIVILEGED_USERS = ("postgres", "nobody")


class PostgresError(Exception):
    """No usable PostgreSQL; the one-line message says why."""


@dataclass(frozen=True)
class PostgresServer:
    """A reachable server where the apps' databases are made."""

    url: str  # an administrator's connection URL, password included
    origin: str  # SESSION_CLUSTER or USER_SERVER
    version: str

    def describe(self) -> dict[str, str]:
        """For the report: which PostgreSQL, its URL without the password."""
        return {"origin": self.origin, "version": self.version, "url": without_password(self.url)}

    def to_dict(self) -> dict[str, str]:
        return {"url": self.url, "origin": self.origin, "version": self.version}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> PostgresServer:
        return cls(data["url"], data["origin"], data["version"])


def without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[1]}"))


def check_url(url: str) -> None:
    """A PostgreSQL URL (``postgresql://`` or ``postgres://``), else ``PostgresError``."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError as exc:
        raise PostgresError(f"not a PostgreSQL URL ({exc}): {without_password(url)}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise PostgresError(
            f"not a PostgreSQL URL (postgresql://USER:PASSWORD@HOST:PORT/DB): "
            f"{without_password(url)}"
        )


def connect_server(url: str, origin: str) -> PostgresServer:
    """The server at ``url``, checked by connecting to it; ``PostgresError`` when unreachable."""
    check_url(url)
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_SEC) as conn:
            row = conn.execute("SELECT current_setting('server_version')").fetchone()
    except psycopg.Error as exc:
        raise PostgresError(
            f"cannot connect to {without_password(url)}: {_one_line(exc)}"
        ) from None
    return PostgresServer(url, origin, str(row[0]) if row else "unknown")


# --- the session cluster ---------------------------------------------------------


def find_pg_ctl(path: str | None = None, install_globs: tuple[str, ...] = ()) -> Path | None:
    """``pg_ctl`` on PATH, else in the newest PostgreSQL of a packaged install folder
    (``PG_INSTALL_GLOBS`` by default)."""
    found = shutil.which("pg_ctl", path=path)
    if found:
        return Path(found)
    patterns = install_globs or PG_INSTALL_GLOBS
    folders = [Path(f) for pattern in patterns for f in glob.glob(pattern)]
    candidates = [f / "pg_ctl" for f in folders if (f / "pg_ctl").is_file()]
    return max(candidates, key=_version_key) if candidates else None


def _version_key(pg_ctl: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", str(pg_ctl.parent.parent))) or (0,)


class SessionCluster:
    """A throwaway PostgreSQL cluster in a temporary folder; ``stop`` leaves nothing."""

    def __init__(self, pg_ctl: Path) -> None:
        self.pg_ctl = pg_ctl
        self.folder = Path(tempfile.mkdtemp(prefix="klaud-postgres-", dir=_cluster_parent()))
        self.executor: PostgreSQLExecutor | None = None

    def start(self) -> PostgresServer:
        """initdb and start; ``PostgresError`` (with the server log's tail) on failure."""
        from pytest_postgresql.executors import PostgreSQLExecutor

        from pytest_klaudbiusz.apps.processes import free_port

        port = free_port()
        logfile = self.folder / "postgresql.log"
        try:
            self.executor = PostgreSQLExecutor(
                executable=str(self._executable()), host="127.0.0.1", port=port,
                datadir=str(self.folder / "data"), unixsocketdir=str(self.folder),
                logfile=str(logfile), startparams="-w", dbname="postgres", user="postgres",
                postgres_options="-c listen_addresses=127.0.0.1", timeout=START_TIMEOUT_SEC,
            )  # fmt: skip
            self.executor.start()  # returns once the port is open, maybe still starting up
            launcher = self.executor.process  # pg_ctl start -w: exits when connections work
            if launcher is not None and launcher.wait(START_TIMEOUT_SEC) != 0:
                raise PostgresError(f"pg_ctl start exited {launcher.returncode}")
            url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
            return connect_server(url, SESSION_CLUSTER)
        except Exception as exc:  # initdb or the server failed: the log says why
            log = logfile.read_text(errors="replace") if logfile.is_file() else ""
            tail = " ".join(log.strip().splitlines()[-2:]) or _one_line(exc)
            self.stop()
            raise PostgresError(f"could not start PostgreSQL ({self.pg_ctl}): {tail}") from None

    def _executable(self) -> Path:
        """``pg_ctl`` itself, or as root a wrapper that runs it as an unprivileged user."""
        if os.geteuid() != 0:
            return self.pg_ctl
        user = _unprivileged_user()
        runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
        if user is None or runuser is None:
            raise PostgresError(
                "PostgreSQL does not run as root and there is no postgres or nobody user"
                " and runuser to run it as: run pytest as another user or use --klaud-postgres"
            )
        os.chown(self.folder, user.pw_uid, user.pw_gid)
        wrapper = self.folder / "pg_ctl"
        command = shlex.join([runuser, "-u", user.pw_name, "--", str(self.pg_ctl)])
        # from /: the unprivileged user may not enter the current folder (pytest's tmp)
        wrapper.write_text(f'#!/bin/sh\ncd / && exec {command} "$@"\n', encoding="utf-8")
        wrapper.chmod(stat.S_IRWXU)
        return wrapper

    def stop(self) -> None:
        """Stop the server (fast mode) and delete its folder. Best effort, never raises: a
        server that could not be stopped (interrupted mid-start) shuts itself down once its
        folder is gone (PostgreSQL rechecks its lock file every minute)."""
        with suppress(Exception):
            if self.executor is not None and self.executor.running():
                self.executor.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def _cluster_parent() -> str:
    """The temporary folder, unless as root it is closed to others (pytest's own is): the
    unprivileged user that runs PostgreSQL must reach the cluster's folder, so ``/tmp``."""
    folder = Path(tempfile.gettempdir())
    if os.geteuid() != 0 or all(p.stat().st_mode & stat.S_IXOTH for p in (folder, *folder.parents)):
        return str(folder)
    return "/tmp"


def _unprivileged_user() -> pwd.struct_passwd | None:
    for name in _UNPRIVILEGED_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    return None


# --- one app's databases -----------------------------------------------------------


@dataclass
class AppDatabases:
    """The two empty databases of one app: one for its server stages, one for its tests."""

    server: PostgresServer
    names: tuple[str, str]  # (server stages, test stage)

    def url(self, name: str) -> str:
        parts = urlsplit(self.server.url)
        return urlunsplit(parts._replace(path="/" + quote(name)))

    def environment(self, names: tuple[str, ...], *, test: bool) -> dict[str, str]:
        """``names`` set to the URL of one database, and libpq's PG* variables to match."""
        dbname = self.names[1] if test else self.names[0]
        parts = urlsplit(self.server.url)
        libpq = (
            parts.hostname or "", str(parts.port or 5432), unquote(parts.username or ""),
            unquote(parts.password or ""), dbname,
        )  # fmt: skip
        env = {k: v for k, v in zip(LIBPQ_ENV, libpq, strict=True) if v}
        env.update(dict.fromkeys(names, self.url(dbname)))
        return env

    @classmethod
    def create(cls, server: PostgresServer, app_name: str) -> AppDatabases:
        """Two new databases named after the app, with a random part no other app shares."""
        stem = re.sub(r"[^a-z0-9]+", "_", app_name.lower()).strip("_")[:30] or "app"
        base = f"klaud_{stem}_{secrets.token_hex(4)}"
        databases = cls(server, (base, f"{base}_test"))
        try:
            for name in databases.names:
                _janitor(server, name).init()
        except Exception as exc:
            databases.drop()
            raise PostgresError(f"cannot create the app's databases: {_one_line(exc)}") from None
        return databases

    def drop(self) -> str | None:
        """Drop both databases (their connections terminated first); the problem, if any."""
        problems = []
        for name in self.names:
            try:
                _janitor(self.server, name).drop()
            except Exception as exc:
                problems.append(f"{name}: {_one_line(exc)}")
        return "; ".join(problems) or None


def _janitor(server: PostgresServer, dbname: str) -> DatabaseJanitor:
    from pytest_postgresql.janitor import DatabaseJanitor

    parts = urlsplit(server.url)
    return DatabaseJanitor(
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password) if parts.password is not None else None,
        host=parts.hostname or "",
        port=parts.port or 5432, dbname=dbname,
        maintenance_dbname=parts.path.lstrip("/") or "postgres",
        connection_timeout=CONNECT_TIMEOUT_SEC,
    )  # fmt: skip


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
