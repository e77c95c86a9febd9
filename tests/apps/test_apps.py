"""Discovery, the klaud.toml manifest and template detection (pytest_klaudbiusz.apps.plan)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from pytest_klaudbiusz.apps.plan import (
    COMMAND_STAGES,
    DEFAULT_HEALTH,
    DEFAULT_READY_TIMEOUT,
    DataEndpoint,
    ManifestError,
    discover_apps,
)
from pytest_klaudbiusz.apps.templates import detect_template, plan_app

NPM_INSTALL = "npm install --no-audit --no-fund"


def write(root: Path, files: dict[str, str | dict[str, Any]]) -> Path:
    """Write ``files`` (relative path -> text, or a dict written as JSON) under ``root``."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content) if isinstance(content, dict) else content)
    return root


def package(**scripts: str) -> dict[str, Any]:
    return {"name": "app", "scripts": scripts}


# --- discovery ------------------------------------------------------------------


def test_discovery_one_app_per_subfolder_sorted_and_skips_harness_folders(tmp_path: Path) -> None:
    for name in ("zeta", "alpha", "my app", "café 東京", ".hidden", ".git", "logs",
                 "node_modules", "__pycache__"):  # fmt: skip
        (tmp_path / name).mkdir()
    (tmp_path / "notes.txt").write_text("not an app")
    (tmp_path / "beta.json").write_text("{}")
    (tmp_path / "alpha" / "nested").mkdir()  # only direct subfolders are apps

    names = [p.name for p in discover_apps(tmp_path)]

    assert names == sorted(["alpha", "my app", "zeta", "café 東京"])
    assert all(p.parent == tmp_path for p in discover_apps(tmp_path))


def test_discovery_of_an_empty_folder_finds_nothing(tmp_path: Path) -> None:
    assert discover_apps(tmp_path) == []


# --- manifest -------------------------------------------------------------------


def manifest_plan(tmp_path: Path, toml: str, files: dict[str, Any] | None = None) -> Any:
    write(tmp_path, {**(files or {}), "klaud.toml": toml})
    return plan_app(tmp_path)


def test_full_manifest_sets_every_key(tmp_path: Path) -> None:
    plan = manifest_plan(
        tmp_path,
        """
[commands]
install = "make deps"
build = "make"
typecheck = "make check"
start = "./serve --port $PORT"
test = "make test"
[runtime]
health = "/api/ping"
ready_timeout = 12
port_env = ["SERVER_PORT", "VITE_PORT"]
[env]
APP_DATABASE_URL = "${EVAL_DATABASE_URL}"
MODE = "eval"
[[data]]
method = "GET"
path = "/api/trpc/getSales"
[[data]]
method = "post"
path = "/api/analytics/revenue"
""",
    )
    assert plan.template_type == "unknown"  # no files to detect: the manifest says it all
    assert plan.commands == {
        "install": "make deps",
        "build": "make",
        "typecheck": "make check",
        "start": "./serve --port $PORT",
        "test": "make test",
        "schema": None,
        "seed": None,
    }
    assert plan.health == ("/api/ping",)
    assert plan.ready_timeout == 12.0 and isinstance(plan.ready_timeout, float)
    assert plan.port_env == ("SERVER_PORT", "VITE_PORT")
    assert plan.env == {"APP_DATABASE_URL": "${EVAL_DATABASE_URL}", "MODE": "eval"}
    assert plan.data == [
        DataEndpoint("GET", "/api/trpc/getSales"),
        DataEndpoint("POST", "/api/analytics/revenue"),
    ]


def test_empty_manifest_keeps_detection(tmp_path: Path) -> None:
    files = {"package.json": package(build="vite build", start="node server.js", test="vitest")}
    with_manifest = manifest_plan(tmp_path, "", files)
    (tmp_path / "klaud.toml").unlink()
    assert with_manifest == detect_template(tmp_path)
    assert with_manifest.template_type == "npm"
    assert with_manifest.health == DEFAULT_HEALTH
    assert with_manifest.ready_timeout == DEFAULT_READY_TIMEOUT
    assert with_manifest.port_env == () and with_manifest.env == {}


