"""Which apps need a PostgreSQL database, and in which variables they read its URL.

Pure detection on an app's files (no database is touched here): the dependencies of its
root and ``server/`` packages (or a Python app's requirements), and the variable names
its sources read that look like a database URL.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

#: Always given the URL: the names generated apps and most libraries read.
DEFAULT_DATABASE_ENV = ("APP_DATABASE_URL", "DATABASE_URL")
#: libpq's defaults, for apps that connect with no URL at all.
LIBPQ_ENV = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE")

_NODE_DRIVERS = frozenset(
    {"pg", "postgres", "pg-promise", "@neondatabase/serverless", "@vercel/postgres", "slonik"}
)
#: drizzle-orm speaks several dialects: PostgreSQL unless one of these drivers says otherwise.
_OTHER_DIALECTS = frozenset(
    {"better-sqlite3", "@libsql/client", "mysql2", "mysql", "sqlite3", "@planetscale/database"}
)
_PYTHON_DRIVERS = re.compile(r"^\s*[\"']?(?:psycopg2?|asyncpg|pg8000)\b", re.I | re.M)
_PRISMA_POSTGRES = re.compile(r'provider\s*=\s*"(?:postgresql|postgres)"')
_ENV_READ = re.compile(
    r"""(?:process\.env|Bun\.env|import\.meta\.env)(?:\.([A-Za-z_]\w*)|\[\s*["']([A-Za-z_]\w*)["']\s*\])"""
    r"""|os\.(?:environ(?:\.get)?|getenv)\s*[(\[]\s*["']([A-Za-z_]\w*)["']"""
)
_DATABASE_NAME = re.compile(
    r"(?:DATABASE|DB|POSTGRES(?:QL)?|PG)_?(?:URL|URI|DSN|CONNECTION_STRING)$"
)
_SOURCE_SUFFIXES = frozenset({".ts", ".tsx", ".js", ".mjs", ".cjs", ".mts", ".cts", ".py"})
_SKIPPED = frozenset({"node_modules", "dist", "build", ".venv", "venv", ".git", "__pycache__"})


def uses_postgres(app_dir: Path) -> bool:
    """The app's packages depend on a PostgreSQL driver (or Prisma with PostgreSQL)."""
    dependencies: set[str] = set()
    for folder in ("", "server"):
        dependencies |= _node_dependencies(app_dir / folder / "package.json")
    if dependencies & _NODE_DRIVERS:
        return True
    if "drizzle-orm" in dependencies and not dependencies & _OTHER_DIALECTS:
        return True
    for schema in (app_dir / "prisma", app_dir / "server" / "prisma"):
        text = _read(schema / "schema.prisma")
        if dependencies & {"prisma", "@prisma/client"} and _PRISMA_POSTGRES.search(text):
            return True
    requirements = _read(app_dir / "requirements.txt") + _read(app_dir / "pyproject.toml")
    return bool(_PYTHON_DRIVERS.search(requirements))


def database_variables(app_dir: Path) -> tuple[str, ...]:
    """``DEFAULT_DATABASE_ENV`` and every database-URL-like variable the sources read."""
    names = dict.fromkeys(DEFAULT_DATABASE_ENV)
    for path in _sources(app_dir):
        for match in _ENV_READ.finditer(_read(path)):
            name = next(g for g in match.groups() if g)
            if _DATABASE_NAME.search(name):
                names[name] = None
    return tuple(names)


def _node_dependencies(package_json: Path) -> set[str]:
    try:
        data = json.loads(_read(package_json) or "{}")
    except ValueError:
        return set()  # a malformed package.json fails at install, where the tool says why
    if not isinstance(data, dict):
        return set()
    found: set[str] = set()
    for key in ("dependencies", "devDependencies", "optionalDependencies"):
        section = data.get(key)
        if isinstance(section, dict):
            found.update(k for k in section if isinstance(k, str))
    return found


def _sources(app_dir: Path) -> list[Path]:
    """The app's own source files: build output, installed packages and the client's
    bundle (which never sees a server variable) are left out."""
    found = []
    for folder, subfolders, files in os.walk(app_dir):
        here = Path(folder)
        skipped = _SKIPPED | ({"client"} if here == app_dir else set())
        subfolders[:] = sorted(d for d in subfolders if d not in skipped and d[0] != ".")
        found += [here / f for f in sorted(files) if Path(f).suffix in _SOURCE_SUFFIXES]
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:  # absent, a folder, unreadable
        return ""
