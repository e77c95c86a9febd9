"""Template detection: how an app is run when its manifest does not say, read from its files.

The templates are the layouts generators produce: ``dbx-sdk`` (AppKit / SQL queries),
``trpc`` (``server/`` + ``client/``; also the generated bun + drizzle/PostgreSQL
workspaces, whose start command, port variable and schema script are read from the
Dockerfile, ``supervisord.conf`` and the server's sources), ``python`` (Databricks
``app.yaml``), and generic ``npm``. Commands run with the package manager the
lockfile names.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_klaudbiusz.apps.database import database_variables, uses_postgres
from pytest_klaudbiusz.apps.plan import (
    COMMAND_STAGES,
    MANIFEST,
    AppPlan,
    DataEndpoint,
    apply_manifest,
    read_manifest,
)


def plan_app(app_dir: Path) -> AppPlan:
    """The app's plan: template detection, then its ``klaud.toml`` key by key."""
    plan = detect_template(app_dir)
    plan.postgres = uses_postgres(app_dir)
    manifest_path = app_dir / MANIFEST
    if manifest_path.is_file():
        apply_manifest(plan, read_manifest(manifest_path))
    if plan.postgres:  # the manifest's names come after the detected ones; its [env] wins
        names = (*database_variables(app_dir), *plan.database_env)
        plan.database_env = tuple(n for n in dict.fromkeys(names) if n not in plan.env)
    return plan


_LOCKFILES = (
    ("bun.lock", "bun"),
    ("bun.lockb", "bun"),
    ("pnpm-lock.yaml", "pnpm"),
    ("yarn.lock", "yarn"),
    ("package-lock.json", "npm"),
)
_FROZEN_INSTALL = {
    "bun": "bun install --frozen-lockfile",
    "pnpm": "pnpm install --frozen-lockfile",
    "yarn": "yarn install --frozen-lockfile",
}
_PROCEDURE = re.compile(r"\b([A-Za-z_$][\w$]*)\s*:\s*(?:\w+\.)*\w*[pP]rocedure\b")
_SOURCE_SUFFIXES = (".ts", ".tsx", ".js", ".mjs", ".cjs", ".mts", ".cts")
_TEST_FILE = re.compile(r"\.(?:test|spec)\.[cm]?[jt]sx?$")
_SKIPPED_PARTS = frozenset({"node_modules", "dist", "build", ".git"})
_ENV_READ = re.compile(
    r"""(?:process\.env|Bun\.env|import\.meta\.env)"""
    r"""(?:\.([A-Za-z_]\w*)|\[\s*['"`]([A-Za-z_]\w*)['"`]\s*\])"""
)
_NOT_THE_APP_PORT = re.compile(r"DB|PG|POSTGRES|DATABASE|REDIS|SMTP|MAIL|MYSQL|MONGO|PROXY")
_SCHEMA_SCRIPTS = ("db:push-ci", "db:push", "db:migrate", "migrate")
_SEED_SCRIPTS = ("db:seed", "seed")


