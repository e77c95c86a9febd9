"""Where evaluations are tracked: the MLflow tracking URI and experiment, resolved,
checked and prepared once for every caller (a session, a merge, a gate's baseline,
``--klaud-compare``, ``--klaud-upload`` and the API). Pure: mlflow is not imported."""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

from pytest_klaudbiusz.tracking.runs import (
    check_tracking_uri,
    configure_mlflow_environment,
    display_uri,
    resolve_experiment,
    resolve_tracking_uri,
)


@dataclass(frozen=True)
class TrackingStore:
    uri: str
    experiment: str

    @property
    def shown(self) -> str:
        """The URI without credentials, for what is printed."""
        return display_uri(self.uri)


def tracking_store(
    uri: str | None,
    experiment: str | None,
    home: Path,
    *,
    preflight: bool = True,
    environ: MutableMapping[str, str] = os.environ,
) -> TrackingStore:
    """The store of ``uri`` (else the environment's, else ``home/mlflow.db``) and the
    experiment; ``preflight`` fails in seconds (``TrackingError``) on a store that cannot
    work. MLflow's timeouts are set for whatever imports it next."""
    resolved = resolve_tracking_uri(uri, environ, home)
    if preflight:
        check_tracking_uri(resolved, environ)
    configure_mlflow_environment(environ)
    return TrackingStore(resolved, resolve_experiment(experiment, environ))