def test_manifest_overrides_key_by_key_and_absent_keys_fall_back(tmp_path: Path) -> None:
    files = {"package.json": package(build="vite build", start="node server.js", test="vitest")}
    plan = manifest_plan(tmp_path, '[commands]\nstart = "node dist/main.js"\n', files)
    assert plan.template_type == "npm"
    assert plan.commands["start"] == "node dist/main.js"
    assert plan.commands["build"] == "npm run build"  # not in the manifest: detected
    assert plan.commands["test"] == "npm run test"
    assert plan.commands["install"] == NPM_INSTALL


def test_empty_string_command_means_no_such_stage(tmp_path: Path) -> None:
    files = {"package.json": package(build="vite build", start="node s.js", test="vitest")}
    plan = manifest_plan(tmp_path, '[commands]\ntest = ""\ninstall = ""\n', files)
    assert plan.commands["test"] is None
    assert plan.commands["install"] is None
    assert plan.commands["build"] == "npm run build"


def test_manifest_data_replaces_detected_endpoints_only_when_given(tmp_path: Path) -> None:
    files = {
        "package.json": package(start="node s.js"),
        "app.yaml": "command: ['npm', 'start']\n",
        "config/queries/revenue.sql": "select 1",
    }
    detected = manifest_plan(tmp_path, '[runtime]\nhealth = "/ok"\n', files)
    assert detected.data == [DataEndpoint("POST", "/api/analytics/revenue")]
    given = manifest_plan(tmp_path, '[[data]]\npath = "/api/x"\n', files)
    assert given.data == [DataEndpoint("GET", "/api/x")]  # method defaults to GET


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[commands\nstart = 1", "not valid TOML"),
        ("deploy = 'x'", "'deploy'"),
        ("[commands]\ndeploy = 'x'", "'deploy'"),
        ("[runtime]\nport = 3000", "'port'"),
        ("[[data]]\npath = '/x'\nbody = '{}'", "'body'"),
        ("commands = 'npm start'", "[commands]"),
        ("[commands]\nstart = 5", "commands.start"),
        ("[commands]\nstart = ['npm', 'start']", "commands.start"),
        ("[runtime]\nhealth = 'healthcheck'", "runtime.health"),
        ("[runtime]\nhealth = ['/a', '/b']", "runtime.health"),
        ("[runtime]\nready_timeout = '30'", "runtime.ready_timeout"),
        ("[runtime]\nready_timeout = true", "runtime.ready_timeout"),
        ("[runtime]\nready_timeout = 0", "runtime.ready_timeout"),
        ("[runtime]\nready_timeout = inf", "runtime.ready_timeout"),
        ("[runtime]\nready_timeout = nan", "runtime.ready_timeout"),
        ("[runtime]\nport_env = 'SERVER_PORT'", "runtime.port_env"),
        ("[runtime]\nport_env = ['SERVER PORT']", "runtime.port_env"),
        ("[env]\nDEBUG = 1", "env.DEBUG"),
        ("env = 'A=1'", "[env]"),
        ("[data]\npath = '/x'", "data"),
        ("[[data]]\nmethod = 'DELETE'\npath = '/x'", "data.method"),
        ("[[data]]\nmethod = 'GET'\npath = 'api/x'", "data.path"),
        ("[[data]]\nmethod = 'GET'", "data.path"),
    ],
)
def test_malformed_manifest_is_one_line_naming_the_key(tmp_path: Path, toml: str, key: str) -> None:
    with pytest.raises(ManifestError) as excinfo:
        manifest_plan(tmp_path, toml)
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith("klaud.toml: ")
    assert key in message


def test_manifest_not_utf8_is_a_manifest_error(tmp_path: Path) -> None:
    (tmp_path / "klaud.toml").write_bytes(b'[commands]\nstart = "\xff\xfe"\n')
    with pytest.raises(ManifestError, match="not valid TOML"):
        plan_app(tmp_path)


# --- template detection: trpc ------------------------------------------------------

TRPC_ROUTER = """
import { z } from 'zod';
import { publicProcedure, router } from './trpc';

export const appRouter = router({
  healthcheck: publicProcedure.query(() => ({ status: 'ok' })),
  getSales: publicProcedure
    .input(z.object({ region: z.string() }))
    .query(async ({ input }) => db.sales(input.region)),
  createOrder: publicProcedure.input(orderSchema).mutation(async ({ input }) => save(input)),
  getCustomers: publicProcedure.query(async () => db.customers()),
  getSales2: t.procedure.query(() => []),
  listOrders: protectedProcedure.query(() => orders),
});
"""


