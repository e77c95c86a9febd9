"""A real PostgreSQL per app: detection, the session's server, two empty databases per app.

The sample app (``postgres_apps/notes``) needs no npm package: its server and its test
command query their database with ``psql``. The real-database tests share one cluster
(the ``postgres_server`` session fixture) through ``--klaud-postgres``; one end-to-end
test lets the plugin start and stop a cluster of its own, under ``-n 2``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import tempfile
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from helpers import NO_TRACKING, Session, apps_by_name, checks, make_suite, read_report, run

from pytest_klaudbiusz.apps import postgres
from pytest_klaudbiusz.apps.database import database_variables, uses_postgres
from pytest_klaudbiusz.apps.plan import ManifestError
from pytest_klaudbiusz.apps.postgres import (
    AppDatabases,
    PostgresError,
    PostgresServer,
    SessionCluster,
    check_url,
    find_pg_ctl,
    without_password,
)
from pytest_klaudbiusz.apps.templates import plan_app

NOTES = Path(__file__).parents[1] / "postgres_apps" / "notes"
ALL_PASS = dict.fromkeys(
    ("build_success", "runtime_success", "tests_pass", "databricks_connectivity"), True
)


def notes_app(apps: Path, name: str, **env: str) -> Path:
    """A copy of the notes app; ``env`` goes into its manifest's ``[env]``."""
    dest = apps / name
    shutil.copytree(NOTES, dest)
    if env:
        lines = "".join(f'{key} = "{value}"\n' for key, value in env.items())
        with (dest / "klaud.toml").open("a", encoding="utf-8") as manifest:
            manifest.write(f"\n[env]\n{lines}")
    return dest


def log_value(app: dict[str, Any], stage: str, label: str) -> str:
    """What the app printed after ``label:`` in a stage's log."""
    tail = next(s["log_tail"] for s in app["stages"] if s["name"] == stage)
    match = re.search(rf"^{label}: (.*)$", tail, re.M)
    assert match, tail
    return match.group(1).strip()


def existing_databases(server: PostgresServer) -> set[str]:
    with psycopg.connect(server.url) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


# --- detection -------------------------------------------------------------------------


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def package(**dependencies: str) -> str:
    return json.dumps({"dependencies": dependencies})


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"package.json": package(pg="^8")}, True),
        ({"server/package.json": package(**{"drizzle-orm": "1", "pg": "8"})}, True),
        ({"server/package.json": package(**{"drizzle-orm": "1"})}, True),
        ({"package.json": package(**{"drizzle-orm": "1", "better-sqlite3": "9"})}, False),
        ({"package.json": package(postgres="3")}, True),
        ({"package.json": package(express="4", react="18")}, False),
        ({"package.json": "not json"}, False),
        (
            {
                "package.json": package(**{"@prisma/client": "5"}),
                "prisma/schema.prisma": 'datasource db {\n  provider = "postgresql"\n}\n',
            },
            True,
        ),
        (
            {
                "package.json": package(**{"@prisma/client": "5"}),
                "prisma/schema.prisma": 'datasource db {\n  provider = "sqlite"\n}\n',
            },
            False,
        ),
        ({"requirements.txt": "flask\npsycopg2-binary==2.9\n"}, True),
        ({"requirements.txt": "flask\n"}, False),
        ({"pyproject.toml": '[project]\ndependencies = [\n  "asyncpg>=0.29",\n]\n'}, True),
        ({"requirements.txt": "flask\npsycopgx\n"}, False),
        ({"client/package.json": package(pg="8")}, False),  # the client is no server
    ],
)
def test_an_app_uses_postgres_when_its_server_depends_on_a_driver(
    tmp_path: Path, files: dict[str, str], expected: bool
) -> None:
    assert uses_postgres(write(tmp_path, files)) is expected