@dataclass
class _NodePackage:
    """A folder with a package.json: its scripts, dependencies and package manager."""

    root: Path
    folder: str  # relative to the app root, "" for the root itself
    data: dict[str, Any]
    manager: str
    locked: bool  # a lockfile names the manager

    @classmethod
    def load(cls, app_dir: Path, folder: str) -> _NodePackage | None:
        path = app_dir / folder / "package.json"
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            data = {}  # a malformed package.json fails at install, where the manager says why
        if not isinstance(data, dict):
            data = {}
        # a workspace keeps its one lockfile at the app root
        manager = next(
            (m for d in (folder, "") for lock, m in _LOCKFILES if (app_dir / d / lock).exists()),
            None,
        )
        return cls(app_dir, folder, data, manager or "npm", manager is not None)

    @property
    def path(self) -> Path:
        return self.root / self.folder

    @property
    def scripts(self) -> dict[str, str]:
        scripts = self.data.get("scripts")
        if not isinstance(scripts, dict):
            return {}
        return {k: v for k, v in scripts.items() if isinstance(k, str) and isinstance(v, str)}

    @property
    def dependencies(self) -> set[str]:
        names: set[str] = set()
        for key in ("dependencies", "devDependencies"):
            table = self.data.get(key)
            if isinstance(table, dict):
                names.update(k for k in table if isinstance(k, str))
        return names

    @property
    def is_workspace(self) -> bool:
        return bool(self.data.get("workspaces"))

    def in_folder(self, command: str, folder: str | None = None) -> str:
        folder = self.folder if folder is None else folder
        return f"cd {shlex.quote(folder)} && {command}" if folder else command

    def install(self) -> str:
        """A locked install where the lockfile allows one: a stale lockfile is the app's
        failure, as it would fail the app's own Dockerfile."""
        if self.locked and self.manager in _FROZEN_INSTALL:
            return self.in_folder(_FROZEN_INSTALL[self.manager])
        args = " --no-audit --no-fund" if self.manager == "npm" else ""
        return self.in_folder(f"{self.manager} install{args}")

    def run(self, script: str) -> str | None:
        if script not in self.scripts:
            return None
        return self.in_folder(f"{self.manager} run {script}")

    def first_script(self, names: tuple[str, ...]) -> str | None:
        return _first(*(self.run(n) for n in names))

    @property
    def builds_with_tsc(self) -> bool:
        """Its build starts with the type check its ``typecheck()`` would run again: plain
        ``tsc`` or ``tsc -b`` on its own tsconfig.json (``-p other.json`` may check less)."""
        build = self.scripts.get("build", "")
        own_config = re.match(r"tsc(?: (?:-b|--build))?(?:\s*(?:&&|;|$))", build) is not None
        return "typecheck" not in self.scripts and own_config

    def typecheck(self) -> str | None:
        """The typecheck script, else ``tsc`` that really checks: ``tsc -b`` for a
        solution-style tsconfig (``files: []`` plus references), on which ``tsc --noEmit``
        checks nothing."""
        if "typecheck" in self.scripts:
            return self.run("typecheck")
        tsconfig = self.path / "tsconfig.json"
        if not tsconfig.is_file():
            return None
        build = "-b" if _is_solution_style(tsconfig) else "--noEmit"
        return self.in_folder(f"npx --no-install tsc {build}")


def _is_solution_style(tsconfig: Path) -> bool:
    text = tsconfig.read_text(errors="replace")
    return '"references"' in text and re.search(r'"files"\s*:\s*\[\s*\]', text) is not None


def _first(*commands: str | None) -> str | None:
    return next((c for c in commands if c), None)


def _joined(*commands: str | None) -> str | None:
    present = [c for c in commands if c]
    return " && ".join(f"( {c} )" for c in present) if len(present) > 1 else _first(*present)


def detect_template(app_dir: Path) -> AppPlan:
    root = _NodePackage.load(app_dir, "")
    if root is not None and _is_dbx_sdk_app(app_dir):
        return _node_plan("dbx-sdk", root, _analytics_endpoints(app_dir))
    server = _NodePackage.load(app_dir, "server")
    if server is not None and (app_dir / "client").is_dir():
        client = _NodePackage.load(app_dir, "client")
        return _trpc_plan(app_dir, root, server, client)
    if root is None and _is_python_app(app_dir):  # after trpc: its app.yaml is no Python marker
        return _python_plan(app_dir)
    if root is not None:
        return _node_plan("npm", root, [])
    return AppPlan("unknown", dict.fromkeys(COMMAND_STAGES))


def _node_plan(template: str, package: _NodePackage, data: list[DataEndpoint]) -> AppPlan:
    commands = {
        "install": package.install(),
        "build": package.run("build"),
        "typecheck": package.typecheck(),
        "start": package.run("start"),
        "test": package.run("test"),
        "schema": package.first_script(_SCHEMA_SCRIPTS),
        "seed": package.first_script(_SEED_SCRIPTS),
    }
    return AppPlan(template, commands, data=data)


