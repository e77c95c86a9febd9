"""Markdown building blocks shared by every Markdown output (report, gate, comparison,
generation cost): one cell escaper, one table writer. Standard library only."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_cell(value: object) -> str:
    """``value`` as text that stays inside one table cell (or one line of prose)."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[object], rows: Iterable[Sequence[object]]) -> list[str]:
    """A GitHub-flavoured Markdown table, every cell escaped."""

    def row(values: Sequence[object]) -> str:
        return "| " + " | ".join(markdown_cell(v) for v in values) + " |"

    return [row(header), "|" + "---|" * len(header), *(row(r) for r in rows)]
