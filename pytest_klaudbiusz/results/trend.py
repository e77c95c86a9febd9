"""The trend chart: one line per core rate over the last runs of a mode (a PNG).

Drawn from the plain-JSON trend data (``compare.trend_data``, also kept in the report's
``trend`` key, so the chart can be redrawn from the report). matplotlib is imported only
here and only when a chart is drawn; the Agg canvas is used directly, without pyplot, so
no GUI backend or global figure state is involved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Colour-blind-friendly colours (Okabe-Ito), one per rate.
_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")


def _label(started_at: str) -> str:
    """``2026-11-26T06:10:12Z`` -> ``11-26 06:10`` (what fits under a tick)."""
    return started_at[5:16].replace("T", " ") if len(started_at) >= 16 else started_at


#: One marker shape per rate, so that series lying on top of each other stay apart.
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def trend_figure(trend: Mapping[str, Any]) -> Figure:
    """The chart: one line per rate, each with its own colour, line style and hollow
    marker of its own shape and size (equal values show as nested outlines, none hidden
    by another); a single run shows as marks."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    runs = trend["runs"]
    xs = list(range(len(runs)))
    figure = Figure(figsize=(9, 4.8), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    series = list(zip(trend["metrics"], _COLOURS, _MARKERS, strict=False))
    for order, (metric, colour, marker) in enumerate(series):
        values = [run["values"].get(metric) for run in runs]
        if all(v is None for v in values):
            continue  # no run checked it (for example no app has types): no line
        ys = [math.nan if v is None else 100 * v for v in values]
        axes.plot(
            xs,
            ys,
            marker=marker,
            markersize=5 + 2.4 * (len(series) - 1 - order),  # nested outlines, none hidden
            markerfacecolor="none",
            markeredgewidth=1.5,
            linewidth=1.6,
            linestyle=("-", "--", ":", "-.")[order % 4],
            color=colour,
            label=metric.removesuffix("_rate"),
            zorder=2 + order,
        )
    axes.set_ylim(-5, 105)
    axes.set_ylabel("% of evaluated apps")
    which = f"the last {len(runs)} {trend['mode']} runs" if len(runs) > 1 else "one run"
    axes.set_title(
        f"klaudbiusz: rates of {which}" + ("" if len(runs) > 1 else f" ({trend['mode']})")
    )
    axes.grid(True, alpha=0.3)
    step = max(1, math.ceil(len(runs) / 12))
    axes.set_xticks(
        xs[::step],
        [_label(run["started_at"]) for run in runs][::step],
        rotation=30,
        ha="right",
        fontsize=8,
    )
    if len(runs) == 1:
        axes.set_xlim(-1, 1)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="lower left", fontsize=8, ncols=3, framealpha=0.85, markerscale=0.6)
    figure.tight_layout()
    return figure


def write_trend_png(trend: Mapping[str, Any], path: Path) -> Path:
    """Draw the chart to ``path``; raises ``OSError`` when it cannot be written."""
    figure = trend_figure(trend)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", metadata={"Software": None})
    return path
