"""UI sample apps (one per folder, see README.md) and the helper that makes them runnable.

The apps share one server, ``server.py``; it cannot be referenced from outside an app
(the sandbox shows an app nothing but its working copy), so ``copy_app`` puts a copy of
it where the app's start command runs it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

HERE = Path(__file__).parent
NAMES = ("api-only", "blank-page", "missing-api", "renders", "throws-at-load", "trpc-static")


def copy_app(name: str, dest: Path) -> Path:
    """A runnable copy of ``tests/ui_apps/<name>`` at ``dest``."""
    shutil.copytree(HERE / name, dest)
    server_folder = dest / "server" if (dest / "server").is_dir() else dest
    shutil.copyfile(HERE / "server.py", server_folder / "server.py")
    return dest


def copy_apps(apps_dir: Path) -> Path:
    """Every UI sample app, runnable, under ``apps_dir``."""
    for name in NAMES:
        copy_app(name, apps_dir / name)
    return apps_dir
