"""The Streamlit script of ``pytest --klaud-dashboard``: lays out what ``data`` shapes.

Reads the store named by ``KLAUD_DASHBOARD_URI`` / ``KLAUD_DASHBOARD_EXPERIMENT`` (set by
the launcher) through ``tracking.history``, the reader of ``--klaud-compare``. Run lists are
read in pages and cached for a minute; a run's report and screenshots never change, so they
are cached for good. Text that comes from apps (names, reasons) goes only into tables and
captions, never into Markdown.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from pytest_klaudbiusz.ci import ab
from pytest_klaudbiusz.ci.compare import RunRecord
from pytest_klaudbiusz.dashboard import data
from pytest_klaudbiusz.results.report import EvaluationReport
from pytest_klaudbiusz.tracking.history import History, HistoryError
from pytest_klaudbiusz.tracking.runs import display_uri

PAGE = 500  # runs per search request
URI = os.environ.get("KLAUD_DASHBOARD_URI", "")
EXPERIMENT = os.environ.get("KLAUD_DASHBOARD_EXPERIMENT", "")
ALL_MODES = "all modes"


@st.cache_resource(show_spinner=False)
def history(uri: str, experiment: str) -> History:
    return History(uri, experiment)


@st.cache_data(ttl=60, show_spinner="reading runs")
def runs(uri: str, experiment: str, limit: int, mode: str | None) -> list[RunRecord]:
    found: list[RunRecord] = []
    token = None
    while len(found) < limit:
        page, token = history(uri, experiment).page(
            min(PAGE, limit - len(found)), mode, None, token
        )
        found += page
        if token is None:
            break
    return found


@st.cache_data(show_spinner="reading a report", max_entries=200)
def report(uri: str, experiment: str, run_id: str) -> EvaluationReport | None:
    return history(uri, experiment).report(run_id)


@st.cache_data(show_spinner=False, max_entries=50)
def screenshots(uri: str, experiment: str, run_id: str) -> tuple[str, list[str]]:
    into = Path(tempfile.gettempdir(), "klaud-dashboard", run_id)
    files = history(uri, experiment).artifacts(run_id, "screenshots", into)
    return str(into / "screenshots"), [str(f) for f in files]


def trends(rows: list[dict[str, Any]]) -> None:
    frame = pd.DataFrame(rows)
    frame["started_at"] = pd.to_datetime(frame["started_at"])
    x = alt.X("started_at:T", title="started (UTC)", axis=alt.Axis(format="%b %d %H:%M"))
    base = alt.Chart(frame).encode(x=x, color="mode:N")
    for metric, title, fmt in (
        (data.QUALITY, "quality score", ".0%"),
        (data.COST_PER_APP, "cost per app (USD)", "$.2f"),
    ):
        if frame[metric].notna().any():
            y = alt.Y(f"{metric}:Q", title=title, axis=alt.Axis(format=fmt))
            failed = alt.datum.gate == "failed"
            points = base.mark_point(filled=True, size=70).encode(
                y=y,
                shape=alt.Shape("gate:N", title="gate"),
                stroke=alt.condition(failed, alt.value("red"), alt.value(None)),
                strokeWidth=alt.condition(failed, alt.value(2), alt.value(0)),
                tooltip=["run", "gate", metric],
            )
            st.altair_chart(base.mark_line().encode(y=y) + points, width="stretch")
        else:
            st.caption(f"no {title} recorded in these runs")
    st.dataframe(frame.iloc[::-1], hide_index=True, width="stretch")


def app_grid(chosen: list[RunRecord]) -> None:
    evaluations = [
        (r, rep) for r in chosen if r.run_id and (rep := report(URI, EXPERIMENT, r.run_id))
    ]
    if not evaluations:
        st.info("these runs have no evaluation_report.json artifact: no per-app grid")
        return
    columns, rows = data.app_grid(evaluations)
    flipping = sum(1 for r in rows if r["flips"])
    st.caption(f"{len(rows)} apps over the last {len(evaluations)} evaluations; {flipping} flip")
    st.dataframe(pd.DataFrame(rows, columns=columns), hide_index=True, width="stretch")


def cost_vs_quality(shown: list[RunRecord]) -> None:
    frame = pd.DataFrame(data.trend_rows(shown))
    if frame[data.COST_PER_APP].notna().any():
        chart = (
            alt.Chart(frame)
            .mark_circle(size=70)
            .encode(
                x=alt.X(f"{data.COST_PER_APP}:Q", title="cost per app (USD)"),
                y=alt.Y(f"{data.QUALITY}:Q", title="quality score", axis=alt.Axis(format=".0%")),
                color="mode:N",
                tooltip=["run", data.QUALITY, data.COST_PER_APP],
            )
        )
        st.altair_chart(chart, width="stretch")
    else:
        st.caption("no generation cost recorded in these runs")
    money = st.column_config.NumberColumn(format="dollar")
    columns = {
        data.QUALITY: st.column_config.NumberColumn(format="percent"),
        data.COST_PER_APP: money,
        data.COST_PER_PASSING_APP: money,
    }
    st.dataframe(pd.DataFrame(data.cost_vs_quality(shown)), hide_index=True, column_config=columns)


def latest_failures(latest: RunRecord) -> None:
    st.caption(f"latest evaluation: {data.run_label(latest)}")
    found = report(URI, EXPERIMENT, latest.run_id) if latest.run_id else None
    if found is None:
        st.info("this run has no evaluation_report.json artifact")
        return
    rows = data.failing_apps(found)
    if not rows:
        st.success("every app passed")
        return
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    assert latest.run_id is not None
    root, files = screenshots(URI, EXPERIMENT, latest.run_id)
    shots = data.screenshots_by_app([r["app"] for r in rows], [Path(f) for f in files], Path(root))
    for app, images in shots.items():
        st.image([str(i) for i in images], caption=[f"{app}: {i.name}" for i in images], width=480)


def ab_view(shown: list[RunRecord]) -> None:
    labels = {data.run_label(r): r for r in shown if r.run_id}
    names = list(labels)
    latest_of: dict[str, str] = {}
    for label, run in labels.items():
        latest_of.setdefault(run.mode, label)
    defaults = list(latest_of.values())
    first = names.index(defaults[1]) if len(defaults) > 1 else min(1, len(names) - 1)
    a = st.selectbox("A", names, index=first, key="ab_a")
    b = st.selectbox("B", names, index=names.index(defaults[0]), key="ab_b")
    reports = [report(URI, EXPERIMENT, labels[x].run_id or "") for x in (a, b)]
    if a is None or b is None or reports[0] is None or reports[1] is None:
        st.info("pick two runs that have an evaluation_report.json artifact")
        return
    test = ab.ab_test(reports[0], reports[1], a, b)
    st.subheader(test.verdict)
    rows = [ab.row(test.overall), *map(ab.row, test.checks)]
    st.dataframe(pd.DataFrame(rows, columns=ab.HEADER), hide_index=True, width="stretch")
    cost_a, cost_b = test.cost_per_passing_app
    st.caption(f"cost per passing app (paired apps): A {ab.usd(cost_a)}, B {ab.usd(cost_b)}")
    listed = [[t, len(n), ", ".join(n)] for t, n in ab.app_lists(test) if n]
    if listed:
        st.dataframe(pd.DataFrame(listed, columns=["apps", "count", "names"]), hide_index=True)
    st.caption(ab.METHOD)


def main() -> None:
    st.set_page_config(page_title="klaudbiusz evaluations", layout="wide")
    st.title("klaudbiusz evaluations")
    st.caption(f"experiment {EXPERIMENT} at {display_uri(URI)}")
    with st.sidebar:
        limit = int(st.number_input("runs to read (newest first)", 10, 100_000, 200, step=100))
        grid_size = int(st.slider("evaluations in the app grid", 2, 30, 10))
    try:
        every = runs(URI, EXPERIMENT, limit, None)
    except HistoryError as exc:
        st.error(str(exc))
        return
    if not every:
        st.info("no finished evaluations in this experiment yet")
        return
    mode = st.sidebar.selectbox("mode", [ALL_MODES, *data.modes(every)], key="mode")
    shown = every if mode == ALL_MODES else [r for r in every if r.mode == mode]
    st.caption(f"{len(shown)} runs shown of the {len(every)} newest read")
    focus = shown[0].mode  # the grid and the failures are of one mode: the latest run's
    of_mode = [r for r in shown if r.mode == focus]
    titles = {
        "trends": "Trends",
        "apps": f"Apps ({focus})",
        "cost": "Cost vs quality",
        "failures": "Latest failures",
        "ab": "A/B",
    }
    opened = titles.get(str(st.query_params.get("tab", "")))  # ?tab=ab links to a view
    tabs = st.tabs(list(titles.values()), default=opened)
    with tabs[0]:
        trends(data.trend_rows(shown))
    with tabs[1]:
        app_grid(of_mode[:grid_size])
    with tabs[2]:
        cost_vs_quality(shown)
    with tabs[3]:
        latest_failures(of_mode[0])
    with tabs[4]:
        ab_view(every)


main()