def trpc_app(root: Path, **extra: Any) -> Path:
    return write(root, {
        "server/package.json": package(build="tsc", start="node dist/index.js", test="node --test"),
        "client/package.json": package(build="vite build", dev="vite"),
        "server/src/index.ts": TRPC_ROUTER,
        **extra,
    })  # fmt: skip


def test_trpc_per_folder_installs_and_server_scripts(tmp_path: Path) -> None:
    plan = detect_template(trpc_app(tmp_path))
    assert plan.template_type == "trpc"
    assert plan.commands["install"] == (
        f"( cd server && {NPM_INSTALL} ) && ( cd client && {NPM_INSTALL} )"
    )
    assert plan.commands["build"] == (  # both parts, client first as the Dockerfiles do
        "( cd client && npm run build ) && ( cd server && npm run build )"
    )
    assert plan.commands["start"] == "cd server && npm run start"
    assert plan.commands["test"] == "cd server && npm run test"
    assert plan.commands["typecheck"] is None  # no script, no tsconfig


def test_trpc_root_scripts_win(tmp_path: Path) -> None:
    root = package(**{
        "install:all": "npm i && cd server && npm i && cd ../client && npm i",
        "build": "npm run build --workspaces", "start": "node server/dist/index.js",
        "test": "npm test --workspaces", "typecheck": "tsc -b",
    })  # fmt: skip
    plan = detect_template(trpc_app(tmp_path, **{"package.json": root}))
    assert plan.template_type == "trpc"
    assert plan.commands == {
        "install": "npm run install:all",
        "build": "npm run build",
        "typecheck": "npm run typecheck",
        "start": "npm run start",
        "test": "npm run test",
        "schema": None,
        "seed": None,
    }


def test_trpc_root_without_install_all_installs_per_folder(tmp_path: Path) -> None:
    plan = detect_template(trpc_app(tmp_path, **{"package.json": package(build="tsc -b")}))
    assert plan.commands["install"] == (
        f"( cd server && {NPM_INSTALL} ) && ( cd client && {NPM_INSTALL} )"
    )
    assert plan.commands["build"] == "npm run build"  # root before client
    assert plan.commands["start"] == "cd server && npm run start"


def test_trpc_server_build_when_client_has_none(tmp_path: Path) -> None:
    app = trpc_app(tmp_path, **{"client/package.json": package(dev="vite")})
    assert detect_template(app).commands["build"] == "cd server && npm run build"


def test_trpc_typecheck_from_script_or_tsconfig(tmp_path: Path) -> None:
    app = trpc_app(tmp_path, **{
        "server/package.json": package(start="tsx src/index.ts", typecheck="tsc --noEmit -p ."),
        "client/tsconfig.json": "{}",
    })  # fmt: skip
    assert detect_template(app).commands["typecheck"] == (
        "( cd server && npm run typecheck ) && ( cd client && npx --no-install tsc --noEmit )"
    )


def test_trpc_without_client_folder_is_not_trpc(tmp_path: Path) -> None:
    write(tmp_path, {"server/package.json": package(start="node index.js")})
    plan = detect_template(tmp_path)
    assert plan.template_type == "unknown"
    assert plan.commands == dict.fromkeys(COMMAND_STAGES)


def test_trpc_endpoints_are_query_procedures_only(tmp_path: Path) -> None:
    plan = detect_template(trpc_app(tmp_path))
    assert plan.data == [  # getSales takes .input(...): it cannot be called blind
        DataEndpoint("GET", "/api/trpc/getCustomers"),  # after a mutation: still found
        DataEndpoint("GET", "/api/trpc/getSales2"),  # t.procedure
        DataEndpoint("GET", "/api/trpc/listOrders"),
    ]


def test_trpc_endpoints_across_files_without_duplicates_or_node_modules(tmp_path: Path) -> None:
    app = trpc_app(tmp_path, **{
        "server/src/index.ts": "export const r = router({ a: publicProcedure.query(() => 1) });",
        "server/src/routers/more.js": "module.exports = { b: publicProcedure.query(f) };",
        "server/src/routers/extra.mjs": "export default { a: publicProcedure.query(g), "
                                        "c: publicProcedure.query(h) };",
        "server/src/node_modules/lib/index.js": "x = { d: publicProcedure.query(f) }",
        "server/src/README.md": "e: publicProcedure.query(f)",
        "server/other/f.ts": "f: publicProcedure.query(f)",  # outside server/src
    })  # fmt: skip
    paths = sorted(e.path for e in detect_template(app).data)
    assert paths == ["/api/trpc/a", "/api/trpc/b", "/api/trpc/c"]
    assert all(e.method == "GET" for e in detect_template(app).data)


