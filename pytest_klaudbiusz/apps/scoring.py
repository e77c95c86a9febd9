"""Per-app scores read from the app's files: DevX criteria, size, coverage, appeval.

Each DevX point is a named criterion recorded in the app's details, so a score
of 3/5 always says which two points were missing.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SOURCE_SUFFIXES = frozenset({".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".py", ".sql"})
NOT_SOURCE_DIRS = frozenset({
    "node_modules", "dist", "build", ".next", "coverage", ".venv", "venv",
    "__pycache__", ".git", ".turbo", "out",
})  # fmt: skip
ENV_TEMPLATES = (".env.example", ".env.template", ".env.sample")
LOCKFILES = (
    "package-lock.json",
    "bun.lock",
    "bun.lockb",
    "pnpm-lock.yaml",
    "yarn.lock",
    "poetry.lock",
    "uv.lock",
)
_COMMENT_PREFIXES = ("//", "#", "--", "/*", "*", "*/")
_SETUP_WORDS = re.compile(r"\b(install|npm|pip|bun|pnpm|yarn|run|start|setup|uv)\b", re.I)
_HEALTH_ROUTE = re.compile(
    r"""["'`/](health|healthcheck|healthz)["'`/?]"""  # an HTTP route
    r"""|\bhealth(check|z)?\s*:\s*(\w+\.)*\w*[pP]rocedure\b"""  # a tRPC procedure
)
_TEST_FILE = re.compile(r"(\.(test|spec)\.[cm]?[jt]sx?$)|(^test_.*\.py$)|(_test\.py$)")
#: Real credentials, never placeholders: Databricks PATs, OpenAI/Anthropic keys, AWS ids.
_SECRET_VALUE = re.compile(r"\b(dapi[0-9a-f]{32}|sk-(ant-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16})")
#: A non-empty literal assigned to a secret-like name in source code. (No leading ``\b\w*``:
#: it matches the same names and made every word a backtracking search, ~4 ms per app.)
_SECRET_ASSIGNMENT = re.compile(
    r"""(?i)(secret|token|password|passwd|api_?key)\w*["']?\s*[:=]\s*["']([^"'\s]{16,})["']"""
)
#: Test files, fixtures and mock data hold made-up credentials on purpose.
_NOT_CONFIGURATION = frozenset({"tests", "test", "__tests__", "fixtures", "__mocks__", "mocks"})
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_COVERAGE = (
    # node --test ("# " with tap, U+2139 "information" with spec), istanbul, c8, vitest
    re.compile(r"(?im)^[\W\u2139]*all files\s*\|\s*(\d+(?:\.\d+)?)"),
    re.compile(r"(?m)^TOTAL\s.*?(\d+(?:\.\d+)?)%\s*$"),  # coverage.py
)