def test_the_url_goes_to_every_database_variable_the_sources_read(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "drizzle.config.ts": "export default { url: process.env.APP_DATABASE_URL! }",
            "server/src/db.ts": (
                "const a = process.env['TEST_DATABASE_URL'];\n"
                "const b = Bun.env.PG_URL; const c = process.env.SERVER_PORT;\n"
            ),
            "server/src/app.py": 'url = os.environ.get("POSTGRES_DSN")\n',
            "server/dist/index.js": "process.env.OLD_DB_URL",  # build output: not the source
            "client/src/api.ts": "import.meta.env.CLIENT_DB_URL",  # the browser's
        },
    )
    assert database_variables(tmp_path) == (
        "APP_DATABASE_URL", "DATABASE_URL", "POSTGRES_DSN", "TEST_DATABASE_URL", "PG_URL",
    )  # fmt: skip


def test_the_manifest_decides_and_adds_variables(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "package.json": package(pg="8"),
            "klaud.toml": '[database]\nenv = ["MY_DB"]\n[env]\nDATABASE_URL = "sqlite://x"\n',
        },
    )
    plan = plan_app(tmp_path)
    assert plan.postgres
    assert plan.database_env == ("APP_DATABASE_URL", "MY_DB")  # its own [env] wins
    write(tmp_path, {"klaud.toml": "[database]\npostgres = false\n"})
    assert not plan_app(tmp_path).postgres
    write(tmp_path, {"package.json": "{}", "klaud.toml": "[database]\npostgres = true\n"})
    assert plan_app(tmp_path).postgres


@pytest.mark.parametrize(
    ("manifest", "error"),
    [
        ("database = 1", "[database] must be a table"),
        ("[database]\nurl = 'x'", "unknown key in [database]: 'url'"),
        ("[database]\npostgres = 'yes'", "database.postgres must be true or false"),
        ("[database]\nenv = 'DB_URL'", "database.env must be a list of variable names"),
        ("[database]\nenv = ['not a name']", "database.env must be a list of variable names"),
    ],
)
def test_a_malformed_database_table_names_its_problem(
    tmp_path: Path, manifest: str, error: str
) -> None:
    write(tmp_path, {"klaud.toml": manifest})
    with pytest.raises(ManifestError) as raised:
        plan_app(tmp_path)
    assert str(raised.value) == f"klaud.toml: {error}"


# --- the server ----------------------------------------------------------------------


def test_pg_ctl_is_found_on_path_else_in_the_newest_install_folder(tmp_path: Path) -> None:
    for folder in ("lib/14/bin", "lib/16/bin", "lib/9/bin", "path"):
        (tmp_path / folder).mkdir(parents=True)
    for folder in ("lib/14/bin", "lib/16/bin", "lib/9/bin"):
        (tmp_path / folder / "pg_ctl").touch()
    globs = (str(tmp_path / "lib/*/bin"),)
    assert find_pg_ctl(str(tmp_path / "path"), globs) == tmp_path / "lib/16/bin/pg_ctl"
    on_path = tmp_path / "path" / "pg_ctl"
    on_path.touch(mode=0o755)
    assert find_pg_ctl(str(tmp_path / "path"), globs) == on_path
    assert find_pg_ctl(str(tmp_path / "nothing"), (str(tmp_path / "none/*"),)) is None


def test_the_cluster_folder_is_one_the_postgres_user_can_reach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As root, PostgreSQL runs as another user: a private temporary folder (pytest's own
    is) would keep it out, so the cluster goes to /tmp."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    cluster = SessionCluster(Path("pg_ctl"))
    try:
        assert cluster.folder.parent == (Path("/tmp") if os.geteuid() == 0 else private)
    finally:
        cluster.stop()
    assert not cluster.folder.exists()


def test_urls_are_checked_and_shown_without_password() -> None:
    assert without_password("postgresql://u:s3cret@h:5/db?sslmode=require") == (
        "postgresql://u@h:5/db?sslmode=require"
    )
    assert without_password("postgres://h/db") == "postgres://h/db"
    check_url("postgres://u@h:5432/db")
    for bad in ("http://h/db", "h:5432", "postgresql://h:port/db"):
        with pytest.raises(PostgresError, match="not a PostgreSQL URL"):
            check_url(bad)


def test_an_apps_databases_are_empty_distinct_and_dropped_with_their_connections(
    postgres_server: PostgresServer,
) -> None:
    first = AppDatabases.create(postgres_server, "Sales Dashboard!")
    second = AppDatabases.create(postgres_server, "Sales Dashboard!")
    names = {*first.names, *second.names}
    assert len(names) == 4
    assert first.names[0].startswith("klaud_sales_dashboard_")
    assert first.names[1] == first.names[0] + "_test"
    assert names <= existing_databases(postgres_server)
    env = first.environment(("APP_DATABASE_URL", "MY_DB"), test=True)
    assert env["APP_DATABASE_URL"] == env["MY_DB"] == first.url(first.names[1])
    assert env["PGDATABASE"] == first.names[1]
    conn = psycopg.connect(env["APP_DATABASE_URL"])  # left open, as a crashed app leaves it
    public = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
    assert conn.execute(public).fetchone() == (0,)
    assert first.drop() is None
    with pytest.raises(psycopg.OperationalError):  # terminated by the drop
        conn.execute("SELECT 1")
    conn.close()
    assert second.drop() is None
    assert not names & existing_databases(postgres_server)


def test_each_app_gets_two_empty_databases_of_its_own_dropped_after_it(
    pytester: pytest.Pytester, postgres_server: PostgresServer
) -> None:
    make_suite(pytester)
    apps = pytester.mkdir("apps")
    for name in ("notes-a", "notes-b"):
        notes_app(apps, name)
    notes_app(apps, "notes-crash", NOTES_CRASH="1")
    # the cluster trusts 127.0.0.1: a password in the URL is accepted, and must never show
    url = postgres_server.url.replace("postgres@", "postgres:pw-8Xq2vL9k@")
    result = run(pytester, NO_TRACKING, f"--klaud-postgres={url}")
    result.assert_outcomes(passed=2, failed=1)
    assert "pw-8Xq2vL9k" not in result.stdout.str() + result.stderr.str()
    assert "pw-8Xq2vL9k" not in (pytester.path / "app-eval" / "evaluation_report.json").read_text()
    assert "klaudbiusz: PostgreSQL 15" in result.stdout.str()
    report = read_report(pytester.path / "app-eval")
    assert report["run"]["postgres"] == {**postgres_server.describe(), "origin": "user server"}
    by_name = apps_by_name(report)
    for name in ("notes-a", "notes-b"):
        app = by_name[name]
        assert checks(app) == {
            **ALL_PASS,
            "type_safety": None,
            "data_returned": True,
            "ui_renders": None,
        }  # an API: no page
        server_db, test_db = (
            app["details"]["databases"]["server"],
            app["details"]["databases"]["test"],
        )
        assert log_value(app, "runtime", "server database") == server_db
        redacted = url.replace("pw-8Xq2vL9k", "[REDACTED]").rsplit("/", 1)[0] + f"/{server_db}"
        assert log_value(app, "runtime", "connecting to") == redacted
        assert log_value(app, "test", "test database") == test_db
    crashed = by_name["notes-crash"]
    assert checks(crashed)["runtime_success"] is False
    names = [n for app in by_name.values() for n in app["details"]["databases"].values()]
    assert len(set(names)) == 6  # no two apps, no two stages share a database
    # notes-a's databases were dropped before notes-b ran
    seen_by_b = log_value(by_name["notes-b"], "test", "klaud databases").split()
    assert sorted(seen_by_b) == sorted(by_name["notes-b"]["details"]["databases"].values())
    assert not set(names) & existing_databases(postgres_server)  # the crashed app's too


def test_the_session_starts_one_cluster_and_leaves_nothing(pytester: pytest.Pytester) -> None:
    """End to end, under ``-n 2``: the controller starts the cluster once for both workers,
    each app has its own databases, and after the session no server, folder or port is left."""
    make_suite(pytester)
    apps = pytester.mkdir("apps")
    for name in ("notes-a", "notes-b"):
        notes_app(apps, name)
    result = run(pytester, NO_TRACKING, "-n", "2")
    result.assert_outcomes(passed=2)
    report = read_report(pytester.path / "app-eval")
    described = report["run"]["postgres"]
    assert described["origin"] == "session cluster"
    assert described["url"].startswith("postgresql://postgres@127.0.0.1:")
    by_name = apps_by_name(report)
    folders = {log_value(app, "test", "data directory") for app in by_name.values()}
    assert len(folders) == 1  # one cluster, not one per worker
    (data_directory,) = folders
    names = {n for app in by_name.values() for n in app["details"]["databases"].values()}
    assert len(names) == 4
    cluster_folder = Path(data_directory).parent
    assert cluster_folder.name.startswith("klaud-postgres-")
    assert not cluster_folder.exists()
    assert postgres_processes(cluster_folder) == []
    port = int(described["url"].rsplit(":", 1)[1].split("/")[0])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0  # nobody listens there any more