def test_trpc_health_procedures_are_not_data(tmp_path: Path) -> None:
    app = trpc_app(tmp_path, **{
        "server/src/index.ts": "router({ healthCheck: publicProcedure.query(ok), "
                               "health: publicProcedure.query(ok), "
                               "mutateMe: publicProcedure.mutation(ok) })",
    })  # fmt: skip
    assert detect_template(app).data == []


def test_trpc_with_app_yaml_and_no_root_package_is_trpc_not_python(tmp_path: Path) -> None:
    app = trpc_app(tmp_path, **{"app.yaml": "command: ['npm', 'run', 'start']\n"})
    assert detect_template(app).template_type == "trpc"


def test_trpc_with_databricks_bundle_files_is_not_dbx_sdk(tmp_path: Path) -> None:
    app = trpc_app(tmp_path, **{
        "package.json": package(start="node server/dist/index.js"),
        "app.yaml": "command: ['npm', 'run', 'start']\n",
        "databricks.yml": "bundle:\n  name: app\n",
    })  # fmt: skip
    plan = detect_template(app)
    assert plan.template_type == "trpc"
    assert DataEndpoint("GET", "/api/trpc/getCustomers") in plan.data


# --- template detection: dbx-sdk ------------------------------------------------------


def test_dbx_sdk_from_queries_and_app_yaml(tmp_path: Path) -> None:
    write(tmp_path, {
        "package.json": package(build="vite build", start="node server.js", test="vitest run"),
        "app.yaml": "command: ['npm', 'run', 'start']\n",
        "config/queries/top_customers.sql": "select 1",
        "config/queries/revenue.sql": "select 2",
        "config/queries/notes.txt": "not a query",
        "tsconfig.json": "{}",
    })  # fmt: skip
    plan = detect_template(tmp_path)
    assert plan.template_type == "dbx-sdk"
    assert plan.commands == {
        "install": NPM_INSTALL,
        "build": "npm run build",
        "typecheck": "npx --no-install tsc --noEmit",
        "start": "npm run start",
        "test": "npm run test",
        "schema": None,
        "seed": None,
    }
    assert plan.data == [
        DataEndpoint("POST", "/api/analytics/revenue"),
        DataEndpoint("POST", "/api/analytics/top_customers"),
    ]


def test_dbx_sdk_from_appkit_server(tmp_path: Path) -> None:
    write(tmp_path, {
        "package.json": package(start="tsx server/server.ts"),
        "server/server.ts": "import { createApp } from '@databricks/appkit';\n",
    })  # fmt: skip
    plan = detect_template(tmp_path)
    assert plan.template_type == "dbx-sdk"
    assert plan.data == []


def test_app_yaml_alone_does_not_make_dbx_sdk(tmp_path: Path) -> None:
    write(tmp_path, {"package.json": package(start="node s.js"), "app.yaml": "env: []\n",
                     "databricks.yml": "bundle: {}\n"})  # fmt: skip
    assert detect_template(tmp_path).template_type == "npm"


# --- template detection: python ---------------------------------------------------------


@pytest.mark.parametrize(
    ("app_yaml", "start"),
    [
        ('command: ["streamlit", "run", "app.py"]\n', "streamlit run app.py"),
        ("command: ['gunicorn', 'app:app', '-w', '4']\n", "gunicorn app:app -w 4"),
        ("command: [python, my app.py]\n", "python 'my app.py'"),
        (
            "command:\n  - gunicorn\n  - app:app\n  - '-w'\n  - 4\nenv:\n  - name: X\n",
            "gunicorn app:app -w 4",
        ),
        ('command:\n- uvicorn\n- "main:app"\n', "uvicorn main:app"),
        ("env: []\ncommand: python server.py --debug\n", "python server.py --debug"),
        ("command: 'python app.py'\n", "python app.py"),
    ],
)
def test_python_start_from_app_yaml_command(tmp_path: Path, app_yaml: str, start: str) -> None:
    write(tmp_path, {"app.yaml": app_yaml, "app.py": "print(1)\n"})
    plan = detect_template(tmp_path)
    assert plan.template_type == "python"
    assert plan.commands["start"] == start


