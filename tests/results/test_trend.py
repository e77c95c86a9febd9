"""The trend chart (results/trend.py) stays readable with one run and with rates that
lie on top of each other: every rate that has a value can be seen."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from pytest_klaudbiusz.results.metrics import RATES
from pytest_klaudbiusz.results.trend import trend_figure, write_trend_png


def trend(values: list[dict[str, float | None]]) -> dict[str, Any]:
    runs = [
        {"run_id": f"r{i}", "run_name": f"run {i}", "started_at": f"2026-11-2{i}T06:00:00Z",
         "values": v}
        for i, v in enumerate(values, 1)
    ]  # fmt: skip
    return {"mode": "mcp", "metrics": list(RATES.values()), "runs": runs}


def pixels_of_each_line(figure: Any) -> list[int]:
    """How many pixels of the plot show each line's own colour (the legend taken away)."""
    axes = figure.axes[0]
    if axes.get_legend() is not None:
        axes.get_legend().remove()
    figure.canvas.draw()
    rgba = bytes(figure.canvas.buffer_rgba())
    shown = Counter(
        f"#{rgba[i]:02X}{rgba[i + 1]:02X}{rgba[i + 2]:02X}" for i in range(0, len(rgba), 4)
    )
    return [shown[str(line.get_color()).upper()] for line in axes.get_lines()]


def test_overlapping_rates_each_stay_visible() -> None:
    same = dict.fromkeys(RATES.values(), 1.0)  # every rate 100% in every run
    figure = trend_figure(trend([same, same, same]))
    lines = figure.axes[0].get_lines()
    assert len(lines) == len(RATES)
    assert len({line.get_marker() for line in lines}) == len(lines)
    assert min(pixels_of_each_line(figure)) >= 5  # none hidden under another


def test_one_run_is_drawn_as_marks_for_the_rates_it_has(tmp_path: Path) -> None:
    one = {**dict.fromkeys(RATES.values(), 0.5), "type_safety_rate": None}
    figure = trend_figure(trend([one]))
    lines = figure.axes[0].get_lines()
    assert [line.get_label() for line in lines] == [
        rate.removesuffix("_rate") for rate in RATES.values() if rate != "type_safety_rate"
    ]
    assert all(line.get_marker() not in (None, "", "None") for line in lines)
    assert all(line.get_markersize() >= 5 for line in lines)
    assert min(pixels_of_each_line(figure)) >= 5  # none hidden under another
    png = write_trend_png(trend([one]), tmp_path / "trend.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
