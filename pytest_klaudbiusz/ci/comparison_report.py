"""A comparison of evaluation runs as terminal text (the layout of the MLflow
integration document) and as Markdown sections. Pure: no pytest, no mlflow."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_klaudbiusz.ci.compare import (
    ALPHA,
    Comparison,
    RunRecord,
    mode_means,
)
from pytest_klaudbiusz.results.markdown import markdown_table
from pytest_klaudbiusz.results.metrics import format_value
from pytest_klaudbiusz.results.text import markdown_cell

RULE = "=" * 34
DASHES = "-" * 97
NAME_WIDTH = 38
COLUMN_WIDTH = 12


def _label(index: int, run: RunRecord) -> str:
    return f"#{index} {run.mode}"[:COLUMN_WIDTH]


_COLOURS = {
    "better": "\x1b[32m",
    "worse": "\x1b[31m",
    "real: better": "\x1b[32m",
    "real: worse": "\x1b[31m",
}


def _paint(text: str, word: str, color: bool) -> str:
    code = _COLOURS.get(word)
    return f"{code}{text}\x1b[0m" if color and code else text


def _header(title: str) -> list[str]:
    return ["", title, RULE]


def render_text(comparison: Comparison, color: bool = False) -> list[str]:
    """The comparison for the terminal, in the layout of the MLflow integration document."""
    c = comparison
    lines = ["MLflow Evaluation Run Comparison", RULE]
    lines.append(c.scope)
    width = max(NAME_WIDTH, *(len(r.name) + 2 for r in c.runs))
    lines += [*_header("Recent Runs"), _runs_header(c.runs, width), DASHES]
    gated = any("gate_verdict" in r.tags for r in c.runs)
    for i, run in enumerate(c.runs, 1):
        row = f"{f'#{i}':<4}{run.name:<{width}}{run.mode:<15}{run.date:<21}"
        if gated:
            row += run.tags.get("gate_verdict", "-")
        lines.append(row.rstrip())
    metrics = c.shown(c.runs)
    lines += [*_header("Metrics Comparison")]
    lines.append(
        f"{'Metric':<{NAME_WIDTH}}"
        + "".join(f"{_label(i, r):>{COLUMN_WIDTH + 1}}" for i, r in enumerate(c.runs, 1))
    )
    lines.append(DASHES)
    for metric in metrics:
        cells = "".join(
            f"{format_value(metric, r.metrics.get(metric)):>{COLUMN_WIDTH + 1}}" for r in c.runs
        )
        lines.append(f"{metric:<{NAME_WIDTH}}{cells}")
    lines += _latest_vs_previous_text(c, color)
    if len({r.mode for r in c.runs}) > 1 or c.mode:
        lines += _modes_text(c, metrics)
    lines += _apps_text(c)
    lines += _tests_text(c, color)
    return lines


def _runs_header(runs: Sequence[RunRecord], width: int) -> str:
    header = f"{'#':<4}{'Run Name':<{width}}{'Mode':<15}{'Date':<21}"
    if any("gate_verdict" in r.tags for r in runs):
        header += "Gate"
    return header.rstrip()


def _latest_vs_previous_text(c: Comparison, color: bool) -> list[str]:
    latest_title, previous_title = c.titles
    lines = _header(c.heading)
    if c.latest is None or c.previous is None:
        return [*lines, "n/a: there is only one run to show"]
    lines.append(f"{latest_title}: {c.latest.name} ({c.latest.ref})")
    lines.append(f"{previous_title}: {c.previous.name} ({c.previous.ref})")
    lines.append(f"{'Metric':<{NAME_WIDTH}}{latest_title:<12}{previous_title:<12}Change")
    lines.append(DASHES)
    for metric in c.shown([c.latest, c.previous]):
        text, word = c.change(metric)
        cell = (
            f"{text} {word}".strip()
            if word not in ("n/a", "unchanged")
            else ("n/a" if word == "n/a" else "unchanged")
        )
        lines.append(
            f"{metric:<{NAME_WIDTH}}{format_value(metric, c.latest.metrics.get(metric)):<12}"
            f"{format_value(metric, c.previous.metrics.get(metric)):<12}{_paint(cell, word, color)}"
        )
    return lines


def _modes_text(c: Comparison, metrics: Sequence[str]) -> list[str]:
    groups = mode_means(c.runs, metrics)
    labels = [f"{mode} ({n})" for mode, n, _ in groups]
    widths = [max(COLUMN_WIDTH + 3, len(label) + 2) for label in labels]
    lines = _header("Mean by Mode (over the runs shown)")
    lines.append(
        f"{'Metric':<{NAME_WIDTH}}"
        + "".join(f"{t:>{w}}" for t, w in zip(labels, widths, strict=True))
    )
    lines.append(DASHES)
    for metric in metrics:
        cells = "".join(
            f"{format_value(metric, means[metric]):>{w}}"
            for (_, _, means), w in zip(groups, widths, strict=True)
        )
        lines.append(f"{metric:<{NAME_WIDTH}}{cells}")
    return lines


def _apps_text(c: Comparison) -> list[str]:
    latest_title, previous_title = c.titles
    lines = _header(f"Apps: {latest_title} vs {previous_title}")
    moves = c.moves
    if moves is None:
        return [*lines, *(c.notes or ["n/a: no per-app report to compare"])]
    lines.append(f"{moves.common} apps evaluated in both runs")
    for title, group in (
        ("regressed (pass -> fail)", moves.regressed),
        ("fixed (fail -> pass)", moves.fixed),
    ):
        lines.append(f"{title}: {len(group)}")
        lines += [
            f"  {name:<{NAME_WIDTH - 2}}{', '.join(checks)}" for name, checks in group.items()
        ]
    for title, names in (
        ("new", moves.new),
        ("gone", moves.gone),
        ("not comparable (infra error or not run in one run)", moves.unrated),
    ):
        if names or title in ("new", "gone"):
            lines.append(f"{title}: {len(names)}" + (f" ({', '.join(names)})" if names else ""))
    return lines


def _tests_text(c: Comparison, color: bool) -> list[str]:
    tests = c.tests
    if not tests:
        return []
    latest_title, previous_title = c.titles
    lines = _header("Is the Change Real? (exact McNemar test on the apps evaluated in both runs)")
    lines.append(
        f"{'Rate':<{NAME_WIDTH}}{previous_title:<10}{latest_title:<10}{'Apps':>5}"
        f"{'Pass->fail':>12}{'Fail->pass':>12}{'p-value':>9}  Verdict"
    )
    lines.append(DASHES)
    for t in tests:
        lines.append(
            f"{t.rate:<{NAME_WIDTH}}{format_value(t.rate, t.before):<10}"
            f"{format_value(t.rate, t.after):<10}"
            f"{t.pairs:>5}{t.pass_to_fail:>12}{t.fail_to_pass:>12}{t.p_text:>9}  "
            + _paint(t.verdict, t.verdict, color)
        )
    lines.append(f"A change is called real when p < {ALPHA}; otherwise it is within noise.")
    return lines


# --- Markdown -------------------------------------------------------------------------

_MARKS = {
    "better": "🟢 better",
    "worse": "🔴 worse",
    "real: better": "🟢 real: better",
    "real: worse": "🔴 real: worse",
}


def render_markdown(
    comparison: Comparison, level: str = "##", sections: Sequence[str] | None = None
) -> list[str]:
    """The comparison as Markdown sections: ``runs``, ``metrics``, ``latest``, ``modes``,
    ``apps``, ``tests`` (all by default)."""
    c = comparison
    wanted = set(sections or ("runs", "metrics", "latest", "modes", "apps", "tests"))
    latest_title, previous_title = c.titles
    metrics = c.shown(c.runs)
    out: list[str] = []
    if "runs" in wanted:
        gated = any("gate_verdict" in r.tags for r in c.runs)
        header = ["#", "Run", "Mode", "Date (UTC)", *(["Gate"] if gated else [])]
        rows = [
            [str(i), r.name, r.mode, r.date, *([r.tags.get("gate_verdict", "-")] if gated else [])]
            for i, r in enumerate(c.runs, 1)
        ]
        out += [
            f"{level} Recent runs",
            "",
            f"{markdown_cell(c.scope)}.",
            "",
            *markdown_table(header, rows),
            "",
        ]
    if "metrics" in wanted:
        header = ["Metric", *(f"#{i} {r.mode}" for i, r in enumerate(c.runs, 1))]
        rows = [[m, *(format_value(m, r.metrics.get(m)) for r in c.runs)] for m in metrics]
        out += [f"{level} Metrics", "", *markdown_table(header, rows), ""]
    if "latest" in wanted:
        out += [f"{level} {c.heading}", ""]
        if c.latest is None or c.previous is None:
            out += ["n/a: there is only one run to show.", ""]
        else:
            rows = []
            for m in c.shown([c.latest, c.previous]):
                text, word = c.change(m)
                shown = (
                    "n/a"
                    if word == "n/a"
                    else "unchanged"
                    if word == "unchanged"
                    else (f"{text} {_MARKS.get(word, word)}".strip())
                )
                rows.append(
                    [
                        m,
                        format_value(m, c.latest.metrics.get(m)),
                        format_value(m, c.previous.metrics.get(m)),
                        shown,
                    ]
                )
            out += [
                f"{latest_title}: `{c.latest.name}` ({markdown_cell(c.latest.ref)}); "
                f"{previous_title.lower()}: `{c.previous.name}` ({markdown_cell(c.previous.ref)}).",
                "",
                *markdown_table(["Metric", latest_title, previous_title, "Change"], rows),
                "",
            ]
    if "modes" in wanted and (len({r.mode for r in c.runs}) > 1 or c.mode):
        groups = mode_means(c.runs, metrics)
        header = ["Metric", *(f"{mode} ({n} run{'s' * (n != 1)})" for mode, n, _ in groups)]
        rows = [[m, *(format_value(m, means[m]) for _, _, means in groups)] for m in metrics]
        out += [f"{level} Mean by mode", "", *markdown_table(header, rows), ""]
    if "apps" in wanted:
        out += [f"{level} Apps: {latest_title.lower()} vs {previous_title.lower()}", ""]
        moves = c.moves
        if moves is None:
            out += [*(c.notes or ["n/a: no per-app report to compare."]), ""]
        else:
            rows = [
                [n, "regressed (pass → fail)", ", ".join(ch)] for n, ch in moves.regressed.items()
            ]
            rows += [[n, "fixed (fail → pass)", ", ".join(ch)] for n, ch in moves.fixed.items()]
            rows += [[n, "new", "-"] for n in moves.new]
            rows += [[n, "gone", "-"] for n in moves.gone]
            rows += [[n, "not comparable (infra error or not run)", "-"] for n in moves.unrated]
            out += [
                f"{moves.common} apps evaluated in both runs: {len(moves.regressed)} regressed, "
                f"{len(moves.fixed)} fixed, {len(moves.new)} new, {len(moves.gone)} gone.",
                "",
                *(
                    markdown_table(["App", "Change", "Checks"], rows)
                    if rows
                    else ["No app changed."]
                ),
                "",
            ]
    tests = c.tests if "tests" in wanted else []
    if tests:
        rows = [
            [
                t.rate,
                format_value(t.rate, t.before),
                format_value(t.rate, t.after),
                str(t.pairs),
                str(t.pass_to_fail),
                str(t.fail_to_pass),
                t.p_text,
                _MARKS.get(t.verdict, t.verdict),
            ]
            for t in tests
        ]
        out += [
            f"{level} Is the change real?",
            "",
            "Exact McNemar test on the apps evaluated in both runs: a change is called real"
            f" when p < {ALPHA}, otherwise it is within noise.",
            "",
            *markdown_table(
                [
                    "Rate",
                    previous_title,
                    latest_title,
                    "Paired apps",
                    "Pass → fail",
                    "Fail → pass",
                    "p-value",
                    "Verdict",
                ],
                rows,
            ),
            "",
        ]
    return out