def test_python_app_yaml_port_variable_still_expands(tmp_path: Path) -> None:
    write(tmp_path, {
        "app.yaml": 'command: ["streamlit", "run", "app.py", "--server.port", '
                    '"$DATABRICKS_APP_PORT", "--x=${DATABRICKS_APP_PORT}", "$HOME"]\n',
    })  # fmt: skip
    start = detect_template(tmp_path).commands["start"]
    assert start is not None
    assert start == (
        'streamlit run app.py --server.port "$DATABRICKS_APP_PORT" '
        "--x=\"$DATABRICKS_APP_PORT\" '$HOME'"
    )
    # what the shell passes on: the port expanded, any other variable kept literal
    words = shlex.split(start.replace("$DATABRICKS_APP_PORT", "8123"))
    assert words == ["streamlit", "run", "app.py", "--server.port", "8123", "--x=8123", "$HOME"]


def test_python_without_app_yaml_command_falls_back_to_entry_file(tmp_path: Path) -> None:
    write(tmp_path, {"app.yaml": "env:\n  - name: A\n    value: b\n", "app.py": "print(1)\n"})
    assert detect_template(tmp_path).commands["start"] == "python3 app.py"
    (tmp_path / "app.yaml").unlink()
    (tmp_path / "app.py").rename(tmp_path / "main.py")
    assert detect_template(tmp_path).commands["start"] == "python3 main.py"


def test_python_without_entry_has_no_start(tmp_path: Path) -> None:
    write(tmp_path, {"requirements.txt": "flask==3.0.0\n"})
    plan = detect_template(tmp_path)
    assert plan.template_type == "python"
    assert plan.commands["start"] is None
    assert plan.commands["test"] is None


def test_python_requirements_install_into_a_venv(tmp_path: Path) -> None:
    write(tmp_path, {"app.py": "", "requirements.txt": "# deps\n\nflask==3.0.0\n"})
    plan = detect_template(tmp_path)
    assert plan.commands["install"] == (
        "python3 -m venv .venv && .venv/bin/python -m pip install -q -r requirements.txt"
    )
    assert plan.commands["build"] is not None and "compileall" in plan.commands["build"]
    assert plan.commands["typecheck"] is None


def test_python_without_requirements_installs_nothing(tmp_path: Path) -> None:
    write(tmp_path, {"app.py": "", "requirements.txt": "# nothing yet\n"})
    assert detect_template(tmp_path).commands["install"] is None


def test_python_tests_folder_runs_unittest(tmp_path: Path) -> None:
    write(tmp_path, {"app.py": "", "requirements.txt": "flask==3.0.0\n",
                     "tests/test_app.py": ""})  # fmt: skip
    assert detect_template(tmp_path).commands["test"] == (
        "python3 -m unittest discover -s tests -v"
    )


def test_python_root_test_files_run_unittest_in_place(tmp_path: Path) -> None:
    write(tmp_path, {"app.py": "", "test_app.py": ""})
    assert detect_template(tmp_path).commands["test"] == "python3 -m unittest discover -s . -v"


def test_python_tests_use_pytest_when_required(tmp_path: Path) -> None:
    write(tmp_path, {"app.py": "", "requirements.txt": "flask==3.0.0\npytest>=8\n",
                     "tests/test_app.py": ""})  # fmt: skip
    assert detect_template(tmp_path).commands["test"] == "python3 -m pytest -q"


# --- template detection: npm, package managers, unknown -------------------------------


def test_generic_npm_app(tmp_path: Path) -> None:
    write(tmp_path, {"package.json": package(build="tsc", start="node dist/index.js",
                                             test="jest", typecheck="tsc --noEmit")})  # fmt: skip
    plan = detect_template(tmp_path)
    assert plan.template_type == "npm"
    assert plan.commands == {
        "install": NPM_INSTALL,
        "build": "npm run build",
        "typecheck": "npm run typecheck",
        "start": "npm run start",
        "test": "npm run test",
        "schema": None,
        "seed": None,
    }
    assert plan.data == []


def test_npm_app_without_scripts_has_no_stages_but_install(tmp_path: Path) -> None:
    write(tmp_path, {"package.json": {"name": "bare"}})
    plan = detect_template(tmp_path)
    assert plan.commands == {"install": NPM_INSTALL, "build": None, "typecheck": None,
                             "start": None, "test": None, "schema": None,
                             "seed": None}  # fmt: skip