def postgres_processes(folder: Path) -> list[int]:
    return [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if str(folder) in " ".join(p.info["cmdline"] or ())
    ]


def test_sigterm_mid_app_stops_the_cluster_and_deletes_it(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    app = notes_app(pytester.mkdir("apps"), "notes")
    started = pytester.path / "testing"
    manifest = (app / "klaud.toml").read_text(encoding="utf-8")
    test = f"test = \"touch '{started}'; sleep 300\""
    (app / "klaud.toml").write_text(manifest.replace('test = "python3 check_test_db.py"', test))
    session = Session(pytester, NO_TRACKING)
    session.wait_for("the test stage", started.exists)
    port = re.search(r"session cluster at postgresql://postgres@127.0.0.1:(\d+)/", session.output)
    assert port, session.output
    (server,) = [  # the postmaster: postgres -D <cluster folder>/data -F -p <port> ...
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if f"-p {port.group(1)}" in " ".join(p.info["cmdline"] or ())
    ]
    cluster = Path(server[server.index("-D") + 1]).parent
    assert cluster.name.startswith("klaud-postgres-")
    os.kill(session.process.pid, signal.SIGTERM)  # only the controller, as CI runners do
    assert session.finish() == pytest.ExitCode.INTERRUPTED, session.output
    assert not cluster.exists()
    assert postgres_processes(cluster) == []


def test_no_postgresql_anywhere_is_an_infra_error_that_says_how_to_get_one(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_suite(pytester)
    apps = pytester.mkdir("apps")
    notes_app(apps, "notes")
    (apps / "plain").mkdir()
    (apps / "plain" / "klaud.toml").write_text('[commands]\nbuild = "true"\n', encoding="utf-8")
    monkeypatch.setattr(postgres, "PG_INSTALL_GLOBS", (str(pytester.path / "none/*/bin"),))
    bins = pytester.mkdir("bin")  # a PATH with the shell tools, without pg_ctl
    for tool in ("true", "sh"):
        (bins / tool).symlink_to(shutil.which(tool) or tool)
    monkeypatch.setenv("PATH", str(bins))
    result = pytester.runpytest_inprocess(NO_TRACKING)
    report = read_report(pytester.path / "app-eval")
    assert report["run"]["postgres"] is None
    app = apps_by_name(report)["notes"]
    assert app["status"] == "infra_error"
    assert "apt-get install postgresql" in app["error"]
    assert "--klaud-postgres URL" in app["error"]
    assert apps_by_name(report)["plain"]["status"] == "evaluated"  # needs no database
    assert result.ret == 1


def test_no_cluster_is_started_when_no_app_needs_one(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    (pytester.mkdir("apps") / "plain").mkdir()
    (pytester.path / "apps" / "plain" / "klaud.toml").write_text(
        '[commands]\nbuild = "true"\n[database]\npostgres = false\n', encoding="utf-8"
    )
    result = pytester.runpytest_inprocess(NO_TRACKING)
    assert "PostgreSQL" not in result.stdout.str()
    assert read_report(pytester.path / "app-eval")["run"]["postgres"] is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1/db", "--klaud-postgres: not a PostgreSQL URL"),
        ("postgresql://u:hunter22@127.0.0.1:{port}/db", "--klaud-postgres: cannot connect to"),
    ],
)
def test_a_bad_postgres_url_is_a_usage_error(
    pytester: pytest.Pytester, closed_port: int, url: str, message: str
) -> None:
    make_suite(pytester)
    notes_app(pytester.mkdir("apps"), "notes")
    result = pytester.runpytest_inprocess(
        NO_TRACKING, f"--klaud-postgres={url.format(port=closed_port)}"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1 and errors[0].startswith(f"ERROR: {message}"), errors
    assert "hunter22" not in result.stderr.str()
    assert not (pytester.path / "app-eval" / "evaluation_report.json").exists()
