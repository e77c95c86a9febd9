"""The order apps run in: longest first, from the durations of the previous report.

With parallel workers the wall time is at best max(longest app, total work / workers);
starting the longest apps first gets close to it (a long app started last leaves the
other workers idle while it runs). An app's duration is the sum of its stages' times
in the previous ``evaluation_report.json``.

Apps without a previous duration (new apps, or apps whose last evaluation did not
finish) go first: their duration is unknown and may be the longest, and a long app
started last costs up to its whole duration in wall time, while a short app started
first costs next to nothing.

Standard library only: no pytest, no xdist.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

LONGEST_FIRST = "longest-first"
COLLECTED = "collected"
ORDERS = (LONGEST_FIRST, COLLECTED)

T = TypeVar("T")


class OrderError(ValueError):
    """A bad order setting; the message is one line saying what to use."""


def parse_order(value: str | None) -> str:
    """``--klaud-order`` / ``klaud_order``; longest first unless told otherwise."""
    order = (value or LONGEST_FIRST).strip()
    if order not in ORDERS:
        raise OrderError(f"invalid --klaud-order {value!r}: use {' or '.join(ORDERS)}")
    return order


def app_durations(report: Any) -> dict[str, float]:
    """Seconds per app name from a parsed report; ``ValueError`` with a one-line reason
    when it is not one. Apps whose evaluation did not finish have no duration."""
    if not isinstance(report, dict) or not isinstance(report.get("apps"), list):
        raise ValueError("not an evaluation report (no list of apps)")
    durations = {}
    for entry in report["apps"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("app_name"), str):
            raise ValueError("an app entry has no app_name")
        name, stages = entry["app_name"], entry.get("stages")
        if not isinstance(stages, list) or not all(
            isinstance(s, dict) and _seconds(s.get("duration_sec")) for s in stages
        ):
            raise ValueError(f"app {name!r}: stages without a duration_sec")
        if entry.get("status", "evaluated") == "evaluated" and stages:
            durations[name] = math.fsum(s["duration_sec"] for s in stages)
    return durations


def _seconds(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def load_durations(path: Path) -> dict[str, float] | None:
    """The durations in the report at ``path``; ``None`` when there is none yet,
    ``ValueError`` with a one-line reason when it cannot be used."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read ({exc})") from None
    try:
        return app_durations(json.loads(text))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def longest_first(
    items: Sequence[T], app_of: Callable[[T], str | None], durations: Mapping[str, float]
) -> list[T]:
    """``items`` with the apps' cases longest first, new apps before them; ties by app name,
    then in their given order. Items that are no app (``app_of`` is ``None``) keep their
    places: only the apps' cases trade places among the places they held.

    Deterministic for a given list, so every xdist worker computes the same order."""
    apps = [(i, name) for i, item in enumerate(items) if (name := app_of(item)) is not None]

    def key(entry: tuple[int, str]) -> tuple[bool, float, str, int]:
        index, name = entry
        seconds = durations.get(name)
        return (seconds is not None, -(seconds or 0.0), name, index)

    ordered = list(items)
    for (place, _), (index, _) in zip(apps, sorted(apps, key=key), strict=True):
        ordered[place] = items[index]
    return ordered