def _trpc_plan(
    app_dir: Path,
    root: _NodePackage | None,
    server: _NodePackage,
    client: _NodePackage | None,
) -> AppPlan:
    parts = [p for p in (server, client) if p is not None]
    if root is not None and "install:all" in root.scripts:
        install = root.run("install:all")
    elif root is not None and root.is_workspace:
        install = root.install()
    else:
        install = _joined(*(p.install() for p in parts))
    in_order = [p for p in (root, server) if p is not None]
    endpoints, unprobed = _trpc_endpoints(server.path)
    commands = {
        "install": install,
        # the root's build, else every part's, client first as the generated Dockerfiles do
        "build": (root.run("build") if root else None)
        or _joined(*(p.run("build") for p in (client, server) if p is not None)),
        "typecheck": _first(
            root.run("typecheck") if root else None,
            _joined(*(p.typecheck() for p in parts)),
            root.typecheck() if root else None,  # a root tsconfig.json (project references)
        ),
        "start": _first(*(p.run("start") for p in in_order)) or _deployed_start(app_dir, server),
        "test": _first(*(p.run("test") for p in in_order)) or _test_runner(server),
        "schema": _first(*(p.first_script(_SCHEMA_SCRIPTS) for p in in_order)),
        "seed": _first(*(p.first_script(_SEED_SCRIPTS) for p in in_order)),
    }
    typed = [p for p in parts if p.typecheck()]
    return AppPlan(
        "trpc",
        commands,
        port_env=_port_variables(server.path),
        data=endpoints,
        unprobed=unprobed,
        typecheck_in_build=bool(typed)
        and not (root and {"build", "typecheck"} & set(root.scripts))
        and all(p.builds_with_tsc for p in typed),
    )


# --- the generated bun + drizzle layout: what its deployment runs --------------------


def _deployed_start(app_dir: Path, server: _NodePackage) -> str | None:
    """The server's start command as the app's deployment runs it: a supervisord
    program, else the package's ``main``, else its ``src/index`` entry."""
    program = _supervisord_program(app_dir)
    if program is not None:
        command, directory = program
        return server.in_folder(command, _app_folder(app_dir, directory))
    runner = "bun run" if server.manager == "bun" else "node"
    main = server.data.get("main")
    if isinstance(main, str) and (server.path / main).is_file():
        return server.in_folder(f"{runner} {shlex.quote(main)}")
    for entry in ("src/index.ts", "src/index.js", "index.ts", "index.js"):
        if (server.path / entry).is_file() and (runner == "bun run" or entry.endswith(".js")):
            return server.in_folder(f"{runner} {entry}")
    return None


def _supervisord_program(app_dir: Path) -> tuple[str, str] | None:
    """``(command, directory)`` of the supervisord program that runs the server."""
    path = app_dir / "supervisord.conf"
    if not path.is_file():
        return None
    programs: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if match := re.fullmatch(r"\[program:([^\]]+)\]", line):
            current = programs.setdefault(match.group(1), {})
        elif line.startswith("["):
            current = None
        elif current is not None and "=" in line and not line.startswith(";"):
            key, _, value = line.partition("=")
            current[key.strip()] = value.strip()
    runs_node = [
        (name, p)
        for name, p in programs.items()
        if re.search(r"\b(?:bun|node|tsx|npm)\b", p.get("command", ""))
    ]
    chosen = next((p for name, p in runs_node if "server" in name), None) or next(
        (p for _, p in runs_node), None
    )
    if chosen is None:
        return None
    return chosen["command"], chosen.get("directory", "")


def _app_folder(app_dir: Path, directory: str) -> str:
    """The app folder a deployment path stands for: ``/app/server`` -> ``server``."""
    parts = [p for p in directory.split("/") if p and p != "."]
    for i in range(len(parts)):
        candidate = "/".join(parts[i:])
        if (app_dir / candidate).is_dir():
            return candidate
    return ""


