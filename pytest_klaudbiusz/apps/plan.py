"""How an app is discovered and how it is run: its manifest, else its template.

``plan_app`` turns an app folder into an ``AppPlan``: the shell command of each
stage (``None`` when the app has no such stage), the health paths to poll and
the data endpoints to query. A ``klaud.toml`` manifest wins key by key; what it
leaves out comes from template detection on the files.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SKIPPED_FOLDERS = frozenset({"logs", "node_modules", "__pycache__"})
COMMAND_STAGES = ("install", "build", "typecheck", "start", "test")
DEFAULT_HEALTH = ("/healthcheck", "/health", "/")
DEFAULT_READY_TIMEOUT = 30.0
MANIFEST = "klaud.toml"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ManifestError(ValueError):
    """A malformed ``klaud.toml``; the message names the file and the key."""


@dataclass(frozen=True)
class DataEndpoint:
    method: str
    path: str


@dataclass(frozen=True)
class UiManifest:
    """``[ui]`` of ``klaud.toml``: where the app's page is, and a static client to serve."""

    path: str = "/"
    static: str | None = None  # a folder of the working copy served beside the app
    api_prefix: str = "/api"  # requests under it go to the app, the prefix stripped


@dataclass
class AppPlan:
    template_type: str
    commands: dict[str, str | None]
    health: tuple[str, ...] = DEFAULT_HEALTH
    ready_timeout: float = DEFAULT_READY_TIMEOUT
    port_env: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    data: list[DataEndpoint] = field(default_factory=list)
    ui: UiManifest | None = None  # None: found by what the running app serves


def discover_apps(apps_dir: Path) -> list[Path]:
    """One app per direct subfolder, sorted by name, harness folders skipped."""
    return sorted(
        (
            p
            for p in apps_dir.iterdir()
            if p.is_dir() and not p.name.startswith(".") and p.name not in SKIPPED_FOLDERS
        ),
        key=lambda p: p.name,
    )


def plan_app(app_dir: Path) -> AppPlan:
    plan = detect_template(app_dir)
    manifest_path = app_dir / MANIFEST
    if manifest_path.is_file():
        apply_manifest(plan, _read_manifest(manifest_path))
    return plan


# --- manifest ---------------------------------------------------------------


def _read_manifest(path: Path) -> dict[str, Any]:
    import tomllib  # not at module level: every pytest run imports this module

    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{MANIFEST}: not valid TOML ({exc})") from None


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ManifestError(f"{MANIFEST}: [{key}] must be a table")
    return value


def _check_keys(table: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ManifestError(f"{MANIFEST}: unknown key {where}{unknown[0]!r}")


def apply_manifest(plan: AppPlan, data: dict[str, Any]) -> None:
    _check_keys(data, ("commands", "runtime", "env", "data", "ui"), "")
    commands = _table(data, "commands")
    _check_keys(commands, COMMAND_STAGES, "in [commands]: ")
    for stage, command in commands.items():
        if not isinstance(command, str):
            raise ManifestError(f"{MANIFEST}: commands.{stage} must be a string")
        plan.commands[stage] = command or None
    runtime = _table(data, "runtime")
    _check_keys(runtime, ("health", "ready_timeout", "port_env"), "in [runtime]: ")
    if "health" in runtime:
        health = runtime["health"]
        if not isinstance(health, str) or not health.startswith("/"):
            raise ManifestError(f"{MANIFEST}: runtime.health must be a path starting with '/'")
        plan.health = (health,)
    if "ready_timeout" in runtime:
        timeout = runtime["ready_timeout"]
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout <= 3600
        ):
            raise ManifestError(f"{MANIFEST}: runtime.ready_timeout must be seconds in (0, 3600]")
        plan.ready_timeout = float(timeout)
    if "port_env" in runtime:
        names = runtime["port_env"]
        if not isinstance(names, list) or not all(
            isinstance(n, str) and _ENV_NAME.fullmatch(n) for n in names
        ):
            raise ManifestError(f"{MANIFEST}: runtime.port_env must be a list of variable names")
        plan.port_env = tuple(names)
    env = _table(data, "env")
    for name, value in env.items():
        if not _ENV_NAME.fullmatch(name) or not isinstance(value, str):
            raise ManifestError(f"{MANIFEST}: env.{name} must be a string variable")
    plan.env = dict(env)
    if "data" in data:
        plan.data = _data_endpoints(data["data"])
    if "ui" in data:
        plan.ui = _ui_manifest(_table(data, "ui"))


