"""Merge the reports of an evaluation's shards into the report of the whole evaluation.

A CI matrix evaluates one corpus in shards (pytest-split groups, ``-k`` selections), each on
its own machine with its own report. Every report records the whole corpus it was cut from
(``run["corpus"]``: each app of the apps folder, selected or not, with its ``app_digest``).
The merge checks that the shards are of one mode and one corpus and hold every app of it
exactly once, then builds the report with ``report.build_report``: the summary, counts and
apps are computed exactly as a single run over the same apps computes them, and the dataset
digest is recomputed from the recorded app digests (the merging machine needs no apps).

No pytest, no mlflow: ``pytest --klaud-merge`` (``sharding.py``) is the thin caller.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pytest_klaudbiusz.results.aggregate import build_report
from pytest_klaudbiusz.results.dataset import combine_digests
from pytest_klaudbiusz.results.generation import model_of
from pytest_klaudbiusz.results.model import AppResult
from pytest_klaudbiusz.results.report import EvaluationReport

#: A shard: where its report came from (shown in messages) and the report.
Shard = tuple[str, Mapping[str, Any]]

#: Keys of a shard's run that describe the shard, not the merged evaluation.
SHARD_ONLY_KEYS = ("shard", "parent_run_id", "mlflow_version", "tracking_uri", "experiment")


class MergeError(ValueError):
    """The shards cannot be merged; the message is one line naming the problem."""


def _corpus(shard: Shard) -> dict[str, Any]:
    source, report = shard
    corpus = report["run"].get("corpus")
    if not isinstance(corpus, dict) or not corpus:
        raise MergeError(
            f"{source}: the report records no corpus (run.corpus): evaluate the shard with"
            " this plugin version and an apps folder"
        )
    return corpus


def _check_one_evaluation(shards: Sequence[Shard]) -> dict[str, Any]:
    """The corpus the shards share; ``MergeError`` when their modes or corpora differ."""
    first_source, first = shards[0]
    mode, corpus = first["run"].get("mode"), _corpus(shards[0])
    for shard in shards[1:]:
        source, report = shard
        if report["run"].get("mode") != mode:
            raise MergeError(
                f"shards of different modes: {first_source} is {mode},"
                f" {source} is {report['run'].get('mode')}"
            )
        other = _corpus(shard)
        if only := sorted(corpus.keys() ^ other.keys()):
            inside, outside = (
                (first_source, source) if only[0] in corpus else (source, first_source)
            )
            raise MergeError(
                f"shards of different corpora: app {only[0]!r} is in the corpus of {inside}"
                f" but not of {outside}"
            )
        if changed := sorted(n for n in corpus if corpus[n] != other[n]):
            raise MergeError(
                f"shards of different corpora: app {changed[0]!r} differs between"
                f" {first_source} and {source}"
            )
    return corpus


def _results(shards: Sequence[Shard], corpus: Mapping[str, Any]) -> list[AppResult]:
    """Every shard's apps, each app of the corpus exactly once."""
    owner: dict[str, str] = {}
    results = []
    for source, report in shards:
        for position, entry in enumerate(report["apps"]):
            try:
                result = AppResult.from_dict(entry)
            except (KeyError, TypeError, ValueError, AttributeError):
                raise MergeError(f"{source}: app entry {position} is malformed") from None
            name = result.app_name
            if name in owner:
                raise MergeError(f"app {name!r} is in two shards: {owner[name]} and {source}")
            if name not in corpus:
                raise MergeError(f"app {name!r} of {source} is not in its corpus")
            owner[name] = source
            results.append(result)
    if missing := sorted(corpus.keys() - owner.keys()):
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise MergeError(
            f"app {missing[0]!r} of the corpus is in no shard{more}: merge every shard"
        )
    return results


def _time(shard: Shard, key: str) -> datetime:
    source, report = shard
    try:
        return datetime.fromisoformat(str(report["run"][key]))
    except (KeyError, ValueError):
        raise MergeError(f"{source}: run.{key} is not an ISO 8601 time") from None


def parent_run_id(shards: Sequence[Shard]) -> str | None:
    """The run the shards were logged under (``--klaud-parent-run``), if any."""
    parents = {
        source: report["run"]["parent_run_id"]
        for source, report in shards
        if report["run"].get("parent_run_id")
    }
    if len(set(parents.values())) > 1:
        listed = ", ".join(f"{source} ({run_id})" for source, run_id in parents.items())
        raise MergeError(f"shards of different parent runs: {listed}")
    return next(iter(parents.values()), None)


def _merged_id(runs: Sequence[Mapping[str, Any]]) -> str:
    """The same shards always merge into the same evaluation, so MLflow gets it once."""
    ids = sorted(str(r.get("evaluation_id") or r.get("started_at")) for r in runs)
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:32]


def merge_reports(shards: Sequence[Shard], command: str | None = None) -> EvaluationReport:
    """The report of the whole evaluation; ``MergeError`` when the shards are not one.

    Its run is the earliest shard's, with the earliest start and the latest finish, the
    dataset of all apps, the shards listed under ``shards`` and ``command`` (the merge's).
    """
    if not shards:
        raise MergeError("no shard reports to merge")
    corpus = _check_one_evaluation(shards)
    results = _results(shards, corpus)
    starts = [_time(shard, "started_at") for shard in shards]
    finishes = [_time(shard, "finished_at") for shard in shards]
    runs = [report["run"] for _, report in shards]
    run = copy.deepcopy(dict(runs[starts.index(min(starts))]))
    for key in SHARD_ONLY_KEYS:
        run.pop(key, None)
    models = {r.get("model_version") or "unknown" for r in runs}
    dataset = run.get("dataset") or {}
    run.update(
        started_at=runs[starts.index(min(starts))]["started_at"],
        finished_at=runs[finishes.index(max(finishes))]["finished_at"],
        model_version=models.pop() if len(models) == 1 else model_of(results) or "unknown",
        dataset={
            "name": dataset.get("name") or "apps",
            "source": dataset.get("source"),
            **combine_digests({r.app_name: corpus[r.app_name] for r in results}),
        },
        mlflow_run_id=None,
        evaluation_id=_merged_id(runs),
        status="interrupted" if any(r.get("status") == "interrupted" for r in runs) else "finished",
        shards=[
            {
                "report": source,
                "shard": report["run"].get("shard"),
                "apps": len(report["apps"]),
                "started_at": report["run"]["started_at"],
                "finished_at": report["run"]["finished_at"],
                "mlflow_run_id": report["run"].get("mlflow_run_id"),
                "evaluation_id": report["run"].get("evaluation_id"),
            }
            for source, report in shards
        ],
    )
    if command is not None:
        run["command"] = command
    return build_report(results, run)