def _sources(folder: Path, *, tests: bool = False) -> Iterator[Path]:
    """The JavaScript/TypeScript sources under a folder (not dependencies or build output)."""
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).parts
        if _SKIPPED_PARTS.intersection(rel) or path.suffix not in _SOURCE_SUFFIXES:
            continue
        if path.is_file() and bool(_TEST_FILE.search(path.name)) == tests:
            yield path


def _port_variables(server_dir: Path) -> tuple[str, ...]:
    """Variables the server's sources read its port from (``SERVER_PORT``, ``APP_PORT``...),
    beyond the ``PORT`` and ``DATABRICKS_APP_PORT`` every app gets."""
    names: list[str] = []
    for path in _sources(server_dir):
        for match in _ENV_READ.finditer(path.read_text(errors="replace")):
            name = match.group(1) or match.group(2)
            upper = name.upper()
            if "PORT" in upper and not _NOT_THE_APP_PORT.search(upper) and name not in names:
                names.append(name)
    return tuple(n for n in names if n not in ("PORT", "DATABRICKS_APP_PORT"))


def _test_runner(server: _NodePackage) -> str | None:
    """With no test script: the runner the test files import, over the source folders that
    hold them only (a build's compiled copies under ``dist/`` are not the app's tests)."""
    files = list(_sources(server.path, tests=True))
    if not files:
        return None
    # each top folder holding tests, or the test file itself at the top: never "." (dist/)
    tops = sorted({f.relative_to(server.path).parts[0] for f in files})
    targets = " ".join(f"./{shlex.quote(top)}" for top in tops)
    texts = " ".join(f.read_text(errors="replace")[:4000] for f in files[:20])
    if "bun:test" in texts or (server.manager == "bun" and "vitest" not in texts):
        return server.in_folder(f"bun test {targets}")
    if "vitest" in server.dependencies:
        return server.in_folder(f"npx --no-install vitest run {targets}")
    if "jest" in server.dependencies:
        return server.in_folder(f"npx --no-install jest {targets}")
    return server.in_folder(f"node --test {targets}")


_BASE_PATH = re.compile(r"""\b(?:basePath|endpoint)\s*:\s*['"`](/[^'"`]*)['"`]""")
_MOUNT = re.compile(
    r"""\.use\(\s*['"`](/[^'"`]*)['"`]\s*,\s*(?:trpcExpress\.)?createExpressMiddleware"""
)


def _trpc_base_path(text: str) -> str:
    """Where the server answers its procedures: ``""`` for a standalone ``createHTTPServer``
    without ``basePath`` (the generated apps' reverse proxy strips ``/api``), the mount
    path or ``basePath`` where there is one, else ``/api/trpc``."""
    if match := _BASE_PATH.search(text) or _MOUNT.search(text):
        return match.group(1).rstrip("/")
    if "createHTTPServer" in text:
        return ""
    return "/api/trpc"


def _trpc_endpoints(server_dir: Path) -> tuple[list[DataEndpoint], tuple[str, ...]]:
    """Query procedures declared in the server's sources, and the queries not probed.

    Mutations are not data reads, and a query that takes ``.input(...)`` cannot be
    called without knowing its input: it is listed as not probed (a manifest can
    list it with its input).
    """
    names: list[str] = []
    unprobed: list[str] = []
    texts = [p.read_text(errors="replace") for p in _sources(server_dir / "src")]
    base = _trpc_base_path("\n".join(texts))
    for text in texts:
        matches = list(_PROCEDURE.finditer(text))
        for i, match in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
            body = text[match.end() : end]
            query, mutation = body.find(".query("), body.find(".mutation(")
            name = match.group(1)
            if not (query >= 0 and (mutation < 0 or query < mutation)):
                continue
            if name.lower().startswith("health") or name in names or name in unprobed:
                continue
            takes_input = 0 <= body.find(".input(") < query
            (unprobed if takes_input else names).append(name)
    return [DataEndpoint("GET", f"{base}/{name}") for name in names], tuple(unprobed)


