"""What an untrusted app gets: a working copy of its folder and a minimal environment."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

BASE_VARIABLES = (
    "PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
    "http_proxy", "https_proxy", "no_proxy", "all_proxy",
)  # fmt: skip
DATABRICKS_VARIABLES = ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_WAREHOUSE_ID")
#: Never given to generated code, whatever a manifest or the passthrough list asks.
SECRET_PATTERNS = (
    "ANTHROPIC_*", "OPENAI_*", "MLFLOW_*", "AWS_*", "AZURE_*", "GOOGLE_*", "GCP_*",
    "GITHUB_TOKEN", "GH_TOKEN", "*_API_KEY", "KLAUD_*",
)  # fmt: skip
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class CopyError(OSError):
    """The working copy could not be made (an infrastructure error)."""


def is_secret(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in SECRET_PATTERNS)


def app_environment(
    environ: Mapping[str, str],
    *,
    port: int,
    workdir: Path,
    port_env: Sequence[str] = (),
    manifest_env: Mapping[str, str] | None = None,
    passthrough: Sequence[str] = (),
) -> tuple[dict[str, str], list[str]]:
    """The app's environment, and the secret names its manifest asked for and did not get."""
    env = {k: environ[k] for k in (*BASE_VARIABLES, *DATABRICKS_VARIABLES) if k in environ}
    env.update(
        (k, v) for k, v in environ.items()
        if any(fnmatch.fnmatchcase(k, p) for p in passthrough) and not is_secret(k)
    )  # fmt: skip
    venv_bin = workdir / ".venv" / "bin"
    env["PATH"] = os.pathsep.join(p for p in (str(venv_bin), env.get("PATH", os.defpath)) if p)
    refused: list[str] = []

    def expand(match: re.Match[str]) -> str:
        name = match.group(1)
        if is_secret(name):
            refused.append(name)
            return ""
        return environ.get(name, "")

    for name, value in (manifest_env or {}).items():
        if is_secret(name):
            refused.append(name)
        else:
            env[name] = _REFERENCE.sub(expand, value)
    for name in ("PORT", "DATABRICKS_APP_PORT", *port_env):
        env[name] = str(port)
    return env, refused


def make_working_copy(app_dir: Path, dest: Path) -> list[str]:
    """Copy the app, keeping links that stay inside it; returns the links left out.

    A link that points outside the app folder, or to an absolute path (which in
    the copy would still point at the original), would let the app write to the
    user's files through the copy, so it is not kept. Links are judged where they
    are used, in the copy: a relative link that climbs out of the app folder and
    back into it (``../../…/app/data``) stays inside the original, but from the
    copy it reaches the original.
    """
    try:
        shutil.copytree(app_dir, dest, symlinks=True)  # links are copied as links, not followed
        return _drop_escaping_links(dest)
    except (OSError, shutil.Error) as exc:
        raise CopyError(f"cannot copy {app_dir} to a working copy: {exc}") from None


def _drop_escaping_links(root: Path) -> list[str]:
    """Remove the links in ``root`` that do not lead to something inside it."""
    real_root = root.resolve()
    escaping = []
    for link in _links(root):
        try:
            target = link.resolve()
            inside = target.is_relative_to(real_root) and target.exists()
        except (OSError, RuntimeError):  # a link loop
            inside = False
        if os.path.isabs(os.readlink(link)) or not inside:
            escaping.append(link)
    for link in escaping:
        link.unlink()
    return sorted(str(link.relative_to(root)) for link in escaping)


def _links(root: Path) -> list[Path]:
    """Every symlink under ``root``; linked folders are not entered (no stat per file)."""
    links, folders = [], [root]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.is_symlink():
                    links.append(Path(entry.path))
                elif entry.is_dir(follow_symlinks=False):
                    folders.append(Path(entry.path))
    return links
