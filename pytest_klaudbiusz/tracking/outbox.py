"""Evaluations not yet in MLflow, kept on disk until they are sent.

The controller puts every tracked evaluation here *before* sending it and takes it out once
MLflow has the whole run (the outbox pattern): a tracking server that is down, slow or
refuses the credentials, or a process killed mid-send, leaves the entry behind and nothing
is lost. ``pytest --klaud-upload`` or the next tracked run sends it later. Each report
carries an ``evaluation_id`` its run is tagged with, so the sender can tell a run MLflow
already has in full (not sent again) from a partial one (replaced).

An entry is a folder named by the evaluation id holding the report files and
``outbox.json`` (where the run was to go, and why it is still here). Only the tracking
URI's display form is stored: credentials stay in the environment.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from pytest_klaudbiusz.results.report import FILE_NAMES, EvaluationReport, utc_timestamp

ENTRY_FILE = "outbox.json"


@dataclass(frozen=True)
class OutboxEntry:
    folder: Path
    target: str  # display form of the tracking URI the run was meant for
    experiment: str
    run_name: str
    saved_at: str
    error: str | None

    @property
    def report_path(self) -> Path:
        return self.folder / FILE_NAMES["json"]


class Outbox:
    def __init__(self, root: Path) -> None:
        self.root = root

    def put(
        self, report: EvaluationReport, files: Iterable[Path], target: str, experiment: str
    ) -> OutboxEntry:
        """Keep a copy of the evaluation's files until ``remove``; raises ``OSError``."""
        run = report["run"]
        folder = self.root / str(run["evaluation_id"])
        staging = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for path in files:
            if path.is_dir():  # the screenshots folder
                shutil.copytree(path, staging / path.name)
            else:
                shutil.copy2(path, staging / path.name)
        entry = {
            "target": target,
            "experiment": experiment,
            "run_name": f"eval_{run['mode']}_{run['started_at']}",
            "saved_at": utc_timestamp(),
            "error": None,
        }
        (staging / ENTRY_FILE).write_text(json.dumps(entry, indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)  # an entry is whole or absent
        return self._entry(folder)

    def note_error(self, entry: OutboxEntry, error: str) -> None:
        """Best effort: why the entry is still here (the entry itself is what matters)."""
        path = entry.folder / ENTRY_FILE
        with suppress(OSError, ValueError):
            data = json.loads(path.read_text(encoding="utf-8"))
            data["error"] = error
            path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    def remove(self, entry: OutboxEntry) -> None:
        shutil.rmtree(entry.folder, ignore_errors=True)

    def entries(self) -> list[OutboxEntry]:
        """The waiting evaluations, oldest first; unreadable folders are skipped."""
        if not self.root.is_dir():
            return []
        found = []
        for folder in self.root.iterdir():
            if folder.is_dir() and not folder.name.endswith(".tmp"):
                try:
                    found.append(self._entry(folder))
                except (OSError, ValueError, KeyError):
                    continue
        return sorted(found, key=lambda e: (e.saved_at, e.folder.name))

    @staticmethod
    def _entry(folder: Path) -> OutboxEntry:
        data = json.loads((folder / ENTRY_FILE).read_text(encoding="utf-8"))
        if not (folder / FILE_NAMES["json"]).is_file():
            raise ValueError(f"{folder} holds no report")
        return OutboxEntry(
            folder=folder,
            target=str(data["target"]),
            experiment=str(data["experiment"]),
            run_name=str(data["run_name"]),
            saved_at=str(data["saved_at"]),
            error=data.get("error"),
        )


@dataclass(frozen=True)
class Delivery:
    entry: OutboxEntry
    run_id: str | None = None
    already_sent: bool = False  # MLflow had the run in full: nothing was sent
    error: str | None = None  # not sent: the entry stays


def send_waiting(
    outbox: Outbox, uri: str, traces: bool = True
) -> tuple[list[Delivery], list[OutboxEntry]]:
    """Send each waiting evaluation meant for ``uri`` as one run with its own times (and
    its app traces, unless ``traces`` is False); return what became of them, and the
    entries meant for other tracking targets."""
    from pytest_klaudbiusz.tracking import runs as tracking

    target = tracking.display_uri(uri)
    deliveries, elsewhere = [], []
    for entry in outbox.entries():
        if entry.target != target:
            elsewhere.append(entry)
            continue
        try:
            delivery = _send(entry, uri, traces)
        except (tracking.TrackingError, ValueError, OSError) as exc:  # a damaged report, disk
            error = str(exc) if not isinstance(exc, OSError) else f"{exc.strerror or exc}"
            outbox.note_error(entry, error)
            deliveries.append(Delivery(entry, error=error))
            continue
        outbox.remove(entry)
        deliveries.append(delivery)
    return deliveries, elsewhere


def _send(entry: OutboxEntry, uri: str, traces: bool) -> Delivery:
    from pytest_klaudbiusz.results.files import load_report
    from pytest_klaudbiusz.tracking import runs as tracking
    from pytest_klaudbiusz.tracking.api import EvaluationTracker

    report = load_report(entry.report_path)
    existing = tracking.logged_run(report, uri, entry.experiment)
    if existing:
        return Delivery(entry, existing, already_sent=True)
    run_id = EvaluationTracker(entry.experiment, uri).log_report(entry.report_path, traces=traces)
    return Delivery(entry, run_id)


def describe(deliveries: Iterable[Delivery], elsewhere: Iterable[OutboxEntry]) -> list[str]:
    """One line per waiting evaluation, for the terminal."""
    lines = []
    for d in deliveries:
        name = f"{d.entry.run_name} (kept since {d.entry.saved_at})"
        if d.error:
            lines.append(f"outbox: could not send {name}: {d.error} -- it stays in the outbox")
        elif d.already_sent:
            lines.append(f"outbox: {name} was already in MLflow as run {d.run_id}: not sent again")
        else:
            lines.append(f"outbox: sent {name} as MLflow run {d.run_id}")
    other = list(elsewhere)
    if other:
        targets = ", ".join(sorted({e.target for e in other}))
        lines.append(
            f"outbox: {len(other)} evaluation(s) wait for another tracking target ({targets}):"
            " send them with pytest --klaud-upload --klaud-tracking-uri URI"
        )
    return lines
