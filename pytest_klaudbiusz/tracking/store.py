"""Where evaluations are tracked: the MLflow tracking URI and experiment, resolved,
checked and prepared once for every caller (a session, a merge, a gate's baseline,
``--klaud-compare``, ``--klaud-upload`` and the API). Pure: mlflow is not imported;
the preflight checks fail in seconds on a store that cannot work."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, quote, urlsplit

from pytest_klaudbiusz.tracking.runs import TrackingError, display_uri, error_reason, sqlite_file

DEFAULT_EXPERIMENT = "/Shared/klaudbiusz-evaluations"


#: Set with ``setdefault`` before MLflow is imported, so the user's values win. Measured
#: here: a request to a closed port fails after ~2.5 s, to a server that accepts but never
#: answers after ~33 s (3 tries of 10 s), instead of ~250 s and ~20 min with MLflow's
#: defaults; ``log_report`` then spends as long again trying to mark the run FAILED.
#: Telemetry would fetch a config from the internet on first use, and the plugin prints
#: its own "View run" line.
MLFLOW_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


CONNECT_TIMEOUT_SEC = 2.0  # a tracking server must accept TCP connections within this
DATABRICKS_TIMEOUT_SEC = 5.0  # a Databricks host must answer HTTP within this


#: SQLAlchemy store schemes MLflow accepts (a driver may follow: ``postgresql+psycopg2``).
SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def resolve_tracking_uri(option: str | None, environ: Mapping[str, str], rootdir: Path) -> str:
    if option:
        return option
    if environ.get("MLFLOW_TRACKING_URI"):
        return environ["MLFLOW_TRACKING_URI"]
    if environ.get("DATABRICKS_HOST") and environ.get("DATABRICKS_TOKEN"):
        return "databricks"
    # SQLAlchemy percent-decodes the path, so encode it (spaces, "%", "?" in folder names).
    return f"sqlite:///{quote(str((rootdir / 'mlflow.db').resolve()))}"


def resolve_experiment(option: str | None, environ: Mapping[str, str]) -> str:
    return option or environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT


def configure_mlflow_environment(environ: MutableMapping[str, str]) -> None:
    for name, value in MLFLOW_ENV_DEFAULTS.items():
        environ.setdefault(name, value)


def check_tracking_uri(uri: str, environ: Mapping[str, str]) -> None:
    """Fail in seconds, before MLflow is imported, on URIs that cannot work."""
    parts = urlsplit(uri)
    scheme = "databricks" if uri == "databricks" else parts.scheme.partition("+")[0].lower()
    if scheme in ("http", "https"):
        _check_server(parts)
    elif scheme == "databricks":
        host = environ.get("DATABRICKS_HOST")
        if uri == "databricks" and not (host and environ.get("DATABRICKS_TOKEN")):
            raise TrackingError(
                "tracking URI is 'databricks' but DATABRICKS_HOST and DATABRICKS_TOKEN are not"
                " both set: set them (environment or .env), or pass --klaud-no-tracking"
            )
        if host:
            _check_databricks_host(host)
    elif scheme in ("", "file"):
        if environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("true", "1"):
            raise TrackingError(
                f"tracking URI {uri!r} names MLflow's retired file store: use"
                " sqlite:///<path>/mlflow.db, or set MLFLOW_ALLOW_FILE_STORE=true"
            )
    elif scheme == "sqlite":
        db = sqlite_file(uri)
        if db is not None and not db.parent.is_dir():
            raise TrackingError(
                f"folder {str(db.parent)!r} of the tracking database does not exist:"
                " create it or fix --klaud-tracking-uri / MLFLOW_TRACKING_URI"
            )
    elif scheme not in SQL_SCHEMES:
        raise TrackingError(
            f"unsupported MLflow tracking URI {display_uri(uri)!r}: use sqlite:///<path>/mlflow.db,"
            " http(s)://<server>, databricks, or a postgresql/mysql/mssql URL"
        )


def _check_server(parts: SplitResult) -> None:
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        socket.create_connection((parts.hostname or "", port), CONNECT_TIMEOUT_SEC).close()
    except (OSError, ValueError) as exc:
        raise TrackingError(
            f"MLflow tracking server {display_uri(parts.geturl())} is unreachable"
            f" ({error_reason(exc)}):"
            " start it, fix --klaud-tracking-uri / MLFLOW_TRACKING_URI, or pass --klaud-no-tracking"
        ) from None


def _check_databricks_host(host: str) -> None:
    """Any HTTP answer will do; without one the Databricks SDK would retry for minutes."""
    from urllib.error import HTTPError
    from urllib.request import Request, urlopen

    url = host if "://" in host else f"https://{host}"
    try:
        urlopen(Request(url, method="HEAD"), timeout=DATABRICKS_TIMEOUT_SEC).close()
    except HTTPError:
        pass
    except (OSError, ValueError) as exc:
        raise TrackingError(
            f"Databricks host {url} does not answer ({error_reason(exc)}):"
            " check DATABRICKS_HOST and"
            " your network, or pass --klaud-no-tracking"
        ) from None


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
