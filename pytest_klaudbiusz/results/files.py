"""The report files: write them (atomically) and read the JSON back.

The JSON is the source of truth; the Markdown and the CSV are rendered from it
(``render.py``). Standard library only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, cast

from pytest_klaudbiusz.results.render import render_csv, render_markdown
from pytest_klaudbiusz.results.report import FILE_NAMES, EvaluationReport, report_problem


def report_json(report: EvaluationReport | dict[str, Any]) -> str:
    """The report as the text of ``evaluation_report.json`` (also a committed baseline)."""
    return json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never a half-written one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8", newline="")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_reports(report: EvaluationReport, report_dir: Path) -> dict[str, Path]:
    """Write the three report files atomically; return their paths by kind."""
    texts = {
        "json": report_json(report),
        "markdown": render_markdown(report),
        "csv": render_csv(report),
    }
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: report_dir / name for kind, name in FILE_NAMES.items()}
    for kind, text in texts.items():
        write_atomic(paths[kind], text)
    return paths


def load_report(path: Path) -> EvaluationReport:
    """Read ``evaluation_report.json`` back; ``ValueError`` with a one-line reason if it isn't."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not an evaluation report (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        reason = f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise ValueError(f"{path}: not an evaluation report ({reason})") from None
    if problem := report_problem(data):
        raise ValueError(f"{path}: not an evaluation report ({problem})")
    return cast(EvaluationReport, data)
