"""Registered generators: the generator that produced the apps, as an MLflow model.

``--klaud-register NAME`` records the generator (mode, ``model_version`` and, with
``--klaud-generation-config FILE``, its generation config) as an MLflow 3 logged model of the
evaluation's run, with the evaluation's metrics linked to it (metrics carrying its model id
and the app corpus as their dataset), and registers it as a new version of NAME. The alias
``champion`` moves to the new version only when the quality gate passed and its
``overall_quality_score`` beats the champion's on the same apps (same dataset digest).
A store without logged models gets a plain registered version of the run.

``decide_champion`` is pure; ``register_generator`` talks to MLflow (imported lazily).
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest
    from mlflow.tracking import MlflowClient

CHAMPION = "champion"
SCORE = "overall_quality_score"
MODEL_TYPE = "app-generator"


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("klaudbiusz-registry", "klaudbiusz registered generators")
    group.addoption(
        "--klaud-register",
        metavar="NAME",
        default=None,
        help="register the generator of the evaluated apps as a version of MLflow model NAME;"
        " alias 'champion' moves to it when the gate passes and it scores best"
        " (ini: klaud_register)",
    )
    group.addoption(
        "--klaud-generation-config",
        metavar="FILE",
        default=None,
        help="the generator's configuration file, stored with the registered model"
        " (ini: klaud_generation_config)",
    )
    parser.addini("klaud_register", "MLflow model name to register the generator under")
    parser.addini("klaud_generation_config", "the generator's configuration file")


@dataclass(frozen=True)
class RegisterRequest:
    name: str
    config_file: Path | None


def register_request(config: pytest.Config) -> RegisterRequest | None:
    """What ``--klaud-register`` asks for, checked; ``pytest.UsageError`` on a bad file."""
    import pytest

    from pytest_klaudbiusz.options import OptionReader

    read = OptionReader(config)
    name = read.value("klaud_register")
    path = read.path("klaud_generation_config")
    if path is not None and not path.is_file():
        raise pytest.UsageError(f"--klaud-generation-config {path}: no such file")
    if not name:
        if path is not None:
            raise pytest.UsageError("--klaud-generation-config needs --klaud-register NAME")
        return None
    if not str(name).strip() or "/" in str(name) or len(str(name)) > 256:
        raise pytest.UsageError(
            f"--klaud-register {name!r}: a model name is 1-256 characters without '/'"
        )
    return RegisterRequest(str(name).strip(), path)


@dataclass(frozen=True)
class Champion:
    version: str
    score: float | None
    digest: str | None


def decide_champion(
    gate_passed: bool, score: float | None, digest: str | None, champion: Champion | None
) -> tuple[bool, str]:
    """Whether the new version becomes champion, and why (for the terminal)."""
    if champion is None:
        if not gate_passed:
            return False, "no champion yet: the quality gate did not pass"
        return True, "it is the first champion"
    held = f"champion stays version {champion.version}"
    if not gate_passed:
        return False, f"{held}: the quality gate did not pass"
    if score is None:
        return False, f"{held}: this evaluation has no {SCORE}"
    if champion.digest != digest:
        return False, f"{held}: it was evaluated on other apps (dataset digest differs)"
    if champion.score is not None and score <= champion.score:
        return False, f"{held}: {100 * score:.1f}% vs {100 * champion.score:.1f}%"
    was = "n/a" if champion.score is None else f"{100 * champion.score:.1f}%"
    return (
        True,
        f"champion moves to it from version {champion.version}: {100 * score:.1f}% vs {was}",
    )


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _champion(client: MlflowClient, name: str) -> Champion | None:
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    tags = version.tags or {}
    return Champion(str(version.version), _float(tags.get(SCORE)), tags.get("dataset_digest"))


def _logged_model(
    client: MlflowClient,
    run_id: str,
    report: Mapping[str, Any],
    request: RegisterRequest,
    tags: dict[str, str],
) -> tuple[str, str] | None:
    """A logged model of the run holding the generator, the evaluation's metrics linked to
    it: its id and artifact location; None when the store has no logged models."""
    from mlflow.entities import LoggedModelStatus, Metric
    from mlflow.exceptions import MlflowException

    from pytest_klaudbiusz.tracking.runs import _ms, summary_metrics

    run = report["run"]
    experiment_id = client.get_run(run_id).info.experiment_id
    params = {"mode": str(run["mode"]), "model_version": str(run.get("model_version"))}
    try:
        model = client.create_logged_model(
            experiment_id,
            name=request.name,
            source_run_id=run_id,
            tags=tags,
            params=params,
            model_type=MODEL_TYPE,
        )
    except MlflowException as exc:
        if exc.error_code in ("ENDPOINT_NOT_FOUND", "NOT_IMPLEMENTED", "FEATURE_DISABLED"):
            return None
        raise
    except NotImplementedError:
        return None
    if request.config_file is not None:
        with tempfile.TemporaryDirectory(prefix="klaud-generator-") as tmp:
            shutil.copy2(request.config_file, Path(tmp, request.config_file.name))
            client.log_model_artifacts(model.model_id, tmp)
    dataset = run.get("dataset") or {}
    digest = dataset.get("digest")
    linked = [
        Metric(
            m.key,
            m.value,
            m.timestamp,
            0,
            model_id=model.model_id,
            dataset_name=str(dataset.get("name") or "apps") if digest else None,
            dataset_digest=str(digest) if digest else None,
        )
        for m in summary_metrics(report["summary"], _ms(run["finished_at"]))
    ]
    client.log_batch(run_id, metrics=linked)
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    return str(model.model_id), str(model.artifact_location)


def register_generator(
    uri: str, run_id: str, report: Mapping[str, Any], request: RegisterRequest
) -> str:
    """Register the evaluation's generator; return the line the terminal shows. Raises
    ``TrackingError``."""
    from mlflow.exceptions import MlflowException

    from pytest_klaudbiusz.tracking.runs import MlflowTracker, quiet_mlflow

    run = report["run"]
    score = _float(report["summary"].get(SCORE))
    digest = (run.get("dataset") or {}).get("digest")
    gate_passed = (report.get("gate") or {}).get("verdict") == "passed"
    tags = {
        "mode": str(run["mode"]),
        "model_version": str(run.get("model_version")),
        "evaluation_id": str(run.get("evaluation_id")),
        "gate_verdict": str((report.get("gate") or {}).get("verdict", "none")),
        SCORE: "" if score is None else repr(score),
        "dataset_digest": str(digest or ""),
    }
    with quiet_mlflow():
        tracker = MlflowTracker(uri, str(run.get("experiment") or ""))
        client = tracker.client
        with tracker._wrap(f"registering the generator as {request.name}"):
            logged = _logged_model(client, run_id, report, request, tags)
            try:
                client.create_registered_model(request.name)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            champion = _champion(client, request.name)
            # the artifact location, not models:/<id>: that would be looked up through
            # MLflow's global tracking URI rather than this client's
            model_id, source = logged or (None, f"runs:/{run_id}/generator")
            if model_id:  # not every store keeps the version's model_id: a tag finds it
                tags["logged_model_id"] = model_id
            version = client.create_model_version(
                request.name, source, run_id=run_id, tags=tags, model_id=model_id
            )
            moves, why = decide_champion(gate_passed, score, digest, champion)
            if moves:
                client.set_registered_model_alias(request.name, CHAMPION, str(version.version))
    return f"registered {request.name} version {version.version}; {why}"
