"""The Markdown table writer every Markdown output uses (report, gate, comparison,
generation cost, A/B test); its cells are escaped by ``text.markdown_cell``, the one
escaper of app-controlled text for Markdown. Standard library only."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pytest_klaudbiusz.results.text import markdown_cell


def markdown_table(header: Sequence[object], rows: Iterable[Sequence[object]]) -> list[str]:
    """A GitHub-flavoured Markdown table, every cell escaped."""

    def row(values: Sequence[object]) -> str:
        return "| " + " | ".join(markdown_cell(v) for v in values) + " |"

    return [row(header), "|" + "---|" * len(header), *(row(r) for r in rows)]