def source_files(app_dir: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(app_dir):
        dirs[:] = [d for d in dirs if d not in NOT_SOURCE_DIRS]
        for name in files:
            yield Path(folder) / name


def count_loc(app_dir: Path) -> int:
    """Non-blank, non-comment lines of source (lockfiles and build output excluded)."""
    total = 0
    for path in source_files(app_dir):
        if path.suffix in SOURCE_SUFFIXES and not path.is_symlink():
            with open(path, encoding="utf-8", errors="replace") as handle:
                total += sum(
                    1 for line in handle
                    if line.strip() and not line.strip().startswith(_COMMENT_PREFIXES)
                )  # fmt: skip
    return total


def parse_coverage(output: str) -> float | None:
    """Line coverage % from a test runner's text summary, if it printed one."""
    output = _ANSI.sub("", output)
    for pattern in _COVERAGE:
        found = pattern.findall(output)
        if found:
            return float(found[-1])
    return None


def find_secrets(app_dir: Path) -> list[str]:
    """Files holding real-looking credentials: a known token format anywhere, or a long,
    high-entropy literal assigned to a secret-like name outside test files, fixtures and
    mock data (made-up on purpose). Placeholders (``KEY=``) are never secrets."""
    found = []
    for path in source_files(app_dir):
        template = path.name in ENV_TEMPLATES
        if path.is_symlink() or path.stat().st_size > 1 << 20:
            continue
        if not (
            template
            or path.name == ".env"
            or path.suffix in SOURCE_SUFFIXES
            or path.suffix in (".json", ".yaml", ".yml", ".toml")
        ):
            continue
        parts = path.relative_to(app_dir).parts
        made_up = _TEST_FILE.search(path.name) or _NOT_CONFIGURATION.intersection(parts[:-1])
        text = path.read_text(encoding="utf-8", errors="replace")
        strong = _SECRET_VALUE.search(text)  # a real token format is a leak wherever it is
        literal = (
            not template
            and not made_up
            and any(_looks_like_credential(m.group(2)) for m in _SECRET_ASSIGNMENT.finditer(text))
        )  # every assignment: a placeholder first must not hide a real secret after it
        if strong or literal:
            found.append(str(path.relative_to(app_dir)))
    return sorted(found)


def _looks_like_credential(value: str) -> bool:
    """Long, mixed and high in entropy: ``f3a9c1e7b2d84f6a``, not ``password123456``."""
    lowered = value.lower()
    if lowered.startswith(("your", "<", "${", "process.env", "changeme", "xxx", "placeholder")):
        return False
    if any(
        word in lowered
        for word in (
            "example",
            "test",
            "dummy",
            "sample",
            "fake",
            "mock",
            "password",
            "secret",
            "admin",
        )
    ):
        return False
    classes = sum(
        any(test(c) for c in value) for test in (str.islower, str.isupper, str.isdigit)
    ) + any(not c.isalnum() for c in value)
    counts = Counter(value)
    entropy = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return classes >= 2 and entropy >= 3.5


def _readme(app_dir: Path) -> str:
    for name in ("README.md", "README", "README.txt", "readme.md"):
        path = app_dir / name
        if path.is_file():
            return path.read_text(encoding="utf-8", errors="replace")
    return ""


def _entry_point(app_dir: Path) -> bool:
    candidates = (
        "server/src/index.ts", "server/src/index.js", "server/server.ts", "server/server.js",
        "server/index.ts", "server/index.js", "server.js", "server.ts", "index.js", "index.ts",
        "src/index.ts", "src/index.js", "src/main.ts", "src/main.tsx", "app.py", "main.py",
    )  # fmt: skip
    if any((app_dir / c).is_file() for c in candidates):
        return True
    try:
        main = json.loads((app_dir / "package.json").read_text()).get("main")
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(main, str) and (app_dir / main).is_file()


def _deploy_config(app_dir: Path) -> bool:
    app_yaml = app_dir / "app.yaml"
    if app_yaml.is_file():
        if re.search(r"(?m)^command:", app_yaml.read_text(errors="replace")):
            return True
        # without one Databricks runs ``npm run start``, or ``python <first .py>`` with no Node
        if (app_dir / "package.json").is_file():
            try:
                scripts = json.loads((app_dir / "package.json").read_text()).get("scripts")
            except (OSError, ValueError, AttributeError):
                scripts = None
            if isinstance(scripts, dict) and "start" in scripts:
                return True
        elif any(app_dir.glob("*.py")):
            return True
    dockerfile = app_dir / "Dockerfile"
    return dockerfile.is_file() and bool(
        re.search(r"(?mi)^\s*(CMD|ENTRYPOINT)\b", dockerfile.read_text(errors="replace"))
    )


def _dependencies_pinned(app_dir: Path) -> bool:
    if any((app_dir / f).is_file() for f in LOCKFILES):
        return True
    for folder in (app_dir, app_dir / "server", app_dir / "client"):
        try:
            package = json.loads((folder / "package.json").read_text())
        except (OSError, ValueError):
            continue
        locked = any((folder / f).is_file() for f in LOCKFILES)  # per-folder installs
        if (
            isinstance(package, dict)
            and (package.get("dependencies") or package.get("devDependencies"))
            and not locked
        ):
            return False
    requirements = app_dir / "requirements.txt"
    if requirements.is_file():
        lines = [ln.strip() for ln in requirements.read_text(errors="replace").splitlines()]
        return all("==" in ln for ln in lines if ln and not ln.startswith("#"))
    return True  # nothing to pin


def has_tests(app_dir: Path) -> bool:
    return any(_TEST_FILE.search(p.name) for p in source_files(app_dir))


README = "README with setup instructions"
ENV_TEMPLATE = "env template (.env.example or .env.template)"
DEPENDENCIES_INSTALL = "dependencies install"
START_COMMAND = "start command"
ENTRY_POINT = "entry point"
DEPLOY_TARGET = "deployment target (app.yaml or Dockerfile)"
#: The issue's "deployment config present": a config the platform can start the app from.
DEPLOY_CONFIG = "deployment config with a start command (app.yaml or Dockerfile CMD)"
HEALTH_CHECK = "health check"
NO_SECRETS = "no hard-coded secrets"
DEPENDENCIES_PINNED = "dependencies pinned"
#: The issue string an app gets for each criterion it misses.
CRITERION_ISSUES = {
    README: "devx: no README with setup instructions",
    ENV_TEMPLATE: "devx: no env template",
    DEPENDENCIES_INSTALL: "devx: dependencies do not install",
    START_COMMAND: "devx: no start command",
    ENTRY_POINT: "devx: no entry point",
    DEPLOY_TARGET: "devx: no deployment target",
    DEPLOY_CONFIG: "devx: deployment config without a start command",
    HEALTH_CHECK: "devx: no health check",
    NO_SECRETS: "devx: hard-coded secrets",
    DEPENDENCIES_PINNED: "devx: dependencies not pinned",
}


def devx_criteria(
    app_dir: Path, *, install_passed: bool, has_start: bool, health_declared: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The local-runability and deployability criteria, each ``{criterion, passed}``."""
    readme = _readme(app_dir)
    secrets = find_secrets(app_dir)
    sources = "".join(
        p.read_text(errors="replace")[:200_000]
        for p in source_files(app_dir) if p.suffix in SOURCE_SUFFIXES and not p.is_symlink()
    )  # fmt: skip
    local = {
        README: bool(_SETUP_WORDS.search(readme)),
        ENV_TEMPLATE: any((app_dir / t).is_file() for t in ENV_TEMPLATES),
        DEPENDENCIES_INSTALL: install_passed,
        START_COMMAND: has_start,
        ENTRY_POINT: _entry_point(app_dir),
    }
    has_target = (app_dir / "app.yaml").is_file() or (app_dir / "Dockerfile").is_file()
    deploy = {
        DEPLOY_TARGET: has_target,
        # no target, no config to judge: the missing target costs one point, not two
        DEPLOY_CONFIG: not has_target or _deploy_config(app_dir),
        HEALTH_CHECK: health_declared or bool(_HEALTH_ROUTE.search(sources)),
        NO_SECRETS: not secrets,
        DEPENDENCIES_PINNED: _dependencies_pinned(app_dir),
    }

    def listed(criteria: dict[str, bool]) -> list[dict[str, Any]]:
        return [{"criterion": name, "passed": ok} for name, ok in criteria.items()]

    local_list, deploy_list = listed(local), listed(deploy)
    if secrets:  # where they are: the files, never the values
        next(c for c in deploy_list if c["criterion"] == NO_SECRETS)["files"] = secrets
    return local_list, deploy_list


def appeval_100(metrics: dict[str, Any]) -> float:
    """``100·(0.7·R + 0.3·D)·G`` (DESIGN.md §3); checks that do not apply are left out."""
    checks = (
        "build_success",
        "runtime_success",
        "type_safety",
        "tests_pass",
        "databricks_connectivity",
    )
    values = [max(float(metrics[c]), 1e-6) for c in checks if metrics.get(c) is not None]
    r = math.prod(values) ** (1 / len(values)) if values else 0.0
    d = math.sqrt(metrics["local_runability_score"] / 5 * metrics["deployability_score"] / 5)
    build, runtime = (
        float(bool(metrics.get("build_success"))),
        float(bool(metrics.get("runtime_success"))),
    )
    connectivity = metrics.get("databricks_connectivity")
    g = (0.25 + 0.75 * build) * (0.25 + 0.75 * runtime)
    if connectivity is not None:
        g *= 0.5 + 0.5 * float(connectivity)
    return round(100 * (0.7 * r + 0.3 * d) * g, 2)


GENERATION_FIELDS = (
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "turns",
    "cache_read_tokens",
    "cache_creation_tokens",
    "generation_time_sec",
)


def parse_generation_metrics(data: object, where: str) -> dict[str, Any]:
    """The known generation fields of ``data`` (and ``model``), checked; ``ValueError`` with a
    one-line reason naming ``where`` when they cannot be used. Unknown keys are ignored."""
    if not isinstance(data, dict):
        raise ValueError(f"{where} is not an object")
    metrics: dict[str, Any] = {}
    for key in GENERATION_FIELDS:
        value = data.get(key)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"{where}: {key} is not a number")
        metrics[key] = value
    if isinstance(data.get("model"), str):
        metrics["model"] = data["model"]
    return metrics


def load_generation_metrics(app_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``generation_metrics.json`` of the app, or the reason it cannot be used."""
    path = app_dir / "generation_metrics.json"
    if not path.is_file():
        return None, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None, "generation_metrics.json is not valid JSON"
    try:
        return parse_generation_metrics(data, "generation_metrics.json"), None
    except ValueError as exc:
        return None, str(exc)
