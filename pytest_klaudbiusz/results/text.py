"""App-controlled text made inert: it can show, never act, wherever it lands.

An app controls its folder's name, everything its commands print and the answers
its server gives; all of it reaches the terminal, the Markdown, CSV and JSON
reports, JUnit XML and MLflow. Two kinds of defence:

* Control characters are made visible (``\\x1b``, ``\\u202e``) once, at the one door
  every result passes before anything shows or stores it: ``inert_result``, applied
  when the evaluating process receives a result (``plugin._evaluate``: fresh, reused
  or an infrastructure error) and to the names of apps with no result (``inbox``).
  So escape sequences (window titles, screen clears, terminal hyperlinks) and
  bidirectional overrides reach no output raw, whichever renders it, now or later.
* What is special in one format is escaped by that format's writer: a Markdown table
  cell (``markdown_cell``: backslash, pipe, line break) and a CSV cell (``csv_cell``:
  a leading ``=``, ``+``, ``-``, ``@``, tab or CR gets a ``'`` in front, as OWASP's
  CSV-injection guidance recommends, so no spreadsheet runs it as a formula).
"""

from __future__ import annotations

import re
from typing import Any

from pytest_klaudbiusz.results.model import AppResult

#: C0 and C1 controls, DEL, and the Unicode bidirectional embeddings, overrides and isolates.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile("[\t\n]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, *, one_line: bool = False) -> str:
    """``text`` with every control character escaped; tabs and line breaks are kept unless
    ``one_line`` (CR LF and a lone CR, as in progress bars, count as line breaks)."""
    text = _CONTROL.sub(_escape, text.replace("\r\n", "\n").replace("\r", "\n"))
    return _LINE_BREAKS.sub(_escape, text) if one_line else text


def _inert(value: Any, one_line: bool = False) -> Any:
    if isinstance(value, str):
        return visible(value, one_line=one_line)
    if isinstance(value, list):
        return [_inert(v) for v in value]
    if isinstance(value, dict):
        return {_inert(k, one_line=True): _inert(v) for k, v in value.items()}
    return value


def inert_result(result: AppResult) -> AppResult:
    """``result`` with every piece of text in it made visible; names on one line."""
    data = _inert(result.to_dict())
    data["app_name"] = visible(result.app_name, one_line=True)
    data["app_dir"] = visible(result.app_dir, one_line=True)
    return AppResult.from_dict(data)


def markdown_cell(value: object) -> str:
    """A Markdown table cell showing ``value`` as written: one line, no column breaks."""
    text = visible(str(value)).replace("\n", " ").replace("\t", " ")
    return text.replace("\\", "\\\\").replace("|", "\\|")


def csv_cell(value: object) -> object:
    """A CSV cell: booleans as ``true``/``false``, None empty, text never a formula."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, str):
        value = visible(value)
        return "'" + value if value.startswith(_FORMULA_START) else value
    return value
