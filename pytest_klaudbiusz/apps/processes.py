"""Run an app's commands and make sure nothing they start outlives the app.

Every command runs in its own session with its output going to a bounded log
(``logs.py``) through a pipe that is drained, never waited on: a command is done
when its process exits, whatever a backgrounded grandchild holds open. Each
app's processes carry a token in their environment; the harness process is made
a child subreaper, so processes that daemonize (setsid, double fork) are
re-parented to it instead of to init and stay findable. ``AppProcesses.kill_all``
kills every process of the app, wherever it went. Given a ``Confinement``
(``isolation.py``), each command runs in the app's sandbox and under its limits: there
killing the command (PID 1 of its PID namespace) takes every process in it along.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path

import psutil

from pytest_klaudbiusz.apps.isolation import MACHINE_TOOLS, Confinement
from pytest_klaudbiusz.apps.logs import BoundedLog, LogPipe

TOKEN_VAR = "KLAUD_APP_TOKEN"
_PR_SET_CHILD_SUBREAPER = 36
_subreaper: bool | None = None
#: Children the harness itself started while an app ran (the browser's driver): never an
#: app's, though they appeared during its evaluation (see ``harness_children``).
_harness: set[tuple[int, float]] = set()


def harness_children(before: set[int]) -> None:
    """Count this process's children started since ``before`` (pids) as the harness's own,
    except those carrying an app's token (an app's orphan re-parented meanwhile)."""
    for child in psutil.Process().children():
        with suppress(psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            if child.pid not in before and TOKEN_VAR not in child.environ():
                _harness.add(_identity(child))


def become_subreaper() -> bool:
    """Make orphaned descendants re-parent to this process (Linux); once per process."""
    global _subreaper
    if _subreaper is None:
        _subreaper = False
        if sys.platform == "linux":
            libc = ctypes.CDLL(None, use_errno=True)
            _subreaper = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    return _subreaper


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        with closing(socket.socket(family, socket.SOCK_STREAM)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                if exc.errno != 99:  # EADDRNOTAVAIL: no IPv6 here
                    return False
    return True


@dataclass
class CommandResult:
    exit_code: int | None  # None when it was killed for taking too long
    duration_sec: float
    timed_out: bool
    limit: str | None = None  # the resource limit it ran into ("exceeded its memory limit")


class AppProcesses:
    """The processes of one app evaluation."""

    def __init__(self, confinement: Confinement | None = None) -> None:
        self.token = uuid.uuid4().hex
        self.confinement = confinement
        self._popens: list[subprocess.Popen[bytes]] = []
        self._pipes: list[LogPipe] = []
        self._tracks_descendants = become_subreaper()
        # Processes that existed before the app's (a harness's own children, old zombies)
        # are never the app's. Compared by identity, not by start time: psutil derives
        # create_time from the whole-second boot time, up to a second off time.time().
        self._preexisting = {_identity(p) for p in self._candidates()}

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        return {**env, TOKEN_VAR: self.token}

    def spawn(
        self, command: str, cwd: Path, env: dict[str, str], log: BoundedLog
    ) -> subprocess.Popen[bytes]:
        """Start ``command``; ``log`` holds its output once ``kill_all`` has returned."""
        pipe = LogPipe(log)
        argv: str | list[str] = command
        if self.confinement is not None:
            argv = self.confinement.argv(command)
        try:
            popen = subprocess.Popen(
                argv,
                shell=self.confinement is None,
                cwd=cwd,
                env=self.environment(env),
                stdin=subprocess.DEVNULL,
                stdout=pipe.write_fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            pipe.abandon()
            raise
        pipe.started()
        self._popens.append(popen)
        self._pipes.append(pipe)
        return popen

    def run(
        self, command: str, cwd: Path, env: dict[str, str], log: BoundedLog, timeout: float
    ) -> CommandResult:
        """Run to completion (or ``timeout``), then kill whatever it left behind."""
        start = time.monotonic()
        popen = self.spawn(command, cwd, env, log)
        try:
            code: int | None = popen.wait(timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            code, timed_out = None, True
        limit = self.limit_reached()
        self.kill_all()
        return CommandResult(code, time.monotonic() - start, timed_out, limit)

    def missing_program(self, command: str, env: dict[str, str]) -> str | None:
        """``missing_program`` as the command sees the machine (in its sandbox, if any)."""
        if self.confinement is not None:
            env = {**env, "PATH": self.confinement.visible_path(env.get("PATH", ""))}
        return missing_program(command, env)

    def limit_reached(self) -> str | None:
        """The resource limit the latest command ran into, if any."""
        return self.confinement.exceeded() if self.confinement else None

    def close(self) -> None:
        """The app is done: kill whatever is left, then remove its cgroup."""
        self.kill_all()
        if self.confinement is not None:
            self.confinement.close()

    def _candidates(self) -> list[psutil.Process]:
        if not self._tracks_descendants:
            return list(psutil.process_iter())
        pids = _descendant_pids()
        if pids is None:
            return psutil.Process().children(recursive=True)
        procs = []
        for pid in pids:
            with suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                procs.append(psutil.Process(pid))
        return procs

    def _members(self) -> list[psutil.Process]:
        members = []
        for proc in self._candidates():
            try:
                if _identity(proc) in self._preexisting or _identity(proc) in _harness:
                    continue
                if (
                    proc.status() == psutil.STATUS_ZOMBIE
                    or proc.environ().get(TOKEN_VAR) == self.token
                ):
                    members.append(proc)
                elif self._tracks_descendants and proc.ppid() == os.getpid():
                    members.append(proc)  # an orphan re-parented to us that cleared its env
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return members

    def kill_all(self) -> int:
        """Kill every process of this app, including daemonized ones, and collect their
        output (their pipes end with them); returns how many were killed."""
        killed = 0
        if self.confinement is not None and self.confinement.isolation.bwrap:
            for popen in self._popens:  # the sandbox: its PID namespace ends with it
                with suppress(OSError):
                    popen.kill()
        for _ in range(20):
            members = self._members()
            if not members:
                break
            for proc in members:
                try:
                    proc.send_signal(signal.SIGKILL)
                    killed += proc.status() != psutil.STATUS_ZOMBIE
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            psutil.wait_procs(members, timeout=1)  # reaps our own children
        for popen in self._popens:
            if popen.poll() is None:  # not found above (it should have been): never raise here
                popen.kill()
                with suppress(subprocess.TimeoutExpired):
                    popen.wait(1)
        for pipe in self._pipes:
            pipe.close()
        self._pipes.clear()
        return killed


def _descendant_pids() -> list[int] | None:
    """This process's subtree, read from ``/proc/<pid>/task/<tid>/children``.

    psutil's ``children(recursive=True)`` reads the parent of every process on the
    machine (several ms each call, more on a busy machine); walking our own subtree
    costs a few file reads. None where the kernel does not provide the files.
    """
    pids: list[int] = []
    stack = [os.getpid()]
    while stack:
        pid = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/children", "rb") as handle:
                    children = [int(c) for c in handle.read().split()]
            except FileNotFoundError:
                if pid == os.getpid():
                    return None  # no CONFIG_PROC_CHILDREN
                continue
            except OSError:
                continue
            pids += children
            stack += children
    return pids


def _identity(proc: psutil.Process) -> tuple[int, float]:
    try:
        return proc.pid, proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return proc.pid, 0.0


def missing_program(command: str, env: dict[str, str]) -> str | None:
    """The first machine tool a shell command calls that is not on the app's PATH."""
    for segment in command.replace("||", "&&").replace(";", "&&").replace("|", "&&").split("&&"):
        words = segment.strip().lstrip("(").split()
        tool = words[0] if words else ""
        if tool in MACHINE_TOOLS and shutil.which(tool, path=env.get("PATH", "")) is None:
            return tool
    return None


def kill_strays() -> int:
    """Kill every process below this one that belongs to some app; returns how many.

    An evaluation that ends normally leaves none (``AppProcesses.kill_all``), but an xdist
    worker that is killed or crashes mid-app cannot clean up: its app's processes are
    re-parented to the nearest subreaper, which is the controller once it has called
    ``become_subreaper``, and they still carry ``TOKEN_VAR``.
    """
    pids = _descendant_pids()
    if pids is None:
        pids = [p.pid for p in psutil.Process().children(recursive=True)]
    strays = []
    for pid in pids:
        with suppress(psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            proc = psutil.Process(pid)
            if TOKEN_VAR in proc.environ():
                strays.append(proc)
    for proc in strays:
        with suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.kill()
    psutil.wait_procs(strays, timeout=2)
    return len(strays)