@pytest.mark.parametrize(
    ("lockfile", "manager"),
    [
        ("bun.lock", "bun"),
        ("bun.lockb", "bun"),
        ("pnpm-lock.yaml", "pnpm"),
        ("yarn.lock", "yarn"),
        ("package-lock.json", "npm"),
        (None, "npm"),
    ],
)
def test_package_manager_from_lockfile(tmp_path: Path, lockfile: str | None, manager: str) -> None:
    files: dict[str, Any] = {"package.json": package(build="b", start="s", test="t")}
    if lockfile:
        files[lockfile] = ""
    plan = detect_template(write(tmp_path, files))
    locked = f"{manager} install --frozen-lockfile"  # a stale lockfile is the app's failure
    install = NPM_INSTALL if manager == "npm" else locked
    assert plan.commands["install"] == install
    assert plan.commands["build"] == f"{manager} run build"
    assert plan.commands["start"] == f"{manager} run start"
    assert plan.commands["test"] == f"{manager} run test"


def test_trpc_package_manager_per_folder_and_from_root_workspace(tmp_path: Path) -> None:
    plan = detect_template(trpc_app(tmp_path, **{"server/pnpm-lock.yaml": ""}))
    assert plan.commands["install"] == (
        f"( cd server && pnpm install --frozen-lockfile ) && ( cd client && {NPM_INSTALL} )"
    )
    assert plan.commands["start"] == "cd server && pnpm run start"
    (tmp_path / "server" / "pnpm-lock.yaml").unlink()
    (tmp_path / "bun.lock").write_text("")  # a workspace: one lockfile at the root
    plan = detect_template(tmp_path)
    assert plan.commands["install"] == (
        "( cd server && bun install --frozen-lockfile )"
        " && ( cd client && bun install --frozen-lockfile )"
    )
    assert plan.commands["start"] == "cd server && bun run start"


def test_app_folder_with_spaces_gets_relative_commands(tmp_path: Path) -> None:
    app = trpc_app(tmp_path / "my app")
    assert detect_template(app).commands["start"] == "cd server && npm run start"


def test_unknown_layout(tmp_path: Path) -> None:
    write(tmp_path, {"index.html": "<h1>hi</h1>", "README.md": "# static"})
    plan = detect_template(tmp_path)
    assert plan.template_type == "unknown"
    assert plan.commands == dict.fromkeys(COMMAND_STAGES)
    assert set(plan.commands) == {
        "install",
        "build",
        "typecheck",
        "start",
        "test",
        "schema",
        "seed",
    }
    assert plan.data == []


@pytest.mark.parametrize(
    "content",
    ["{not json", "[1, 2]", "null", '"text"', '{"scripts": ["build"]}', '{"scripts": null}'],
)
def test_malformed_package_json_does_not_crash_detection(tmp_path: Path, content: str) -> None:
    write(tmp_path, {"package.json": content})
    plan = detect_template(tmp_path)
    assert plan.template_type == "npm"
    assert plan.commands["install"] == NPM_INSTALL  # npm explains the problem at install
    assert plan.commands["build"] is None and plan.commands["start"] is None


def test_malformed_package_json_in_trpc_server(tmp_path: Path) -> None:
    app = trpc_app(tmp_path, **{"server/package.json": "{oops", "client/package.json": "[]"})
    plan = detect_template(app)
    assert plan.template_type == "trpc"
    assert plan.commands["start"] is None and plan.commands["build"] is None


# --- template detection: the generated bun + drizzle/PostgreSQL layout ---------------------

TASKS_APP = Path(__file__).resolve().parents[2] / "evals" / "apps" / "tasks-bun-trpc"


def test_generated_bun_layout_is_run_as_its_deployment_runs_it() -> None:
    plan = plan_app(TASKS_APP)  # no klaud.toml: everything from the files
    assert plan.template_type == "trpc"
    assert plan.commands == {
        "install": "bun install --frozen-lockfile",  # one workspace install at the root
        "build": "( cd client && bun run build ) && ( cd server && bun run build )",
        # tsc --noEmit on a solution-style tsconfig checks nothing: the client needs tsc -b
        "typecheck": "( cd server && npx --no-install tsc --noEmit )"
        " && ( cd client && npx --no-install tsc -b )",
        "start": "cd server && bun run src/index.ts",  # supervisord.conf's program
        "test": "cd server && bun test ./src",  # never the compiled copies under dist/
        "schema": "bun run db:push-ci",
        "seed": "bun run db:seed",
    }
    assert plan.port_env == ("SERVER_PORT",)
    assert plan.data == [  # createHTTPServer without basePath: procedures at /{name}
        DataEndpoint("GET", "/listProjects"),
        DataEndpoint("GET", "/listTasks"),
        DataEndpoint("GET", "/taskStats"),
    ]
    assert plan.unprobed == ("tasksOfProject",)  # it needs an input
    assert plan.typecheck_in_build  # both builds start with that tsc: a pass needs no rerun


