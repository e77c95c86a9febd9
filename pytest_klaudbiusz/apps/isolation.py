"""Where an app's commands run: a bubblewrap sandbox, and limits on memory and processes.

``Isolation`` is chosen once per session (``sandboxing.py`` is its pytest side);
``Isolation.confine`` gives one app its ``Confinement``, which turns each shell
command into the argv that runs it:

* in bubblewrap (``bwrap`` on PATH, Debian's ``bubblewrap``): its own PID namespace
  (a fresh ``/proc`` that shows nothing of the evaluator or of other apps) whose PID 1
  is the command itself (``--as-pid-1``: no bubblewrap init that could outlive it and
  be re-parented to the harness), so when the command ends or is killed the kernel
  kills every process it left in the sandbox; no capabilities, the
  system's folders read-only (an allow-list: ``/usr``, ``/etc`` ...; the user's
  folders, ``/work``, ``/root``, ``/home``, ``/srv`` are simply not there), writable
  only the working copy, a private ``/tmp`` and ``/var/tmp``, a private ``$HOME`` and
  the package managers' shared caches; the network is shared, so the app reaches the
  session's services on 127.0.0.1 and the registries;
* under limits: a child cgroup per app (v2, or v1's memory and pids hierarchies,
  whichever this process may create) with ``memory`` and ``pids`` maxima, which its
  commands join in turn (one at a time, each killed before the next), and whose event
  counters say which command hit a limit; where no cgroup can be made, the
  memory limit becomes an rlimit on the address space (``prlimit --as``), which cannot
  say why a command died, and processes go unlimited (``RLIMIT_NPROC`` counts every
  process of the user on the machine, and root is exempt).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

#: System folders the sandbox sees read-only (those that exist); nothing else of the machine.
SYSTEM_FOLDERS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
SANDBOX_HOME = "/home/app"
#: Package-manager caches shared by every app (variable, sub-folder of the cache folder).
SHARED_CACHES = {
    "npm_config_cache": "npm",
    "BUN_INSTALL_CACHE_DIR": "bun",
    "PIP_CACHE_DIR": "pip",
    "UV_CACHE_DIR": "uv",
}
#: Version managers whose tools need their whole folder (a shim calls back into it).
TOOL_MANAGERS = (".pyenv", ".nvm", ".bun", ".volta", ".asdf", ".fnm")
#: Programs the machine must provide for apps; an app's own tools (tsc, vite in
#: node_modules/.bin, a script of its own) missing is the app's fault, not ours.
MACHINE_TOOLS = (
    "node", "npm", "npx", "bun", "bunx", "pnpm", "yarn", "python", "python3", "pip", "pip3", "uv",
)  # fmt: skip
_SIZE = re.compile(r"(\d+)\s*([KMGT]?)i?B?", re.IGNORECASE)
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


class LimitError(ValueError):
    """A ``--klaud-limit`` item that cannot be understood (one line)."""


@dataclass(frozen=True)
class Limits:
    """Per app: bytes of memory, number of processes (tasks)."""

    memory: int = 4 * 2**30
    pids: int = 512

    def describe(self) -> str:
        return f"memory={_size(self.memory)}, pids={self.pids}"


def _size(count: int) -> str:
    for unit in "TGMK":
        if count % _UNITS[unit] == 0:
            return f"{count // _UNITS[unit]}{unit}"
    return str(count)


def parse_limits(items: list[str]) -> Limits:
    """``memory=4G``, ``pids=512`` items (each may be a comma list) over the defaults."""
    values = {"memory": Limits.memory, "pids": Limits.pids}
    for item in (part.strip() for raw in items for part in raw.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in values:
            raise LimitError(
                f"invalid limit {item!r}: use memory=SIZE (e.g. 4G, 512M) or pids=COUNT"
            )
        if name == "memory":
            match = _SIZE.fullmatch(value.strip())
            number = int(match.group(1)) * _UNITS[match.group(2).upper()] if match else 0
            if number < 16 * 2**20:
                raise LimitError(f"invalid limit {item!r}: memory must be a size from 16M")
        else:
            number = int(value) if value.strip().isdigit() else 0
            if number < 8:
                raise LimitError(f"invalid limit {item!r}: pids must be a whole number from 8")
        values[name] = number
    return Limits(**values)


def default_cache_dir(environ: dict[str, str] | os._Environ[str]) -> Path:
    """The plugin's own cache folder for the shared package caches."""
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME", "/root"), ".cache"))
    return Path(base, "pytest-klaudbiusz", "packages")


