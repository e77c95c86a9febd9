"""pytest-klaudbiusz: evaluate AI-generated apps as pytest cases, track them in MLflow.

``EvaluationTracker``, ``track_evaluation`` and ``TrackingError`` are imported on first
use (module ``__getattr__``), so importing the package or loading the plugin costs
nothing extra; none of them imports mlflow until it talks to MLflow.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["EvaluationTracker", "TrackingError", "__version__", "track_evaluation"]

_LAZY = {
    "EvaluationTracker": "tracking.api",
    "track_evaluation": "tracking.api",
    "TrackingError": "tracking.runs",
}

if TYPE_CHECKING:
    from pytest_klaudbiusz.tracking.api import EvaluationTracker, track_evaluation
    from pytest_klaudbiusz.tracking.runs import TrackingError


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
