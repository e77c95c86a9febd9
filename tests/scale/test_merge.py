"""Merging shard reports (pytest_klaudbiusz.scale.merge): one evaluation, each app exactly once."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import sample, subprocess_env

from pytest_klaudbiusz.results.aggregate import build_report
from pytest_klaudbiusz.results.dataset import app_digests, combine_digests, corpus_digest
from pytest_klaudbiusz.results.model import AppResult
from pytest_klaudbiusz.scale.merge import MergeError, merge_reports, parent_run_id

#: A corpus record as shards keep it: app name -> its app_digest.
CORPUS = {
    app.app_name: {"digest": f"{i:032x}", "files": i + 1, "bytes": 100 * (i + 1)}
    for i, app in enumerate(sample())
}


def run_info(started: str, finished: str, **extra: Any) -> dict[str, Any]:
    return {
        "mode": "mcp",
        "started_at": started,
        "finished_at": finished,
        "plugin_version": "0.1.0",
        "model_version": "unknown",
        "apps_dir": "/ci/apps",
        "command": "pytest evals",
        "mlflow_run_id": None,
        "dataset": {"name": "apps", "source": "/ci/apps", "digest": "f" * 32},
        "corpus": copy.deepcopy(CORPUS),
        "shard": None,
        "parent_run_id": None,
        **extra,
    }


def shard_report(names: set[str], started: str, finished: str, **extra: Any) -> dict[str, Any]:
    apps = [a for a in sample() if a.app_name in names]
    return build_report(apps, run_info(started, finished, **extra))


def two_shards(**extra: Any) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("s1.json", shard_report({"alpha", "delta"}, "2026-05-01T10:02:00Z",
                                 "2026-05-01T10:09:00Z", shard="1/2", **extra)),
        ("s2.json", shard_report({"bravo", "charlie", "echo"}, "2026-05-01T10:01:00Z",
                                 "2026-05-01T10:05:00Z", shard="2/2", **extra)),
    ]  # fmt: skip


def test_merged_report_equals_a_single_report_over_the_same_apps() -> None:
    single = build_report(sample(), run_info("2026-05-01T10:01:00Z", "2026-05-01T10:09:00Z"))

    merged = merge_reports(two_shards(), command="pytest --klaud-merge s1.json s2.json")

    assert merged["summary"] == single["summary"]
    assert merged["counts"] == single["counts"]
    assert merged["apps"] == single["apps"]
    assert merged["summary"]["total_apps"] == 5  # infra errors and not-run apps too
    assert merged["summary"]["avg_ui_score"] == single["summary"]["avg_ui_score"]


def test_merged_run_spans_the_shards_and_lists_them() -> None:
    shards = two_shards(parent_run_id="p" * 32, tracking_uri="http://x", mlflow_version="3")

    run = merge_reports(shards, command="pytest --klaud-merge s1.json s2.json")["run"]

    assert (run["started_at"], run["finished_at"]) == (
        "2026-05-01T10:01:00Z",  # the earliest start (of shard 2)
        "2026-05-01T10:09:00Z",  # the latest finish (of shard 1)
    )
    assert run["command"] == "pytest --klaud-merge s1.json s2.json"
    assert run["mlflow_run_id"] is None
    assert not {"shard", "parent_run_id", "tracking_uri", "mlflow_version"} & run.keys()
    assert [(s["report"], s["shard"], s["apps"]) for s in run["shards"]] == [
        ("s1.json", "1/2", 2),
        ("s2.json", "2/2", 3),
    ]
    assert run["corpus"] == CORPUS
    assert run["dataset"] == {"name": "apps", "source": "/ci/apps", **combine_digests(CORPUS)}
    assert run["dataset"]["apps"] == 5 and run["dataset"]["files"] == 15


def test_the_dataset_digest_is_recomputed_from_the_recorded_app_digests(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "main.py").write_text(f"print({name!r})\n")
    apps = sorted(tmp_path.iterdir())
    recorded = app_digests(apps)  # what every shard records

    assert combine_digests(recorded) == corpus_digest(apps)
    assert (
        combine_digests(recorded)["digest"]
        != combine_digests({k: v for k, v in recorded.items() if k != "c"})["digest"]
    )


def test_a_missing_app_is_named() -> None:
    shards = two_shards()[:1]
    with pytest.raises(
        MergeError, match=r"^app 'bravo' of the corpus is in no shard \(and 2 more\)"
    ):
        merge_reports(shards)
    shards = two_shards()
    shards[1][1]["apps"] = [a for a in shards[1][1]["apps"] if a["app_name"] != "echo"]
    with pytest.raises(MergeError, match=r"^app 'echo' of the corpus is in no shard: "):
        merge_reports(shards)


def test_a_duplicated_app_is_named_with_both_shards() -> None:
    shards = two_shards()
    shards[1][1]["apps"].append(copy.deepcopy(shards[0][1]["apps"][0]))
    with pytest.raises(MergeError, match=r"^app 'alpha' is in two shards: s1.json and s2.json$"):
        merge_reports(shards)


def test_shards_of_different_modes_are_refused() -> None:
    shards = two_shards()
    shards[1][1]["run"]["mode"] = "vanilla_sdk"
    with pytest.raises(MergeError, match=r"^shards of different modes: s1.json is mcp, s2.json is"):
        merge_reports(shards)


def test_shards_of_different_corpora_are_refused() -> None:
    shards = two_shards()
    shards[1][1]["run"]["corpus"]["alpha"]["digest"] = "e" * 32
    with pytest.raises(MergeError, match=r"^shards of different corpora: app 'alpha' differs"):
        merge_reports(shards)
    shards = two_shards()
    shards[0][1]["run"]["corpus"]["zulu"] = CORPUS["alpha"]
    with pytest.raises(
        MergeError, match=r"^shards of different corpora: app 'zulu' is in the corpus of s1.json"
    ):
        merge_reports(shards)


def test_an_app_outside_the_corpus_is_refused() -> None:
    shards = two_shards()
    stranger = AppResult("zulu", "apps/zulu").to_dict()
    shards[0][1]["apps"].append(stranger)
    with pytest.raises(MergeError, match=r"^app 'zulu' of s1.json is not in its corpus$"):
        merge_reports(shards)


def test_a_report_without_corpus_is_refused() -> None:
    shards = two_shards()
    del shards[1][1]["run"]["corpus"]
    with pytest.raises(MergeError, match=r"^s2.json: the report records no corpus"):
        merge_reports(shards)


def test_model_version_is_kept_when_shards_agree_and_recomputed_when_not() -> None:
    assert merge_reports(two_shards(model_version="m1"))["run"]["model_version"] == "m1"
    shards = two_shards()
    shards[0][1]["run"]["model_version"] = "m1"
    assert merge_reports(shards)["run"]["model_version"] == "unknown"  # not every app says m1


def test_parent_run_is_the_shards_common_one() -> None:
    assert parent_run_id(two_shards()) is None
    assert parent_run_id(two_shards(parent_run_id="abc")) == "abc"
    shards = two_shards(parent_run_id="abc")
    shards[1][1]["run"]["parent_run_id"] = "xyz"
    with pytest.raises(MergeError, match=r"^shards of different parent runs: s1.json \(abc\)"):
        parent_run_id(shards)


def test_importing_merge_loads_neither_mlflow_nor_pytest() -> None:
    code = (
        "import sys, pytest_klaudbiusz.scale.merge;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'mlflow', 'pytest', '_pytest'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True
    )
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr
