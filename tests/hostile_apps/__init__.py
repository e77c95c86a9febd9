"""Hostile test apps (one per folder, see README.md) and helpers to evaluate copies of them.

A test makes an ``Outside`` in its ``tmp_path``: a unique marker and a folder
outside the app's working copy. The apps receive both through the manifest's
``[env]`` table, write their pids and environment dumps there, and carry the
marker in their environment or argv so that any process left behind is found.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

from pytest_klaudbiusz.apps.evaluation import EvalOptions, evaluate_app
from pytest_klaudbiusz.results.model import AppResult

HERE = Path(__file__).parent

#: Short stage timeouts: no command of these apps takes more than a second unless it hangs.
FAST = {"install": 10.0, "build": 10.0, "typecheck": 10.0, "test": 10.0, "request": 5.0}


def copy_app(name: str, tmp_path: Path, dest_name: str | None = None) -> Path:
    """A copy of ``tests/hostile_apps/<name>`` in ``tmp_path``."""
    dest = tmp_path / (dest_name or name)
    shutil.copytree(HERE / name, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


class Outside:
    """What a test shares with its app outside the working copy."""

    def __init__(self, tmp_path: Path) -> None:
        self.marker = f"hostile-{uuid.uuid4().hex}"
        self.dir = tmp_path / "outside"
        self.dir.mkdir()
        self.pidfile = self.dir / "pids"
        self._zombies_before = _zombie_children()

    def environ(self, **extra: str) -> dict[str, str]:
        """The evaluator's environment: a real PATH and HOME, the HOSTILE_* names, ``extra``."""
        return {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "HOSTILE_MARKER": self.marker,
            "HOSTILE_PIDFILE": str(self.pidfile),
            "HOSTILE_DIR": str(self.dir),
            "HOSTILE_PYTHON": sys.executable,
            **extra,
        }

    def pids(self) -> list[int]:
        if not self.pidfile.exists():
            return []
        return [int(line) for line in self.pidfile.read_text().split()]

    def survivors(self) -> list[str]:
        """Processes of the app still around: any carrying the marker, and unreaped zombies."""
        found = []
        for proc in psutil.process_iter():
            try:
                marked = self.marker in " ".join(proc.cmdline()) or (
                    proc.environ().get("HOSTILE_MARKER") == self.marker
                )
                if marked and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(f"{proc.pid} {proc.status()} {proc.cmdline()}")
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        for pid in self.pids():
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    found.append(f"{pid} zombie (from the pid file)")
            except psutil.NoSuchProcess:
                continue
        found += [f"{pid} zombie child" for pid in _zombie_children() - self._zombies_before]
        return found


def _zombie_children() -> set[int]:
    """Zombies this process has not reaped (orphans are re-parented to it: a subreaper)."""
    zombies = set()
    for child in psutil.Process().children():
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                zombies.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return zombies


def evaluate(app: Path, outside: Outside, **options: Any) -> AppResult:
    """``evaluate_app`` with short timeouts and ``outside``'s environment."""
    environ: Mapping[str, str] = options.pop("environ", None) or outside.environ()
    timeouts = {**FAST, **options.pop("timeouts", {})}
    return evaluate_app(app, EvalOptions(environ=environ, timeouts=timeouts, **options))


def outcomes(result: AppResult) -> dict[str, tuple[str, str]]:
    """Stage name -> (outcome, reason)."""
    return {s.name: (str(s.outcome), s.reason) for s in result.stages}


def tree_digest(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (links not followed): type, mode, mtime and content hash."""
    entries = {}
    for folder, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = Path(folder, name)
            info = path.lstat()
            key = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                entries[key] = f"link -> {os.readlink(path)}"
            elif stat.S_ISDIR(info.st_mode):
                entries[key] = f"dir {stat.S_IMODE(info.st_mode):o}"
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                entries[key] = f"file {stat.S_IMODE(info.st_mode):o} {info.st_mtime_ns} {digest}"
    return entries