def _ui_manifest(table: dict[str, Any]) -> UiManifest:
    _check_keys(table, ("path", "static", "api_prefix"), "in [ui]: ")
    path, api_prefix = table.get("path", "/"), table.get("api_prefix", "/api")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ManifestError(f"{MANIFEST}: ui.path must be a path starting with '/'")
    if (
        not isinstance(api_prefix, str)
        or not api_prefix.startswith("/")
        or not api_prefix.rstrip("/")
    ):
        raise ManifestError(f"{MANIFEST}: ui.api_prefix must be a path such as '/api'")
    static = table.get("static")
    if static is not None and (
        not isinstance(static, str)
        or not static
        or Path(static).is_absolute()
        or ".." in Path(static).parts
    ):
        raise ManifestError(f"{MANIFEST}: ui.static must be a folder inside the app")
    return UiManifest(path, static, api_prefix.rstrip("/"))


def _data_endpoints(entries: Any) -> list[DataEndpoint]:
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ManifestError(f"{MANIFEST}: data must be an array of tables ([[data]])")
    endpoints = []
    for entry in entries:
        _check_keys(entry, ("method", "path"), "in [[data]]: ")
        method = str(entry.get("method", "GET")).upper()
        path = entry.get("path")
        if method not in ("GET", "POST"):
            raise ManifestError(f"{MANIFEST}: data.method must be GET or POST, not {method!r}")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ManifestError(f"{MANIFEST}: data.path must be a path starting with '/'")
        endpoints.append(DataEndpoint(method, path))
    return endpoints


# --- template detection -------------------------------------------------------

_LOCKFILES = (
    ("bun.lock", "bun"),
    ("bun.lockb", "bun"),
    ("pnpm-lock.yaml", "pnpm"),
    ("yarn.lock", "yarn"),
    ("package-lock.json", "npm"),
)
_PROCEDURE = re.compile(r"\b([A-Za-z_$][\w$]*)\s*:\s*(?:\w+\.)*\w*[pP]rocedure\b")
_SOURCE_SUFFIXES = (".ts", ".tsx", ".js", ".mjs", ".cjs")


@dataclass
class _NodePackage:
    """A folder with a package.json: its scripts and its package manager."""

    root: Path
    folder: str  # relative to the app root, "" for the root itself
    scripts: dict[str, str]
    manager: str

    @classmethod
    def load(cls, app_dir: Path, folder: str) -> _NodePackage | None:
        path = app_dir / folder / "package.json"
        if not path.is_file():
            return None
        try:
            scripts = json.loads(path.read_text(encoding="utf-8")).get("scripts") or {}
        except (ValueError, AttributeError, UnicodeDecodeError):
            scripts = {}  # a malformed package.json fails at install, where npm says why
        if not isinstance(scripts, dict):
            scripts = {}
        # a workspace keeps its one lockfile at the app root
        manager = next(
            (m for d in (folder, "") for lock, m in _LOCKFILES if (app_dir / d / lock).exists()),
            "npm",
        )
        return cls(
            app_dir, folder, {k: v for k, v in scripts.items() if isinstance(k, str)}, manager
        )

    def _in_folder(self, command: str) -> str:
        return f"cd {shlex.quote(self.folder)} && {command}" if self.folder else command

    def install(self) -> str:
        args = " --no-audit --no-fund" if self.manager == "npm" else ""
        return self._in_folder(f"{self.manager} install{args}")

    def run(self, script: str) -> str | None:
        if script not in self.scripts:
            return None
        return self._in_folder(f"{self.manager} run {script}")

    def typecheck(self) -> str | None:
        if "typecheck" in self.scripts:
            return self.run("typecheck")
        if (self.root / self.folder / "tsconfig.json").is_file():
            return self._in_folder("npx --no-install tsc --noEmit")
        return None


