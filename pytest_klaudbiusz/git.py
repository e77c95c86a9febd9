"""The git revision an evaluation ran at (its apps' repository): recorded in the report,
and the branch a baseline of the same branch is searched on."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_revision(folder: Path) -> tuple[str | None, str | None]:
    """Commit and branch of the repository holding ``folder``, if it is in one."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() or None if out.returncode == 0 else None

    return git("rev-parse", "HEAD"), git("rev-parse", "--abbrev-ref", "HEAD")
