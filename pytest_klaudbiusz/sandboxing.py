"""The pytest side of the apps' sandbox (the sandbox itself is ``apps/isolation.py``).

``--klaud-sandbox auto|bwrap|none`` and ``--klaud-limit``, resolved once per process
(each xdist worker probes bubblewrap itself: ``bwrap ... true``, about 10 ms) into the
``Isolation`` every app of the session runs under. ``auto`` falls back to running apps
unsandboxed with a warning in the header; ``bwrap`` demanded but unusable is a usage
error. The report's ``run`` says which sandbox and limits the apps ran under.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from pytest_klaudbiusz.apps.isolation import (
    Bubblewrap,
    CgroupLayout,
    Isolation,
    LimitError,
    default_cache_dir,
    parse_limits,
    tool_folders,
)
from pytest_klaudbiusz.options import OptionReader

CHOICES = ("auto", "bwrap", "none")
ISOLATION_KEY = pytest.StashKey[Isolation]()
_PROBLEM_KEY = pytest.StashKey[str]()  # why auto runs apps unsandboxed


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("klaudbiusz")
    help = (
        "where app commands run: bwrap (a bubblewrap sandbox: own processes, read-only"
        " system, no user files), none, or auto (default: bwrap when it works here)"
    )
    group.addoption("--klaud-sandbox", dest="klaud_sandbox", metavar="KIND", help=help)
    parser.addini("klaud_sandbox", help)
    help = (
        "resource limit per app, memory=SIZE or pids=COUNT (default memory=4G,"
        " pids=512); repeatable or comma-separated"
    )
    group.addoption(
        "--klaud-limit", dest="klaud_limit", action="append", default=[], metavar="LIMIT", help=help
    )
    parser.addini("klaud_limit", help, type="linelist")


def configure(config: pytest.Config) -> Isolation:
    """This process's ``Isolation`` (kept in the config's stash); ``UsageError`` if refused."""
    read = OptionReader(config)
    choice = read.value("klaud_sandbox") or "auto"
    if choice not in CHOICES:
        raise pytest.UsageError(f"--klaud-sandbox {choice!r}: use {', '.join(CHOICES)}")
    try:
        limits = parse_limits(read.items("klaud_limit"))
    except LimitError as exc:
        raise pytest.UsageError(f"--klaud-limit: {exc}") from None
    bwrap = None
    if choice != "none":
        tools = tool_folders(os.environ.get("PATH", ""))
        bwrap = Bubblewrap(default_cache_dir(os.environ), tools)
        problem = bwrap.problem()
        if problem and choice == "bwrap":
            raise pytest.UsageError(f"--klaud-sandbox=bwrap: bubblewrap does not work: {problem}")
        if problem:
            config.stash[_PROBLEM_KEY] = problem
            bwrap = None
    isolation = Isolation(bwrap, limits, CgroupLayout.find())
    config.stash[ISOLATION_KEY] = isolation
    return isolation


def isolation(config: pytest.Config) -> Isolation:
    return config.stash.get(ISOLATION_KEY, Isolation())


def header(config: pytest.Config) -> list[str]:
    """The terminal header's line about the sandbox, a warning when apps run unsandboxed."""
    if ISOLATION_KEY not in config.stash:
        return []
    chosen = config.stash[ISOLATION_KEY]
    limits = f"limits: {chosen.limits.describe()} by {chosen.limits_by}" if chosen.limits else ""
    if chosen.bwrap:
        return [f"klaudbiusz sandbox: bwrap; {limits}"]
    problem = config.stash.get(_PROBLEM_KEY, None)
    why = f"bubblewrap unusable: {problem}" if problem else "--klaud-sandbox=none"
    return [f"WARNING: klaudbiusz apps run UNSANDBOXED ({why}); {limits}"]


def run_fields(config: pytest.Config) -> dict[str, Any]:
    """The report's ``run`` entries: the sandbox and the limits the apps ran under."""
    chosen = isolation(config)
    limits = chosen.limits.describe() if chosen.limits else None
    return {
        "sandbox": chosen.sandbox,
        "limits": f"{limits} ({chosen.limits_by})" if limits else None,
    }
