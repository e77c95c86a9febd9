"""Log an evaluation report to MLflow: one run with batched metrics, artifacts and a table.

Pure helpers (URI resolution, preflight checks, names) cost nothing to import; only the
functions that talk to MLflow import it (``import mlflow`` takes about a second), so a
pytest run that does not track never pays for it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from pytest_klaudbiusz.results.metrics import GENERATION_KEYS, TABLE_METRICS
from pytest_klaudbiusz.results.report import REPRODUCIBILITY_FIELDS, EvaluationReport

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


_ADVICE = (
    "check the server and --klaud-tracking-uri / MLFLOW_TRACKING_URI, or pass --klaud-no-tracking"
)
_BAD_KEY_CHARS = re.compile(r"[^\w\-./: ]")
_ERRNO = re.compile(r"\[Errno -?\d+\] ([\w ]+)")
_CREDENTIALS = re.compile(r"//[^/@\s]+@")  # user:password@ in URLs quoted by errors


#: Tags a run with its report's ``run["evaluation_id"]``: how a resend finds it.
EVALUATION_ID_TAG = "klaud_evaluation_id"
#: End states of a run holding a whole evaluation (KILLED: an interrupted one, in full).
COMPLETE_STATUSES = ("FINISHED", "KILLED")


class TrackingError(Exception):
    """Tracking failed; the message is one line saying what failed and what to do."""


def run_name(report: Mapping[str, Any]) -> str:
    run = report["run"]
    name = f"eval_{run['mode']}_{run['started_at']}"
    return f"{name} shard {run['shard']}" if run.get("shard") else name


#: The ``framework`` tag of a shard's run: a part of an evaluation is never a baseline nor
#: one of the runs ``--klaud-compare`` shows (they search ``framework = 'klaudbiusz'``).
SHARD_FRAMEWORK = "klaudbiusz-shard"
PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow's own: the UI nests the run under its parent


def run_tags(report: Mapping[str, Any]) -> dict[str, str]:
    """The run's tags besides ``run_name``: mode, what reproduces the run (commit, versions,
    command line), the app corpus digest and, for a shard, ``framework`` (see
    ``SHARD_FRAMEWORK``), ``klaud_shard`` and its parent; a merge of shards has
    ``klaud_shards`` (how many). Missing values are left out."""
    run = report["run"]
    tags = {"mode": run["mode"], **{key: run.get(key) for key in REPRODUCIBILITY_FIELDS}}
    tags["dataset_digest"] = (run.get("dataset") or {}).get("digest")
    tags[EVALUATION_ID_TAG] = run.get("evaluation_id")
    if run.get("shard"):
        tags.update(framework=SHARD_FRAMEWORK, klaud_shard=run["shard"])
    tags[PARENT_RUN_TAG] = run.get("parent_run_id")
    tags["klaud_shards"] = len(run["shards"]) if run.get("shards") else None
    return {k: str(v) for k, v in tags.items() if v not in (None, "")}


def evaluation_params(
    mode: str, total_apps: int, timestamp: str, model_version: str | None = None
) -> dict[str, str]:
    """The four params of every evaluation run (params cannot change once logged)."""
    return {
        "mode": str(mode),
        "total_apps": str(total_apps),
        "timestamp": str(timestamp),
        "model_version": str(model_version or "unknown"),
    }


def summary_metrics(summary: Mapping[str, Any], timestamp_ms: int) -> list[Any]:
    """``mlflow.entities.Metric`` for each number of the summary, keys made MLflow-safe."""
    from mlflow.entities import Metric

    return [
        Metric(_key(k), float(v), timestamp_ms, 0)
        for k, v in summary.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    ]


def dataset_input(run: Mapping[str, Any]) -> Any:
    """The app corpus (``run["dataset"]``) as an MLflow dataset input, or None."""
    dataset = run.get("dataset") or {}
    if not dataset.get("digest"):
        return None
    from mlflow.entities import Dataset, DatasetInput, InputTag

    profile = {k: dataset[k] for k in ("apps", "files", "bytes") if k in dataset}
    return DatasetInput(
        Dataset(
            name=str(dataset.get("name") or "apps"),
            digest=str(dataset["digest"]),
            source_type="local",
            source=json.dumps({"uri": dataset.get("source")}),
            profile=json.dumps(profile),
        ),
        tags=[InputTag("mlflow.data.context", "evaluation")],
    )


class MlflowTracker:
    """Writes runs through an explicit ``MlflowClient`` (no global MLflow state)."""

    def __init__(self, uri: str, experiment: str) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.experiment = experiment
        # The client initialises the store; several processes creating a fresh mlflow.db
        # at once corrupt it for good, so that first touch happens under a file lock.
        with self._wrap("opening the tracking store"), store_lock(uri):
            self.client: MlflowClient = MlflowClient(tracking_uri=uri)
        self.run_experiments: dict[str, str] = {}  # run id -> experiment id, as learnt

    def open_run(self, report: Mapping[str, Any]) -> str:
        """A new RUNNING run for the report; a shard's run goes under its parent run, in the
        parent's experiment (the UI nests runs of one experiment only)."""
        parent = report["run"].get("parent_run_id")
        experiment_id = self.get_run(parent, "parent run").info.experiment_id if parent else None
        return self.create_run(
            run_name(report),
            run_tags(report),
            start_time=_ms(report["run"]["started_at"]),
            experiment_id=experiment_id,
        )

    def resume_run(self, run_id: str, report: Mapping[str, Any]) -> str:
        """The open run ``run_id`` (a sharded evaluation's parent, ``pytest --klaud-open-run``)
        named and tagged as ``open_run`` names and tags a new run for the report."""
        from mlflow.entities import RunTag

        if self.get_run(run_id, "run").info.status == "FINISHED":
            raise TrackingError(
                f"MLflow run {run_id} is already finished: open another with"
                " pytest --klaud-open-run"
            )
        name = run_name(report)
        with self._wrap("updating the run"):
            self.client.update_run(run_id, name=name)
            tags = _creation_tags(name, run_tags(report))
            self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        return run_id

    def get_run(self, run_id: str, what: str) -> Any:
        """``MlflowClient.get_run``; ``TrackingError`` naming ``what`` when it does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
            self.run_experiments[run_id] = run.info.experiment_id
            return run
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise self._error(f"reading {what} {run_id}", exc) from exc
        except Exception as exc:
            raise self._error(f"reading {what} {run_id}", exc) from exc
        raise TrackingError(
            f"MLflow {what} {run_id} does not exist at {display_uri(self.uri)}:"
            " open one with pytest --klaud-open-run and pass its id"
        )

    def create_run(
        self,
        name: str,
        tags: Mapping[str, Any],
        start_time: int | None = None,
        experiment_id: str | None = None,
    ) -> str:
        """A new RUNNING run of the experiment (or of ``experiment_id``), tagged
        ``framework`` and ``run_name``."""
        with self._wrap("creating the run"):
            created = self.client.create_run(
                experiment_id or self._experiment_id(),
                start_time=start_time,
                tags=_creation_tags(name, tags),
                run_name=name,
            )
        self.run_experiments[created.info.run_id] = created.info.experiment_id
        return str(created.info.run_id)

    def complete_run(
        self, run_id: str, report: Mapping[str, Any], files: Sequence[Path], traces: bool = True
    ) -> None:
        """Metrics, params, tags and description in one request, the dataset, the files,
        the apps table and, with ``traces``, a trace per app (none for a shard: its merge
        writes them), then the end state."""
        from mlflow.entities import Param, RunTag

        from pytest_klaudbiusz.ci.gate_report import mlflow_fields
        from pytest_klaudbiusz.tracking.describe import NOTE_TAG, run_description

        run = report["run"]
        step = "logging metrics and params"
        try:
            end_time = _ms(run["finished_at"])
            params = evaluation_params(
                run["mode"], len(report["apps"]), run["started_at"], run.get("model_version")
            )
            gate_metrics, gate_tags = mlflow_fields(report)  # the quality gate's verdict
            gate_tags[NOTE_TAG] = run_description(report)
            self.client.log_batch(
                run_id,
                metrics=summary_metrics({**report["summary"], **gate_metrics}, end_time),
                params=[Param(k, v) for k, v in params.items()],
                tags=[RunTag(k, v) for k, v in gate_tags.items()],
            )
            step = "logging the dataset"
            if dataset := dataset_input(run):
                self.client.log_inputs(run_id, datasets=[dataset])
            step = "uploading the report files"
            self._upload(run_id, files)
            step = "logging the apps table"
            self.client.log_table(run_id, data=apps_table(report), artifact_file="apps_table.json")
            if traces and not run.get("shard"):
                step = "writing the app traces"
                self._write_traces(run_id, report)
            step = "finishing the run"
            status = "KILLED" if run.get("status") == "interrupted" else "FINISHED"
            self.client.set_terminated(run_id, status, end_time=end_time)
        except Exception as exc:
            self.fail_run(run_id)
            raise self._error(step, exc) from exc

    def _upload(self, run_id: str, files: Sequence[Path]) -> None:
        """The files; a Markdown file's images linked where MLflow's preview shows them."""
        import tempfile

        from pytest_klaudbiusz.tracking.describe import artifact_image_links

        with tempfile.TemporaryDirectory(prefix="klaud-artifacts-") as tmp:
            for path in files:
                if path.is_dir():  # the screenshots: screenshots/<app>.png in the run
                    self.client.log_artifacts(run_id, str(path), path.name)
                    continue
                if path.suffix == ".md":
                    text = path.read_text(encoding="utf-8")
                    linked = artifact_image_links(text, self.uri, run_id)
                    if linked != text:
                        path = Path(tmp, path.name)
                        path.write_text(linked, encoding="utf-8")
                self.client.log_artifact(run_id, str(path))

    def _write_traces(self, run_id: str, report: Mapping[str, Any]) -> None:
        from pytest_klaudbiusz.tracking.traces import app_traces, write_traces

        experiment_id = self.run_experiments.get(run_id)
        if experiment_id is None:
            experiment_id = self.get_run(run_id, "run").info.experiment_id
        write_traces(self.uri, str(experiment_id), run_id, app_traces(report))

    def logged_run(self, evaluation_id: str) -> str | None:
        """The run already holding this evaluation in full, if any. Partial runs of it (a
        send that failed or was killed half-way) are deleted: it is to be sent again whole."""
        with self._wrap("looking for the evaluation's run"):
            experiment = self.client.get_experiment_by_name(self.experiment)
            if experiment is None:
                return None
            runs = self.client.search_runs(
                [experiment.experiment_id], f"tags.{EVALUATION_ID_TAG} = '{evaluation_id}'"
            )
            for run in runs:
                if run.info.status in COMPLETE_STATUSES:
                    return str(run.info.run_id)
            for run in runs:
                self.client.delete_run(run.info.run_id)
            if runs:  # and the traces they wrote, so the resend adds no copies
                from pytest_klaudbiusz.tracking.traces import delete_evaluation_traces

                delete_evaluation_traces(self.client, experiment.experiment_id, evaluation_id)
        return None

    def fail_run(self, run_id: str) -> None:
        """Best effort: mark the run FAILED (the store may be the thing that failed)."""
        with suppress(Exception):
            self.client.set_terminated(run_id, "FAILED")

    def _experiment_id(self) -> str:
        from mlflow.exceptions import MlflowException

        from pytest_klaudbiusz.tracking.describe import EXPERIMENT_DESCRIPTION, NOTE_TAG

        experiment = self.client.get_experiment_by_name(self.experiment)
        if experiment is None:
            try:
                return self.client.create_experiment(
                    self.experiment,
                    artifact_location=self._artifact_location(),
                    tags={NOTE_TAG: EXPERIMENT_DESCRIPTION},
                )
            except MlflowException as exc:  # another process created it meanwhile
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                experiment = self.client.get_experiment_by_name(self.experiment)
                assert experiment is not None
        if experiment.lifecycle_stage == "deleted":
            raise TrackingError(
                f"MLflow experiment {self.experiment!r} is deleted: restore it"
                " (mlflow experiments restore) or choose another with --klaud-experiment"
            )
        if NOTE_TAG not in experiment.tags:  # made before there were descriptions
            self.client.set_experiment_tag(
                experiment.experiment_id, NOTE_TAG, EXPERIMENT_DESCRIPTION
            )
        return experiment.experiment_id

    def _artifact_location(self) -> str | None:
        """Beside a SQLite database; MLflow would use ``./mlruns`` of the current directory."""
        db = sqlite_file(self.uri)
        if db is None:
            return None  # the server or workspace decides
        folder = re.sub(r"[^\w.-]+", "_", self.experiment).strip("_")
        return str(db.resolve().parent / "mlruns" / folder)

    def _error(self, step: str, exc: BaseException) -> TrackingError:
        if isinstance(exc, TrackingError):
            return exc
        return TrackingError(
            f"MLflow {step} failed at {display_uri(self.uri)} ({error_reason(exc)}): {_ADVICE}"
        )

    @contextmanager
    def _wrap(self, step: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            raise self._error(step, exc) from exc


def _creation_tags(name: str, tags: Mapping[str, Any]) -> dict[str, str]:
    tags = {"framework": "klaudbiusz", "run_name": name, **tags}
    return {k: str(v) for k, v in tags.items() if v not in (None, "")}


def apps_table(report: Mapping[str, Any]) -> dict[str, list[Any]]:
    """One row per app, as columns (the shape ``MlflowClient.log_table`` takes): its checks
    and scores, its generation cost and its custom metrics (``custom_<name>`` where the
    name is taken), so runs can be compared app by app."""
    fixed = ("app_name", "template_type", "status", *TABLE_METRICS, *GENERATION_KEYS)
    custom = sorted({name for app in report["apps"] for name in app.get("custom_metrics") or {}})
    custom_columns = {name: f"custom_{name}" if name in fixed else name for name in custom}
    rows = [
        {
            "app_name": app["app_name"],
            "template_type": app["template_type"],
            "status": str(app["status"]),
            **{name: app["metrics"].get(name) for name in TABLE_METRICS},
            **{name: (app.get("generation_metrics") or {}).get(name) for name in GENERATION_KEYS},
            **{
                column: (app.get("custom_metrics") or {}).get(name)
                for name, column in custom_columns.items()
            },
            "issues": "; ".join(app["issues"]),
        }
        for app in report["apps"]
    ]
    columns = (*fixed, *custom_columns.values(), "issues")
    return {column: [row[column] for row in rows] for column in columns}


def log_report(
    report: EvaluationReport,
    files: Sequence[Path],
    uri: str,
    experiment: str,
    on_run_id: Callable[[str], None] | None = None,
    run_id: str | None = None,
    traces: bool = True,
) -> str:
    """Log one evaluation as one run and return its id; raises ``TrackingError``.

    ``on_run_id`` runs between opening and completing the run, so the caller can put the
    run id into the report files before they are uploaded. ``run_id`` names an open run to
    complete instead of creating one (the parent run of a sharded evaluation). ``traces``
    False leaves out the per-app traces (``--klaud-no-traces``).
    """
    with quiet_mlflow():
        import mlflow

        report["run"]["mlflow_version"] = mlflow.__version__  # known only now: it is imported
        tracker = MlflowTracker(uri, experiment)
        run_id = tracker.resume_run(run_id, report) if run_id else tracker.open_run(report)
        if on_run_id is not None:
            try:
                on_run_id(run_id)
            except BaseException:
                tracker.fail_run(run_id)
                raise
        tracker.complete_run(run_id, report, files, traces)
    return run_id


def logged_run(report: Mapping[str, Any], uri: str, experiment: str) -> str | None:
    """The id of the run MLflow already has for this report (see ``MlflowTracker.logged_run``);
    None for a report without ``evaluation_id`` (written before there was one)."""
    evaluation_id = str(report["run"].get("evaluation_id") or "")
    if not re.fullmatch(r"[\w-]+", evaluation_id):  # absent, or not ours: quoted in a filter
        return None
    with quiet_mlflow():
        return MlflowTracker(uri, experiment).logged_run(evaluation_id)


def open_parent_run(uri: str, experiment: str, mode: str, started_at: str) -> str:
    """A RUNNING run for a sharded evaluation: its shards log under it
    (``--klaud-parent-run``) and ``--klaud-merge`` completes it; returns its id."""
    with quiet_mlflow():
        tracker = MlflowTracker(uri, experiment)
        name = f"eval_{mode}_{started_at}"
        tags = {"mode": mode, "klaud_shards": "pending"}
        return tracker.create_run(name, tags, start_time=_ms(started_at))


@contextmanager
def quiet_mlflow() -> Iterator[None]:
    """MLflow's own chatter (store set-up logs, pandas warnings from log_table) is not the
    user's business: the plugin reports what happened in one line."""
    import mlflow  # noqa: F401  (it configures its loggers on import: do that first)

    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def sqlite_file(uri: str) -> Path | None:
    """The database file of a SQLite URI (``sqlite:////abs/x.db``, ``sqlite:///rel.db``)."""
    parts = urlsplit(uri)
    path = unquote(parts.path)[1:]
    if parts.scheme != "sqlite" or path in ("", ":memory:"):
        return None
    return Path(path)


def store_lock(uri: str) -> AbstractContextManager[None]:
    db = sqlite_file(uri)
    return nullcontext() if db is None else _flock(Path(f"{db}.lock"))


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        yield


def _key(name: str) -> str:
    """An MLflow metric key: letters, digits, ``_ - . / :`` and space, at most 250 chars."""
    return _BAD_KEY_CHARS.sub("_", name)[:250]


def _ms(timestamp: str) -> int:
    moment = datetime.fromisoformat(timestamp)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def display_uri(uri: str) -> str:
    """The URI without credentials (``user:password@``), for messages."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri  # geturl() would also drop the extra slashes of sqlite:////abs/path
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def error_reason(exc: BaseException) -> str:
    """A short cause: "connection refused", "timed out", or the first 200 characters."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = _CREDENTIALS.sub("//", " ".join(str(exc).split()))
    if match := _ERRNO.search(text):
        return match.group(1).strip().lower()
    if "timed out" in text.lower():
        return "timed out"
    return text[:200] or type(exc).__name__