def _first(*commands: str | None) -> str | None:
    return next((c for c in commands if c), None)


def _joined(*commands: str | None) -> str | None:
    present = [c for c in commands if c]
    return " && ".join(f"( {c} )" for c in present) if len(present) > 1 else _first(*present)


def detect_template(app_dir: Path) -> AppPlan:
    root = _NodePackage.load(app_dir, "")
    if root is not None and _is_dbx_sdk_app(app_dir):
        return _node_plan("dbx-sdk", [root], root, root, _analytics_endpoints(app_dir))
    server = _NodePackage.load(app_dir, "server")
    if server is not None and (app_dir / "client").is_dir():
        client = _NodePackage.load(app_dir, "client")
        return _trpc_plan(app_dir, root, server, client)
    if root is None and _is_python_app(app_dir):  # after trpc: its app.yaml is no Python marker
        return _python_plan(app_dir)
    if root is not None:
        return _node_plan("npm", [root], root, root, [])
    return AppPlan("unknown", dict.fromkeys(COMMAND_STAGES))


def _node_plan(
    template: str,
    installs: list[_NodePackage],
    runner: _NodePackage,
    typechecker: _NodePackage,
    data: list[DataEndpoint],
) -> AppPlan:
    commands = {
        "install": _joined(*(p.install() for p in installs)),
        "build": runner.run("build"),
        "typecheck": typechecker.typecheck(),
        "start": runner.run("start"),
        "test": runner.run("test"),
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
    else:
        install = _joined(*(p.install() for p in parts))

    def script(name: str, *order: _NodePackage | None) -> str | None:
        return _first(*(p.run(name) for p in order if p is not None))

    commands = {
        "install": install,
        "build": script("build", root, client, server),
        "typecheck": _first(
            root.run("typecheck") if root else None,
            _joined(*(p.typecheck() for p in parts)),
            root.typecheck() if root else None,  # a root tsconfig.json (project references)
        ),
        "start": script("start", root, server),
        "test": script("test", root, server),
    }
    return AppPlan("trpc", commands, data=_trpc_endpoints(app_dir / "server"))


def _is_dbx_sdk_app(app_dir: Path) -> bool:
    """An AppKit server or SQL query files; app.yaml and databricks.yml alone are any app's."""
    server = app_dir / "server" / "server.ts"
    appkit = server.is_file() and "@databricks/appkit" in server.read_text(errors="replace")
    return appkit or any((app_dir / "config" / "queries").glob("*.sql"))


def _analytics_endpoints(app_dir: Path) -> list[DataEndpoint]:
    queries = sorted((app_dir / "config" / "queries").glob("*.sql"))
    return [DataEndpoint("POST", f"/api/analytics/{q.stem}") for q in queries]


def _trpc_endpoints(server_dir: Path) -> list[DataEndpoint]:
    """Query procedures declared in the server's sources.

    Mutations are not data reads, and a query that takes ``.input(...)`` cannot be
    called without knowing its input: neither is probed (a manifest can list them).
    """
    names: list[str] = []
    src = server_dir / "src"
    files = sorted(p for p in src.rglob("*") if p.suffix in _SOURCE_SUFFIXES and p.is_file())
    for path in files:
        if "node_modules" in path.parts:
            continue
        text = path.read_text(errors="replace")
        matches = list(_PROCEDURE.finditer(text))
        for i, match in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
            body = text[match.end() : end]
            query, mutation = body.find(".query("), body.find(".mutation(")
            name = match.group(1)
            is_query = query >= 0 and (mutation < 0 or query < mutation)
            is_query = is_query and not 0 <= body.find(".input(") < query
            if is_query and not name.lower().startswith("health") and name not in names:
                names.append(name)
    return [DataEndpoint("GET", f"/api/trpc/{name}") for name in names]


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