# --- Databricks apps -------------------------------------------------------------


def _is_dbx_sdk_app(app_dir: Path) -> bool:
    """An AppKit server or SQL query files; app.yaml and databricks.yml alone are any app's."""
    server = app_dir / "server" / "server.ts"
    appkit = server.is_file() and "@databricks/appkit" in server.read_text(errors="replace")
    return appkit or any((app_dir / "config" / "queries").glob("*.sql"))


def _analytics_endpoints(app_dir: Path) -> list[DataEndpoint]:
    queries = sorted((app_dir / "config" / "queries").glob("*.sql"))
    return [DataEndpoint("POST", f"/api/analytics/{q.stem}") for q in queries]


def _is_python_app(app_dir: Path) -> bool:
    markers = ("app.yaml", "app.py", "requirements.txt", "pyproject.toml", "main.py")
    return any((app_dir / m).is_file() for m in markers)


_APP_PORT = re.compile(r"\$(?:DATABRICKS_APP_PORT\b|\{DATABRICKS_APP_PORT\})")


def _shell_join(items: list[str]) -> str:
    """``shlex.join``, except ``$DATABRICKS_APP_PORT``, which Databricks substitutes, expands."""

    def word(item: str) -> str:
        parts = _APP_PORT.split(item)
        if len(parts) == 1:
            return shlex.quote(item)
        return '"$DATABRICKS_APP_PORT"'.join(shlex.quote(p) if p else "" for p in parts)

    return " ".join(word(item) for item in items)


def _app_yaml_command(app_dir: Path) -> str | None:
    """The ``command:`` of a Databricks ``app.yaml`` (a list or a string), without YAML."""
    path = app_dir / "app.yaml"
    if not path.is_file():
        return None
    lines = path.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"command:\s*(.*)$", line)
        if not match:
            continue
        value = match.group(1).strip()
        if value.startswith("["):
            try:
                items = [str(x) for x in json.loads(value.replace("'", '"'))]
            except ValueError:  # a flow list of plain scalars: [python, app.py]
                items = [x.strip().strip("'\"") for x in value.strip("[] ").split(",")]
            return _shell_join([x for x in items if x]) or None
        if value:
            return value.strip("'\"")
        items = []
        for item in lines[i + 1 :]:
            item_match = re.match(r"\s*-\s*(.+)$", item)
            if not item_match:
                break
            items.append(item_match.group(1).strip().strip("'\""))
        return _shell_join(items) if items else None
    return None


def _python_plan(app_dir: Path) -> AppPlan:
    requirements = app_dir / "requirements.txt"
    wanted = [
        line.strip()
        for line in (
            requirements.read_text(errors="replace").splitlines() if requirements.is_file() else []
        )
        if line.strip() and not line.strip().startswith("#")
    ]
    install = (
        "python3 -m venv .venv && .venv/bin/python -m pip install -q -r requirements.txt"
        if wanted
        else None
    )
    start = _app_yaml_command(app_dir)
    if start is None:
        entry = next((e for e in ("app.py", "main.py") if (app_dir / e).is_file()), None)
        start = f"python3 {entry}" if entry else None
    has_tests = (app_dir / "tests").is_dir() or any(app_dir.glob("test_*.py"))
    if not has_tests:
        test = None
    elif any(w.lower().startswith("pytest") for w in wanted):
        test = "python3 -m pytest -q"
    else:
        folder = "tests" if (app_dir / "tests").is_dir() else "."
        test = f"python3 -m unittest discover -s {folder} -v"
    commands = {
        "install": install,
        "build": "python3 -m compileall -q -x '(^|/)[.]venv/' .",
        "typecheck": None,
        "start": start,
        "test": test,
    }
    return AppPlan("python", commands)