def test_typecheck_in_build_only_when_every_build_runs_that_tsc(tmp_path: Path) -> None:
    tsconfig = {"server/tsconfig.json": "{}", "client/tsconfig.json": "{}"}
    app = trpc_app(tmp_path, **tsconfig, **{"client/package.json": package(build="vite build")})
    assert not detect_template(app).typecheck_in_build  # vite does not check types
    write(app, {"client/package.json": package(build="tsc -b && vite build")})
    assert detect_template(app).typecheck_in_build
    write(app, {"client/package.json": package(build="tsc -p tsconfig.build.json && vite")})
    assert not detect_template(app).typecheck_in_build  # another config may check less
    write(app, {"client/package.json": package(build="tsc -b && vite build")})
    write(app, {"server/package.json": package(build="tsc", typecheck="tsc --noEmit --strict")})
    assert not detect_template(app).typecheck_in_build  # its own typecheck script differs


def test_start_without_supervisord_from_main_or_entry(tmp_path: Path) -> None:
    files: dict[str, Any] = {
        "package.json": {"workspaces": ["client", "server"]},
        "bun.lock": "",
        "client/package.json": package(build="vite build"),
        "server/package.json": package(build="tsc"),
        "server/src/index.ts": "createHTTPServer({ router }).listen(process.env.APP_PORT);",
    }
    plan = detect_template(write(tmp_path, files))
    assert plan.commands["start"] == "cd server && bun run src/index.ts"
    assert plan.port_env == ("APP_PORT",)
    write(tmp_path, {"server/package.json": {**package(build="tsc"), "main": "src/main.ts"},
                     "server/src/main.ts": ""})  # fmt: skip
    assert detect_template(tmp_path).commands["start"] == "cd server && bun run src/main.ts"


@pytest.mark.parametrize(
    ("source", "prefix"),
    [
        ("createHTTPServer({ router: appRouter }).listen(port)", ""),
        ("createHTTPServer({ router, basePath: '/trpc/' })", "/trpc"),
        ("app.use('/api/v1/trpc', createExpressMiddleware({ router }))", "/api/v1/trpc"),
        ("fetchRequestHandler({ endpoint: '/api/trpc', req, router })", "/api/trpc"),
        ("handle(req) /* a hand-written adapter */", "/api/trpc"),
    ],
)
def test_trpc_procedures_at_the_base_path_the_server_uses(
    tmp_path: Path, source: str, prefix: str
) -> None:
    router = "export const r = router({ getThings: publicProcedure.query(() => []) });\n"
    app = trpc_app(tmp_path, **{"server/src/index.ts": router + source})
    assert detect_template(app).data == [DataEndpoint("GET", f"{prefix}/getThings")]


def test_test_runner_over_source_test_files_only(tmp_path: Path) -> None:
    app = trpc_app(tmp_path, **{
        "server/package.json": package(build="tsc"),
        "server/src/tests/a.test.ts": "import { test } from 'bun:test';",
        "server/dist/tests/a.test.js": "compiled copy",
        "server/node_modules/x/y.test.js": "a dependency's",
    })  # fmt: skip
    assert detect_template(app).commands["test"] == "cd server && bun test ./src"
    write(app, {"server/top.test.ts": "import { test } from 'bun:test';"})  # never "." (dist/)
    assert detect_template(app).commands["test"] == "cd server && bun test ./src ./top.test.ts"
    (tmp_path / "server" / "top.test.ts").unlink()
    (tmp_path / "server" / "src" / "tests" / "a.test.ts").write_text("import 'vitest';")
    write(tmp_path, {"server/package.json": {**package(build="tsc"),
                                             "devDependencies": {"vitest": "3"}}})  # fmt: skip
    assert detect_template(app).commands["test"] == (
        "cd server && npx --no-install vitest run ./src"
    )