def _is_system(path: Path) -> bool:
    return any(path.is_relative_to(folder) for folder in SYSTEM_FOLDERS)


def tool_folders(path: str) -> tuple[Path, ...]:
    """The folders outside the system folders that hold the machine's tools on ``path``
    (say pyenv's python, nvm's node), for the sandbox to show read-only: a version
    manager's folder whole, else the tool's own folder; never a virtualenv's."""
    folders = set()
    for tool in MACHINE_TOOLS:
        found = shutil.which(tool, path=path)
        if found is None:
            continue
        for place in (Path(found), Path(os.path.realpath(found))):
            managers = [p for p in place.parents if p.name in TOOL_MANAGERS]
            if managers:
                folders.add(managers[-1])
            elif not _is_system(place) and not (place.parent.parent / "pyvenv.cfg").exists():
                folders.add(place.parent)
    return tuple(sorted(folders))


@dataclass(frozen=True)
class Bubblewrap:
    """How to run a command in a bubblewrap sandbox; ``tools``: more folders to show
    read-only (``tool_folders``)."""

    cache_dir: Path
    tools: tuple[Path, ...] = ()
    executable: str = field(default_factory=lambda: shutil.which("bwrap") or "bwrap")

    def argv(self, command: str, workdir: Path, scratch: Path) -> list[str]:
        """``sh -c command`` in ``workdir``; ``scratch`` holds the private tmp and home."""
        args = [
            self.executable,
            "--unshare-pid", "--as-pid-1", "--unshare-ipc", "--unshare-uts",
            "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        ]  # fmt: skip
        for folder in (*SYSTEM_FOLDERS, *map(str, self.tools)):
            if os.path.islink(folder) and folder in SYSTEM_FOLDERS:  # merged /usr: no mount
                args += ["--symlink", os.readlink(folder), folder]
            elif os.path.exists(folder):
                args += ["--ro-bind", folder, folder]
        args += ["--proc", "/proc", "--dev", "/dev"]
        private = {
            "/tmp": scratch / "tmp",
            "/var/tmp": scratch / "var-tmp",
            SANDBOX_HOME: scratch / "home",
        }
        for inside, outside in private.items():
            args += ["--bind", str(outside), inside]
        args += ["--bind", str(self.cache_dir), str(self.cache_dir)]
        for variable, folder in SHARED_CACHES.items():
            args += ["--setenv", variable, str(self.cache_dir / folder)]
        args += ["--bind", str(workdir), str(workdir), "--chdir", str(workdir)]
        args += ["--setenv", "HOME", SANDBOX_HOME, "--setenv", "TMPDIR", "/tmp"]
        return [*args, "--", "/bin/sh", "-c", command]

    def prepare(self, scratch: Path) -> None:
        """Make the folders the sandbox binds (bubblewrap binds only what exists)."""
        for name in ("tmp", "var-tmp", "home"):
            (scratch / name).mkdir(parents=True, exist_ok=True)
        for folder in SHARED_CACHES.values():
            (self.cache_dir / folder).mkdir(parents=True, exist_ok=True)

    def problem(self) -> str | None:
        """Why bubblewrap cannot run here (None: it works), found by running ``true`` in it."""
        if not os.access(self.executable, os.X_OK):
            return "bwrap is not on PATH (install the bubblewrap package)"
        with tempfile.TemporaryDirectory(prefix="klaud-probe-") as tmp:
            workdir, scratch = Path(tmp, "app"), Path(tmp, "scratch")
            workdir.mkdir()
            try:
                self.prepare(scratch)
                done = subprocess.run(
                    self.argv("true", workdir, scratch),
                    capture_output=True, timeout=30, check=False, stdin=subprocess.DEVNULL,
                )  # fmt: skip
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"{self.executable} failed: {exc}"
        if done.returncode:
            lines = done.stderr.decode(errors="replace").strip().splitlines()
            return f"{self.executable} failed: {lines[-1] if lines else f'exit {done.returncode}'}"
        return None


# --- limits ----------------------------------------------------------------------------

_JOIN = 'while [ "$1" != -- ]; do echo $$ >"$1" || exit 125; shift; done; shift; exec "$@"'


@dataclass(frozen=True)
class CgroupLayout:
    """Where this process may make child cgroups: v2 (one folder) or v1 (one per controller)."""

    version: int
    memory: Path  # the parent folder holding memory's files
    pids: Path  # the same as ``memory`` in v2

    @classmethod
    def find(cls, root: Path = Path("/sys/fs/cgroup")) -> CgroupLayout | None:
        """This process's cgroups, if it may make children with memory and pids limits."""
        try:
            lines = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError:
            return None
        paths = {}
        for line in lines:
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                paths[controller] = path.lstrip("/")
        candidates = []
        if "" in paths:
            for mount in (root, root / "unified"):
                candidates.append(cls(2, mount / paths[""], mount / paths[""]))
        if "memory" in paths and "pids" in paths:
            candidates.append(
                cls(1, root / "memory" / paths["memory"], root / "pids" / paths["pids"])
            )
        return next((c for c in candidates if c._usable()), None)

    def _usable(self) -> bool:
        if self.version == 2:
            try:
                enabled = (self.memory / "cgroup.subtree_control").read_text().split()
            except OSError:
                return False
            if not {"memory", "pids"} <= set(enabled):
                return False
        try:
            cgroup = self.make(Limits())
        except OSError:
            return False
        cgroup.remove()
        return True

    def make(self, limits: Limits) -> Cgroup:
        name = f"klaud-{uuid.uuid4().hex[:12]}"
        folders = (
            [self.memory / name] if self.version == 2 else [self.memory / name, self.pids / name]
        )
        cgroup = Cgroup(self.version, folders, limits)
        try:
            for folder in folders:
                folder.mkdir()
            cgroup.apply()
        except OSError:
            cgroup.remove()
            raise
        return cgroup


class Cgroup:
    """One app's cgroup: its limits, and whether the app's latest command ran into them."""

    def __init__(self, version: int, folders: list[Path], limits: Limits) -> None:
        self.version, self.folders, self.limits = version, folders, limits
        self._before: tuple[int, int] = (0, 0)  # the event counters when a command started

    @property
    def _memory(self) -> Path:
        return self.folders[0]

    @property
    def _pids(self) -> Path:
        return self.folders[-1]

    def apply(self) -> None:
        if self.version == 2:
            (self._memory / "memory.max").write_text(str(self.limits.memory))
            with suppress(OSError):  # no swap accounting: nothing to limit
                (self._memory / "memory.swap.max").write_text("0")
        else:
            (self._memory / "memory.limit_in_bytes").write_text(str(self.limits.memory))
            with suppress(OSError):
                (self._memory / "memory.memsw.limit_in_bytes").write_text(str(self.limits.memory))
        (self._pids / "pids.max").write_text(str(self.limits.pids))

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` started inside this cgroup (a shell joins it, then becomes ``argv``)."""
        procs = [str(folder / "cgroup.procs") for folder in self.folders]
        return ["/bin/sh", "-c", _JOIN, "klaud-limits", *procs, "--", *argv]

    def _events(self) -> tuple[int, int]:
        """How often the memory limit killed something, and the process limit refused a fork."""
        memory = self._memory / ("memory.events" if self.version == 2 else "memory.oom_control")
        ooms = _counters(memory).get("oom_kill", 0)
        return ooms, _counters(self._pids / "pids.events").get("max", 0)

    def mark(self) -> None:
        """A command starts: only what happens from now on is its doing."""
        self._before = self._events()

    def exceeded(self) -> str | None:
        """Which limit the command since ``mark`` ran into, if any (while or after it runs)."""
        ooms, refused = (
            now - before for now, before in zip(self._events(), self._before, strict=True)
        )
        if ooms:
            return f"exceeded its memory limit ({_size(self.limits.memory)})"
        if refused:
            return f"exceeded its process limit ({self.limits.pids})"
        return None

    def remove(self, grace: float = 2.0) -> None:
        """Remove the cgroup once its killed processes are gone (a zombie not yet reaped
        still counts; the harness reaps it); an empty folder left after ``grace`` is
        harmless."""
        deadline = time.monotonic() + grace
        for folder in self.folders:
            while True:
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.01)


def _counters(path: Path) -> dict[str, int]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    pairs = (line.split() for line in lines)
    return {p[0]: int(p[1]) for p in pairs if len(p) == 2 and p[1].isdigit()}


# --- the session's choice, one app's confinement ---------------------------------------


@dataclass(frozen=True)
class Isolation:
    """How every app of the session runs: in ``bwrap`` or not, under ``limits``."""

    bwrap: Bubblewrap | None = None
    limits: Limits | None = None
    cgroups: CgroupLayout | None = None  # None with limits: rlimits through prlimit

    @property
    def sandbox(self) -> str:
        return "bwrap" if self.bwrap else "none"

    @property
    def limits_by(self) -> str | None:
        if self.limits is None:
            return None
        return f"cgroup v{self.cgroups.version}" if self.cgroups else "rlimit"

    def confine(self, workdir: Path, scratch: Path) -> Confinement | None:
        """One app's confinement (None: nothing to confine); ``scratch`` is the app's own."""
        if self.bwrap is None and self.limits is None:
            return None
        if self.bwrap:
            self.bwrap.prepare(scratch)
        return Confinement(self, workdir, scratch)


class Confinement:
    """One app's commands, each turned into the argv that runs it confined; its cgroup is
    made at the first command and removed by ``close``."""

    def __init__(self, isolation: Isolation, workdir: Path, scratch: Path) -> None:
        self.isolation, self.workdir, self.scratch = isolation, workdir, scratch
        self.cgroup: Cgroup | None = None

    def visible_path(self, path: str) -> str:
        """The folders of ``path`` that exist inside the sandbox (all of them without one)."""
        if self.isolation.bwrap is None:
            return path
        roots = [*map(Path, SYSTEM_FOLDERS), *self.isolation.bwrap.tools, self.workdir]
        folders = path.split(os.pathsep)
        return os.pathsep.join(f for f in folders if any(Path(f).is_relative_to(r) for r in roots))

    def argv(self, command: str) -> list[str]:
        """The argv for ``command``, about to start (``exceeded`` looks from now on)."""
        bwrap = self.isolation.bwrap
        argv = (
            bwrap.argv(command, self.workdir, self.scratch) if bwrap else ["/bin/sh", "-c", command]
        )
        limits = self.isolation.limits
        if limits is None:
            return argv
        if self.isolation.cgroups:
            if self.cgroup is None:
                self.cgroup = self.isolation.cgroups.make(limits)
            self.cgroup.mark()
            return self.cgroup.wrap(argv)
        prlimit = shutil.which("prlimit") or "prlimit"
        return [prlimit, f"--as={limits.memory}", "--", *argv]

    def exceeded(self) -> str | None:
        """The limit the latest command ran into, if it is known."""
        return self.cgroup.exceeded() if self.cgroup else None

    def close(self) -> None:
        """The app is done (its processes killed): remove its cgroup."""
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
