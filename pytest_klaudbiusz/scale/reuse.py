"""Earlier results instead of new runs: the result cache and the last report.

``--klaud-cache`` keeps each evaluated app's result under a key hashing all it depends
on: every file the app's working copy gets (names and bytes; its manifest is one of
them), the stage timeouts, the variables the app is given from the environment and the
plugin version. An app whose key is in the cache is not run again. Infrastructure errors
are never cached: they say nothing about the app. What the key cannot see is the machine
(Node, npm, Python versions): after changing those, clear the cache.

``--klaud-rerun=infra`` keeps the last report's verdicts and evaluates only the apps
that have none there: infrastructure errors, apps that never ran, and new apps.

No pytest here: the plugin hands in the cache folder and the last report's path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from pytest_klaudbiusz import __version__
from pytest_klaudbiusz.apps.evaluation import EvalOptions, secret_values
from pytest_klaudbiusz.apps.plan import ManifestError
from pytest_klaudbiusz.apps.sandbox import BASE_VARIABLES, app_environment
from pytest_klaudbiusz.apps.templates import plan_app
from pytest_klaudbiusz.results.aggregate import apps_of
from pytest_klaudbiusz.results.dataset import file_hashes, framed
from pytest_klaudbiusz.results.files import load_report, write_atomic
from pytest_klaudbiusz.results.model import AppResult, AppStatus

FROM_CACHE = "cache"
FROM_REPORT = "report"
#: Bump when what a cached entry means changes without a plugin version change.
CACHE_FORMAT = 1


def app_variables(app_dir: Path, options: EvalOptions) -> list[tuple[str, str]]:
    """The variables the app gets from the evaluation's environment (Databricks settings,
    passthrough, its manifest's ``${NAME}`` references), sorted. Machine variables (PATH,
    HOME, locale, proxies) and the port are left out; so are secret values (a rotated token
    checks the same app), though their names count."""
    try:
        plan = plan_app(app_dir)
    except ManifestError:
        return []  # a broken manifest fails the app before anything runs
    env, _ = app_environment(
        options.environ, port=0, workdir=Path(), port_env=plan.port_env,
        manifest_env=plan.env, passthrough=options.env_passthrough,
    )  # fmt: skip
    machine = {*BASE_VARIABLES, "PORT", "DATABRICKS_APP_PORT", *plan.port_env}
    secrets = set(secret_values(env))
    return sorted((k, "" if v in secrets else v) for k, v in env.items() if k not in machine)


def result_key(app_dir: Path, options: EvalOptions) -> str:
    """Equal keys, equal results (up to timings and the machine): the app's files, the
    checks' configuration and the plugin version; not the app's folder name or place."""
    key = hashlib.sha256(framed(b"K", f"klaudbiusz-result-v{CACHE_FORMAT} {__version__}"))
    for stage, seconds in sorted(options.timeouts.items()):
        key.update(framed(b"T", f"{stage}={float(seconds)!r}"))
    for pattern in options.env_passthrough:
        key.update(framed(b"P", pattern))
    key.update(framed(b"U", str(options.ui)))
    key.update(framed(b"R", str(options.test_retries)))  # a flaky suite passes only with one
    isolation = options.isolation  # an app may pass unsandboxed and fail sandboxed
    key.update(framed(b"S", f"{isolation.sandbox} {isolation.limits}"))
    for name, value in app_variables(app_dir, options):
        key.update(framed(b"E", name) + framed(b"=", value))
    for relative, content, _ in file_hashes(app_dir, generated_only=False):
        key.update(framed(b"F", relative) + content)
    return key.hexdigest()


class ResultCache:
    """One JSON file per key. Writes are atomic (xdist workers share the folder); a file
    that cannot be read or written is a miss, never a failure: the app is simply run."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def load(self, key: str) -> AppResult | None:
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
            if entry["format"] != CACHE_FORMAT:
                return None
            return AppResult.from_dict(entry["result"])
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def store(self, key: str, result: AppResult) -> None:
        entry = {"format": CACHE_FORMAT, "result": result.to_dict()}
        with suppress(OSError):  # not cached: evaluated again next time
            write_atomic(self._path(key), json.dumps(entry, ensure_ascii=False))

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)


def last_verdicts(report_path: Path) -> dict[str, AppResult]:
    """The last report's results that judge their app, by app name (infrastructure errors
    and apps that never ran judge nothing); ``ValueError`` with one line if unreadable."""
    if not report_path.is_file():
        raise ValueError(
            f"no last report at {report_path}: run the evaluation first, or pass the "
            "--klaud-report-dir it wrote to"
        )
    report = load_report(report_path)
    try:
        results = apps_of(report)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ValueError(f"{report_path}: not an evaluation report (malformed apps)") from None
    return {r.app_name: r for r in results if r.status is AppStatus.EVALUATED}


def _reused(result: AppResult, app_dir: Path, source: str) -> AppResult:
    """An earlier result as this run's: this folder's name and place; the suite records
    its custom metrics again."""
    return dataclasses.replace(
        result, app_name=app_dir.name, app_dir=str(app_dir), custom_metrics={}, reused_from=source
    )


@dataclass(frozen=True)
class ResultReuse:
    cache: ResultCache | None = None
    verdicts: Mapping[str, AppResult] | None = None  # --klaud-rerun: the last report's
    last_report: Path | None = None

    def result(
        self, app_dir: Path, options: EvalOptions, evaluate: Callable[[Path], AppResult]
    ) -> AppResult:
        """The app's earlier result if there is one, else ``evaluate(app_dir)`` (cached)."""
        if self.verdicts is not None and app_dir.name in self.verdicts:
            return _reused(self.verdicts[app_dir.name], app_dir, FROM_REPORT)
        if self.cache is None:
            return evaluate(app_dir)
        key = result_key(app_dir, options)
        cached = self.cache.load(key)
        if cached is not None:
            return _reused(cached, app_dir, FROM_CACHE)
        result = evaluate(app_dir)
        if result.status is AppStatus.EVALUATED:
            self.cache.store(key, result)
        return result

    def rerun_summary(self, app_names: Iterable[str]) -> str:
        """One line: what ``--klaud-rerun`` evaluates again and what it reuses."""
        verdicts = self.verdicts or {}
        names = list(app_names)
        rerun = [n for n in names if n not in verdicts]
        reused = len(names) - len(rerun)
        if not rerun:
            return (
                f"klaudbiusz rerun: no infrastructure errors in {self.last_report}: "
                f"nothing rerun, {reused} results reused"
            )
        shown = ", ".join(rerun[:5]) + (f" and {len(rerun) - 5} more" if len(rerun) > 5 else "")
        return (
            f"klaudbiusz rerun: evaluating {len(rerun)} apps without a verdict in "
            f"{self.last_report} (infrastructure error, not run or new): {shown}; "
            f"{reused} results reused"
        )
