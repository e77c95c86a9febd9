"""What an app is and how it is run: discovery, the ``AppPlan``, and the ``klaud.toml`` manifest.

An ``AppPlan`` holds the shell command of each stage (``None`` when the app has no
such stage), the health paths to poll and the data endpoints to query. A manifest
wins key by key over template detection (``templates.plan_app``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SKIPPED_FOLDERS = frozenset({"logs", "node_modules", "__pycache__"})
COMMAND_STAGES = ("install", "build", "typecheck", "start", "test", "schema", "seed")
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
    unprobed: tuple[str, ...] = ()  # queries that need an input: not called blind
    postgres: bool = False  # the app gets its own empty PostgreSQL databases
    database_env: tuple[str, ...] = ()  # the variables that receive the database URL
    typecheck_in_build: bool = False  # a passing build already ran the same tsc


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


# --- manifest ---------------------------------------------------------------


def read_manifest(path: Path) -> dict[str, Any]:
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
    _check_keys(data, ("commands", "runtime", "env", "data", "ui", "database"), "")
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
    _apply_database(plan, _table(data, "database"))


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


def _apply_database(plan: AppPlan, database: dict[str, Any]) -> None:
    """``[database]``: ``postgres`` overrides detection; ``env`` adds URL variables."""
    _check_keys(database, ("postgres", "env"), "in [database]: ")
    if "postgres" in database:
        if not isinstance(database["postgres"], bool):
            raise ManifestError(f"{MANIFEST}: database.postgres must be true or false")
        plan.postgres = database["postgres"]
    names = database.get("env", [])
    if not isinstance(names, list) or not all(
        isinstance(n, str) and _ENV_NAME.fullmatch(n) for n in names
    ):
        raise ManifestError(f"{MANIFEST}: database.env must be a list of variable names")
    plan.database_env = tuple(names)


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
