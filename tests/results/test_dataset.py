"""The app corpus digest: equal apps, equal digest; any change to an app, another digest."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import REPO

from pytest_klaudbiusz.apps.plan import discover_apps
from pytest_klaudbiusz.results.dataset import DIGEST_CHARS, corpus_digest, dataset_info


def make_corpus(root: Path) -> Path:
    files = {
        "alpha/package.json": '{"scripts": {"start": "node server.js"}}\n',
        "alpha/server.js": "require('http').createServer().listen(process.env.PORT);\n",
        "alpha/package-lock.json": "{}\n",
        "alpha/generation_metrics.json": '{"cost_usd": 0.5}\n',
        "beta/app.py": "print('beta')\n",
        "beta/tests/test_app.py": "def test(): pass\n",
        "beta/empty.txt": "",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def digest(root: Path) -> str:
    return str(corpus_digest(discover_apps(root))["digest"])


def test_digest_shape_and_counts(tmp_path: Path) -> None:
    info = corpus_digest(discover_apps(make_corpus(tmp_path / "apps")))
    assert set(info) == {"digest", "apps", "files", "bytes"}
    assert len(info["digest"]) == DIGEST_CHARS == 32  # MLflow's digest column holds 36
    assert int(info["digest"], 16) >= 0
    assert (info["apps"], info["files"]) == (2, 7)
    assert info["bytes"] == sum(
        p.stat().st_size for p in (tmp_path / "apps").rglob("*") if p.is_file()
    )


def test_same_apps_anywhere_any_time_same_digest(tmp_path: Path) -> None:
    first = make_corpus(tmp_path / "one" / "apps")
    second = tmp_path / "elsewhere" / "corpus"
    shutil.copytree(first, second)
    for path in second.rglob("*"):
        os.utime(path, (1, 1))  # timestamps are not content
    assert digest(first) == digest(second)
    # the order the apps come in does not matter
    apps = discover_apps(first)
    assert corpus_digest(reversed(apps)) == corpus_digest(apps)


def change(rel: str, text: str | None) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / rel
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    return apply


@pytest.mark.parametrize(
    "edit",
    [
        change("alpha/server.js", "require('http').createServer().listen(3000);\n"),
        change("alpha/generation_metrics.json", '{"cost_usd": 0.6}\n'),
        change("alpha/package-lock.json", None),
        change("beta/empty.txt", None),  # an empty file still counts
        change("beta/README.md", "# beta\n"),
        lambda root: (root / "beta" / "app.py").rename(root / "beta" / "main.py"),
        lambda root: (root / "beta").rename(root / "gamma"),  # the app's name is its id
        lambda root: shutil.rmtree(root / "beta"),
    ],
    ids=[
        "source",
        "generation data",
        "lockfile",
        "empty file",
        "new file",
        "rename file",
        "rename app",
        "remove app",
    ],
)
def test_any_change_to_an_app_changes_the_digest(
    tmp_path: Path, edit: Callable[[Path], None]
) -> None:
    root = make_corpus(tmp_path / "apps")
    before = digest(root)
    edit(root)
    assert digest(root) != before


def test_dependencies_build_output_and_vcs_are_left_out(tmp_path: Path) -> None:
    root = make_corpus(tmp_path / "apps")
    before = corpus_digest(discover_apps(root))
    for rel in (
        "alpha/node_modules/lib/index.js",
        "alpha/client/node_modules/x.js",
        "alpha/dist/bundle.js",
        "alpha/.git/HEAD",
        "beta/.venv/lib/site.py",
        "beta/__pycache__/app.cpython-311.pyc",
        "beta/tests/test_app.pyc",
        "beta/.DS_Store",
    ):
        change(rel, "generated\n")(root)
    assert corpus_digest(discover_apps(root)) == before


def test_symlinks_are_hashed_as_links_not_followed(tmp_path: Path) -> None:
    root = make_corpus(tmp_path / "apps")
    outside = tmp_path / "outside.txt"
    outside.write_text("one\n")
    (root / "alpha" / "link.txt").symlink_to(outside)
    (root / "alpha" / "linked-dir").symlink_to(tmp_path, target_is_directory=True)
    linked = digest(root)
    outside.write_text("two\n")  # the target is not part of the app
    assert digest(root) == linked
    (root / "alpha" / "link.txt").unlink()
    (root / "alpha" / "link.txt").symlink_to(tmp_path / "other.txt")
    assert digest(root) != linked


def test_dataset_info_names_the_folder_relative_to_the_rootdir(tmp_path: Path) -> None:
    root = make_corpus(tmp_path / "repo" / "evals" / "apps")
    apps = discover_apps(root)
    inside = dataset_info(apps, root, tmp_path / "repo")
    assert (inside["name"], inside["source"]) == ("evals/apps", str(root))
    assert inside["digest"] == digest(root)
    assert dataset_info(apps, root, tmp_path / "elsewhere")["name"] == "apps"
    assert dataset_info(apps, root, root)["name"] == "apps"


def test_the_shipped_corpus_has_a_digest(tmp_path: Path) -> None:
    shipped = REPO / "evals" / "apps"
    copy = tmp_path / "apps"
    shutil.copytree(shipped, copy)
    assert digest(copy) == digest(shipped)
    assert corpus_digest(discover_apps(shipped))["apps"] == len(discover_apps(shipped))
