"""Screenshots of the apps' pages, written by the controller into the report folder.

Workers take the screenshot (``apps/ui.py``) but only the controller writes reports, and
a result must stay plain JSON to cross from an xdist worker: the PNG travels base64-encoded
in ``details[SCREENSHOT_DATA]``. ``store_screenshots`` writes it to
``<report dir>/screenshots/<app>.png``, links it as ``details[SCREENSHOT_LINK]`` and drops
the base64 from the result, so the JSON report stays small. The folder's size is bounded
(``MAX_TOTAL_BYTES``, the apps needing attention kept first); the apps left out say why.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import shutil
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from pytest_klaudbiusz.results.model import AppResult, AppStatus
from pytest_klaudbiusz.results.report import EvaluationReport

FOLDER = "screenshots"
SCREENSHOT_DATA = "screenshot_png_base64"  # the PNG on its way to the controller
SCREENSHOT_LINK = "screenshot"  # "screenshots/<app>.png", relative to the report
LEFT_OUT = "screenshot_left_out"  # why an app's screenshot is not in the folder
MAX_TOTAL_BYTES = 25 * 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_name(app_name: str) -> str:
    """A file name for the app's screenshot: its name when that is plain ASCII, else a
    readable ASCII form plus a hash of the real name (two apps never share a file)."""
    ascii_form = unicodedata.normalize("NFKD", app_name).encode("ascii", "ignore").decode()
    safe = _UNSAFE.sub("_", ascii_form).strip("._-")[:80]
    if safe != app_name or not safe:
        digest = hashlib.sha256(app_name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        safe = f"{safe}-{digest}" if safe else digest
    return f"{safe}.png"


def needs_attention(app: AppResult) -> bool:
    return app.status is not AppStatus.EVALUATED or bool(app.failed_checks())


def attention_first(apps: list[AppResult]) -> list[AppResult]:
    return sorted(apps, key=lambda a: (not needs_attention(a), a.app_name))


def store_screenshots(
    apps: list[AppResult], report_dir: Path, max_bytes: int = MAX_TOTAL_BYTES
) -> None:
    """Write the apps' screenshots into ``report_dir/screenshots`` and link them; remove the
    files of earlier runs that no app links any more. Never raises: a screenshot that
    cannot be written is noted in its app's details (``LEFT_OUT``)."""
    folder = report_dir / FOLDER
    kept: set[str] = set()
    total = 0
    for app in attention_first(apps):
        data = app.details.pop(SCREENSHOT_DATA, None)
        if data is None:  # an earlier result (the last report): keep its file if it is there
            link = app.details.get(SCREENSHOT_LINK)
            earlier = report_dir / str(link) if link else None
            if earlier is not None and earlier.parent == folder and earlier.is_file():
                kept.add(earlier.name)
                total += earlier.stat().st_size
            else:
                app.details.pop(SCREENSHOT_LINK, None)
            continue
        try:
            png = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError, TypeError):
            app.details[LEFT_OUT] = "not a valid screenshot"
            continue
        if total + len(png) > max_bytes:
            app.details[LEFT_OUT] = f"over the {max_bytes // (1024 * 1024)} MB screenshot cap"
            continue
        name = file_name(app.app_name)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _write_atomic(folder / name, png)
        except OSError as exc:
            app.details[LEFT_OUT] = f"not written: {exc.strerror or exc}"
            continue
        kept.add(name)
        total += len(png)
        app.details[SCREENSHOT_LINK] = f"{FOLDER}/{name}"
    if folder.is_dir():
        for stale in folder.glob("*.png"):
            if stale.name not in kept:
                stale.unlink(missing_ok=True)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def screenshot_folder(report_dir: Path) -> list[Path]:
    """The screenshots folder as an artifact to log, when it holds any."""
    folder = report_dir / FOLDER
    return [folder] if folder.is_dir() and any(folder.glob("*.png")) else []


def gather_screenshots(
    report: EvaluationReport, shards: Sequence[tuple[str, EvaluationReport]], report_dir: Path
) -> None:
    """A merge of shard reports: copy each app's screenshot from its shard's folder into
    ``report_dir/screenshots``; a link whose file cannot be found or copied is dropped."""
    sources = {}
    for path, shard in shards:
        for app in shard["apps"]:
            link = (app.get("details") or {}).get(SCREENSHOT_LINK)
            source = Path(path).parent / str(link) if link else None
            if source is not None and source.parent.name == FOLDER and source.is_file():
                sources[app["app_name"]] = source
    for app in report["apps"]:
        details = app.get("details") or {}
        source = sources.get(app["app_name"])
        if details.get(SCREENSHOT_LINK) is None:
            continue
        try:
            if source is None:
                raise FileNotFoundError
            (report_dir / FOLDER).mkdir(parents=True, exist_ok=True)
            if source.resolve() != (report_dir / FOLDER / source.name).resolve():
                shutil.copyfile(source, report_dir / FOLDER / source.name)
            details[SCREENSHOT_LINK] = f"{FOLDER}/{source.name}"
        except OSError:
            del details[SCREENSHOT_LINK]
