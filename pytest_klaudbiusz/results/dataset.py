"""The evaluated app corpus as a dataset: a digest of the apps' contents.

Two evaluations whose apps hold the same files (names and bytes) get the same digest,
wherever the apps folder is and whatever its files' timestamps; any change to any app's
source, manifest, lockfile or generation data gives another. Dependencies and build output
(``node_modules``, ``dist``, ``.venv``, ...) and ``.git`` are left out: they are installed
or produced, not generated. Computed on the controller from the files alone; the digest
goes into ``report["run"]["dataset"]`` and, when tracked, becomes the MLflow dataset
input of the run. The corpus digest is a digest of the apps' own digests, so that a merge of
shards evaluated on other machines recomputes it from what the shards recorded
(``report["run"]["corpus"]``) without the apps.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pytest_klaudbiusz.apps.scoring import NOT_SOURCE_DIRS

#: MLflow stores dataset digests in a 36-character column: 32 hex digits (128 bits of
#: SHA-256) fit everywhere and are far beyond accidental collisions.
DIGEST_CHARS = 32
EXCLUDED_DIRS = NOT_SOURCE_DIRS | {".git", ".hg", ".svn", ".pytest_cache", ".mypy_cache"}
EXCLUDED_FILES = frozenset({".DS_Store", "Thumbs.db"})


def _entries(app_dir: Path, generated_only: bool) -> list[tuple[str, os.DirEntry[str]]]:
    """(path relative to the app, POSIX form; its directory entry), sorted by path.
    Symlinks are entries of their own, never followed. ``generated_only`` leaves out
    dependencies, build output, VCS folders and caches; otherwise every file is listed."""
    found: list[tuple[str, os.DirEntry[str]]] = []
    pending = [("", str(app_dir))]
    while pending:
        prefix, folder = pending.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError:
            continue  # an unreadable folder: its files cannot be hashed, nor copied
        for entry in entries:
            relative = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                if not (generated_only and entry.name in EXCLUDED_DIRS):
                    pending.append((relative + "/", entry.path))
            elif not (generated_only and _not_generated(entry.name)):
                found.append((relative, entry))
    found.sort(key=lambda item: item[0])
    return found


def _not_generated(file_name: str) -> bool:
    return file_name in EXCLUDED_FILES or file_name.endswith((".pyc", ".pyo"))


def _content_hash(entry: os.DirEntry[str]) -> tuple[bytes, int]:
    """SHA-256 of a file's bytes (or of a link's target text) and the number of bytes."""
    try:
        if entry.is_symlink():
            target = os.readlink(entry.path).encode("utf-8", "surrogateescape")
            return hashlib.sha256(b"link:" + target).digest(), 0
        with open(entry.path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            return hashlib.file_digest(handle, "sha256").digest(), size
    except OSError as exc:  # unreadable: its name and the reason still count
        return hashlib.sha256(f"unreadable:{exc.errno}".encode()).digest(), 0


def framed(tag: bytes, text: str) -> bytes:
    """``text`` tagged and length-prefixed: concatenations of framed texts never collide."""
    data = text.encode("utf-8", "surrogateescape")
    return tag + len(data).to_bytes(4, "big") + data


def file_hashes(app_dir: Path, *, generated_only: bool = True) -> Iterator[tuple[str, bytes, int]]:
    """(relative path, SHA-256 of the bytes, number of bytes) of each of the app's files,
    sorted by path; ``generated_only=False``: every file a working copy of the app gets."""
    for relative, entry in _entries(app_dir, generated_only):
        content, size = _content_hash(entry)
        yield relative, content, size


def app_digest(app_dir: Path) -> dict[str, Any]:
    """``{"digest", "files", "bytes"}`` of one app: what a shard records for every app of
    the corpus, so that a merge elsewhere recomputes the corpus digest without the apps."""
    digest = hashlib.sha256(b"klaudbiusz-app-v1")
    n_files = n_bytes = 0
    for relative, content, size in file_hashes(app_dir):
        digest.update(framed(b"F", relative) + content)
        n_files += 1
        n_bytes += size
    return {"digest": digest.hexdigest()[:DIGEST_CHARS], "files": n_files, "bytes": n_bytes}


def combine_digests(apps: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``{"digest", "apps", "files", "bytes"}`` of a corpus from its apps' ``app_digest``
    records, by app folder name (order does not matter)."""
    total = hashlib.sha256(b"klaudbiusz-corpus-v2")
    for name in sorted(apps):
        total.update(framed(b"A", name) + bytes.fromhex(apps[name]["digest"]))
    return {
        "digest": total.hexdigest()[:DIGEST_CHARS],
        "apps": len(apps),
        "files": sum(int(app["files"]) for app in apps.values()),
        "bytes": sum(int(app["bytes"]) for app in apps.values()),
    }


def app_digests(app_dirs: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """Each app's ``app_digest`` by folder name, sorted (``report["run"]["corpus"]``)."""
    return {app_dir.name: app_digest(app_dir) for app_dir in sorted(app_dirs, key=lambda p: p.name)}


def corpus_digest(app_dirs: Iterable[Path]) -> dict[str, Any]:
    """``{"digest", "apps", "files", "bytes"}`` of the apps (order does not matter)."""
    return combine_digests(app_digests(app_dirs))


def dataset_info(
    app_dirs: Iterable[Path],
    apps_dir: Path | None,
    rootdir: Path,
    known: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The run's dataset record: a name (the apps folder, relative to the rootdir when it is
    inside it), where the apps are, and the corpus digest. ``known``: ``app_digest``
    records already made, by folder name (the report's ``corpus``): not hashed again."""
    name, source = "apps", None
    if apps_dir is not None:
        source = str(apps_dir)
        try:
            relative = apps_dir.resolve().relative_to(rootdir.resolve()).as_posix()
        except ValueError:
            relative = "."
        name = relative if relative != "." else apps_dir.name or "apps"
    known = known or {}
    digests = {d.name: known.get(d.name) or app_digest(d) for d in app_dirs}
    return {"name": name, "source": source, **combine_digests(digests)}
