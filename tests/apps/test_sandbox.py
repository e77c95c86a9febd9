"""Hostile apps against the real sandbox (bubblewrap), serially and under ``-n 2``.

One session-wide corpus of hostile apps (tests/hostile_apps) is evaluated by the real
plugin in a pytest subprocess, serially and with ``-n 2``; the tests then look at the
machine and at every output (terminal, the three reports, JUnit XML): no canary
secret, nothing written outside the working copies, no neighbour hurt, no formula in
the CSV, no broken Markdown table, no raw escape byte. A run with the sandbox off
shows the same apps do steal when nothing stops them.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import shutil
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from hostile_apps import HERE, Outside, copy_app, evaluate, outcomes, tree_digest

from pytest_klaudbiusz.apps.isolation import (
    Bubblewrap,
    CgroupLayout,
    Isolation,
    Limits,
    tool_folders,
)

SUBPROCESS_TIMEOUT = 300
MARKER = f"hostile-{uuid.uuid4().hex}"
PLAIN_CANARY = f"plain-canary-{uuid.uuid4().hex}"  # a name no redaction knows
SECRET_CANARY = f"sk-ant canary/{uuid.uuid4().hex}+x"  # ANTHROPIC_API_KEY: redacted too
#: Folder names an attacker picks: a spreadsheet formula, Markdown's escapes, escape codes.
FORMULA_NAME = '=HYPERLINK("h2","x")'
MARKDOWN_NAME = "pipe|back\\slash"
ESCAPE_NAME = "title\x1b]0;pwned\x07clear\x1b[2J"
#: The serial corpus: folder name -> hostile app.
CORPUS = {
    "steal-environ": "steal-environ",
    "find-original": "find-original",
    "escape-printer": "escape-printer",
    FORMULA_NAME: "escape-printer",
    MARKDOWN_NAME: "escape-printer",
    ESCAPE_NAME: "escape-printer",
    "memory-hog": "memory-hog",
    "fork-bomb": "fork-bomb",
}
#: Under -n 2 also these two, named to run first, side by side (one per worker).
NEIGHBOURS = {"0-neighbour": "neighbour", "1-pkill-neighbour": "pkill-neighbour"}
LIMITS = "--klaud-limit=memory=256M,pids=64"
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e")
REPORT = "evaluation_report.json"


@dataclass
class Evaluation:
    """One run of the plugin: its terminal output and every file it wrote."""

    root: Path
    report_dir: Path
    output: str

    @property
    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.report_dir / REPORT).read_text())
        return data

    def apps(self) -> dict[str, dict[str, Any]]:
        return {a["app_name"]: a for a in self.report["apps"]}

    def outputs(self) -> dict[str, str]:
        """Everything a user or a tool reads: the terminal and every report file."""
        files = {p.name: p.read_text(errors="replace") for p in self.report_dir.iterdir()}
        return {"terminal": self.output, **files}


def _pytest_env(tmp: Path, marker: str) -> dict[str, str]:
    return {
        **os.environ,
        "HOSTILE_MARKER": marker,
        "HOSTILE_CANARY_PLAIN": PLAIN_CANARY,
        "ANTHROPIC_API_KEY": SECRET_CANARY,
        "HOSTILE_HOG_MB": "512",
        "HOSTILE_PORT": str(_free_port()),
        "HOME": str(tmp / "home"),  # the evaluator's home: nothing may appear in it
    }


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _evaluate_corpus(
    root: Path, apps: dict[str, str], *args: str, report: str = "app-eval", marker: str = MARKER
) -> Evaluation:
    import subprocess
    import sys

    (root / "home").mkdir(exist_ok=True)
    apps_dir = root / "apps"
    for name, app in apps.items():
        if not (apps_dir / name).exists():
            copy_app(app, apps_dir, name)
    (root / "pytest.ini").write_text("[pytest]\nklaud_apps = apps\n")
    (root / "test_evals.py").write_text("def test_app(klaud_app):\n    klaud_app.check()\n")
    command = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly",
        "--klaud-no-tracking", "--klaud-apps=apps", f"--klaud-report-dir={report}",
        f"--junitxml={report}/junit.xml", *args,
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=root, env=_pytest_env(root, marker), capture_output=True,
        timeout=SUBPROCESS_TIMEOUT, check=False,
    )  # fmt: skip
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 1, output  # some apps fail; never a usage or internal error
    assert "INTERNALERROR" not in output and "Traceback" not in output
    return Evaluation(root, root / report, output)


def _remove_pwned(marker: str) -> None:
    for folder in (Path("/var/tmp"), Path("/tmp"), Path.home()):
        (folder / f"{marker}.pwned").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("sandboxed")
    yield root
    _remove_pwned(MARKER)  # never there unless a test fails


@pytest.fixture(scope="module")
def serial(corpus_root: Path) -> Evaluation:
    return _evaluate_corpus(corpus_root, CORPUS, "--klaud-sandbox=bwrap", LIMITS, report="serial")


@pytest.fixture(scope="module")
def parallel(corpus_root: Path, serial: Evaluation) -> Evaluation:
    """A longest-first rerun under ``-n 2`` (durations from the serial run's report): the
    neighbours, new, run first, one on each worker (the other apps are dealt after them)."""
    (corpus_root / "xdist").mkdir()
    shutil.copyfile(serial.report_dir / REPORT, corpus_root / "xdist" / REPORT)
    apps = {**CORPUS, **NEIGHBOURS}
    run = _evaluate_corpus(
        corpus_root, apps, "--klaud-sandbox=bwrap", LIMITS, "-n", "2", report="xdist"
    )
    assert "apps run longest first" in run.output
    return run


@pytest.fixture(params=["serial", "parallel"])
def evaluation(request: pytest.FixtureRequest) -> Evaluation:
    result: Evaluation = request.getfixturevalue(request.param)
    return result


def _forms(value: str) -> list[str]:
    """The canary as the app prints it: raw, base64 (as steal.py encodes it), URL-encoded."""
    encoded = base64.b64encode(f"x{value}y".encode()).decode()
    return [value, encoded, urllib.parse.quote(value, safe="")]


# --- secrets ------------------------------------------------------------------------------


def test_no_canary_reaches_any_output(evaluation: Evaluation) -> None:
    stolen = evaluation.apps()["steal-environ"]
    assert stolen["metrics"]["build_success"] is False  # it found nothing to steal
    assert "visible processes: " in stolen["stages"][1]["log_tail"]
    for where, text in evaluation.outputs().items():
        for canary in (*_forms(PLAIN_CANARY), *_forms(SECRET_CANARY)):
            assert canary not in text, where


def test_unsandboxed_the_apps_do_harm_and_redaction_still_hides_the_secret(
    tmp_path: Path,
) -> None:
    """The control: the same apps steal and write outside when nothing stops them (so the
    tests of the sandbox can fail); redaction alone still hides the secret-looking value,
    raw, base64- and URL-encoded."""
    marker = f"control-{uuid.uuid4().hex}"
    apps = {"steal-environ": "steal-environ", "find-original": "find-original"}
    try:
        run = _evaluate_corpus(tmp_path, apps, "--klaud-sandbox=none", marker=marker)
        assert (Path("/var/tmp") / f"{marker}.pwned").exists()
    finally:
        _remove_pwned(marker)
    assert "WARNING: klaudbiusz apps run UNSANDBOXED (--klaud-sandbox=none)" in run.output
    assert run.report["run"]["sandbox"] == "none"
    assert (tmp_path / "apps" / "find-original" / f"{marker}.pwned").exists()
    assert (tmp_path / "home" / f"{marker}.pwned").exists()
    lines = run.apps()["steal-environ"]["stages"][1]["log_tail"].splitlines()
    assert f"stolen HOSTILE_CANARY_PLAIN={PLAIN_CANARY}" in lines
    secret = lines.index("stolen ANTHROPIC_API_KEY=[REDACTED]")
    assert lines[secret + 1].startswith("base64 ") and "[REDACTED]" in lines[secret + 1]
    assert lines[secret + 2] == "url [REDACTED]"
    for where, text in run.outputs().items():
        for canary in _forms(SECRET_CANARY):
            assert canary not in text, where


# --- the machine ------------------------------------------------------------------------


def test_nothing_is_written_outside_the_working_copy(
    serial: Evaluation, parallel: Evaluation
) -> None:
    for evaluation in (serial, parallel):
        log = evaluation.apps()["find-original"]["stages"][1]["log_tail"]
        assert "found the apps folder" not in log  # no ancestor's command line to read
        assert log.endswith("3 folders tried")  # its own $HOME, /var/tmp and /tmp
    apps_dir = serial.root / "apps"
    assert not list(apps_dir.rglob(f"*{MARKER}*"))
    assert tree_digest(apps_dir / "find-original") == tree_digest(HERE / "find-original")
    for folder in (Path("/var/tmp"), Path("/tmp"), Path.home(), serial.root / "home"):  # HOME
        assert not (folder / f"{MARKER}.pwned").exists(), folder


def test_a_neighbour_killed_with_pkill_survives(parallel: Evaluation) -> None:
    apps = parallel.apps()
    hunter = apps["1-pkill-neighbour"]["stages"][-1]
    assert hunter["outcome"] == "passed", hunter  # it met its neighbour, and ran pkill -9
    assert "pkill -9 -f hostile-neighbour-server" in hunter["log_tail"]
    neighbour = apps["0-neighbour"]["stages"][-1]
    assert (neighbour["outcome"], neighbour["log_tail"]) == (
        "passed",
        "the neighbour's server lived to the end",
    )


def test_limits_fail_the_app_with_their_reason_and_the_evaluation_goes_on(
    evaluation: Evaluation,
) -> None:
    apps = evaluation.apps()
    assert outcomes_of(apps["memory-hog"])["build"] == (
        "failed",
        "exceeded its memory limit (256M)",
    )
    assert outcomes_of(apps["fork-bomb"])["build"] == ("failed", "exceeded its process limit (64)")
    assert evaluation.report["summary"]["evaluated"] == len(apps)
    assert evaluation.report["run"]["sandbox"] == "bwrap"
    assert evaluation.report["run"]["limits"].startswith("memory=256M, pids=64 (")
    survivors = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("MARKER") == MARKER:
                survivors.append(proc.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    assert survivors == []


def outcomes_of(app: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {s["name"]: (s["outcome"], s["reason"]) for s in app["stages"]}


def test_serial_and_parallel_give_the_same_results(
    serial: Evaluation, parallel: Evaluation
) -> None:
    def verdicts(evaluation: Evaluation) -> dict[str, Any]:
        return {
            name: (app["metrics"]["build_success"], outcomes_of(app))
            for name, app in evaluation.apps().items()
            if name not in NEIGHBOURS
        }

    assert verdicts(serial) == verdicts(parallel)


# --- app text in the outputs ------------------------------------------------------------


def test_no_raw_escape_byte_reaches_any_output(evaluation: Evaluation) -> None:
    for where, text in evaluation.outputs().items():
        for control in RAW_CONTROLS:
            assert control not in text, (where, control)
    assert "title\\x1b]0;pwned\\x07clear\\x1b[2J" in evaluation.apps()  # shown, escaped
    tail = evaluation.apps()["escape-printer"]["stages"][-1]["log_tail"]
    assert "\\x1b]0;hostile window title\\x07" in tail
    assert "\\u202eevil-looking-name.txt" in tail


def test_no_csv_cell_is_a_formula(evaluation: Evaluation) -> None:
    rows = list(
        csv.DictReader(io.StringIO((evaluation.report_dir / "evaluation_report.csv").read_text()))
    )
    assert {r["app_name"] for r in rows} >= {"'" + FORMULA_NAME, MARKDOWN_NAME}
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value


def _cells(line: str) -> list[str]:
    """A Markdown table row's cells as GitHub reads them (backslash escapes the next char)."""
    cells, cell, chars = [], "", iter(line.strip()[1:-1])
    for char in chars:
        if char == "\\":
            cell += next(chars, "")
        elif char == "|":
            cells.append(cell.strip())
            cell = ""
        else:
            cell += char
    return [*cells, cell.strip()]


def test_markdown_tables_keep_their_columns_and_show_names_as_written(
    evaluation: Evaluation,
) -> None:
    lines = (evaluation.report_dir / "EVALUATION_REPORT.md").read_text().splitlines()
    tables: list[list[list[str]]] = []
    for previous, line in zip(["", *lines], lines, strict=False):
        if line.startswith("|"):
            if not previous.startswith("|"):
                tables.append([])
            tables[-1].append(_cells(line))
    assert tables
    for table in tables:
        assert {len(row) for row in table} == {len(table[0])}, table[0]
    names = {row[0] for table in tables for row in table}
    assert {FORMULA_NAME, MARKDOWN_NAME, "title\\x1b]0;pwned\\x07clear\\x1b[2J"} <= names


# --- the adapter on its own -----------------------------------------------------------------


@pytest.mark.parametrize("by", ["cgroup", "rlimit"])
def test_the_memory_limit_stops_only_what_exceeds_it(tmp_path: Path, by: str) -> None:
    """So the limit tests above can fail; and where no cgroup can be made, an rlimit on the
    address space stands in (it cannot say why the command failed)."""
    cgroups = CgroupLayout.find() if by == "cgroup" else None
    assert (cgroups is None) == (by == "rlimit")  # this machine lets the harness make cgroups
    isolation = Isolation(limits=Limits(memory=256 * 2**20, pids=64), cgroups=cgroups)
    reasons = []
    for megabytes in ("32", "512"):
        (tmp_path / megabytes).mkdir()
        outside = Outside(tmp_path / megabytes)
        result = evaluate(
            copy_app("memory-hog", tmp_path / megabytes),
            outside,
            environ=outside.environ(HOSTILE_HOG_MB=megabytes),
            isolation=isolation,
        )
        reasons.append(outcomes(result)["build"])
    exceeded = "exceeded its memory limit (256M)" if cgroups else "exited non-zero"
    assert reasons == [("passed", ""), ("failed", exceeded)]


def test_the_sandbox_shows_the_app_only_its_own_processes_and_files(tmp_path: Path) -> None:
    outside = Outside(tmp_path)
    app = copy_app("well-behaved", tmp_path)
    hidden = [app, outside.dir, Path.home(), Path(__file__)]
    assert all(path.exists() for path in hidden)
    (app / "klaud.toml").write_text(
        "[commands]\n"
        "build = 'test $(ls /proc | grep -c \"^[0-9]\") -le 5'\n"  # sh, ls, grep, bwrap
        "typecheck = 'test $HOME = /home/app && touch $HOME/x /tmp/x /var/tmp/x x'\n"
        f"test = '! ls -d {' '.join(map(str, hidden))}'\n"
    )
    isolation = Isolation(bwrap=Bubblewrap(tmp_path / "cache"))
    result = evaluate(app, outside, isolation=isolation)
    assert outcomes(result)["build"] == ("passed", "")
    assert outcomes(result)["typecheck"] == ("passed", "")
    assert outcomes(result)["test"] == ("passed", ""), result.stage("test")
    unsandboxed = evaluate(app, outside)
    assert outcomes(unsandboxed)["build"][0] == "failed"  # it sees every process
    assert outcomes(unsandboxed)["test"][0] == "failed"  # and every file


# --- choosing the sandbox -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--klaud-sandbox=bwrap",),
            "ERROR: --klaud-sandbox=bwrap: bubblewrap does not work: bwrap is not on PATH"
            " (install the bubblewrap package)",
        ),
        (("--klaud-sandbox=docker",), "ERROR: --klaud-sandbox 'docker': use auto, bwrap, none"),
        (
            ("--klaud-limit=memory=1",),
            "ERROR: --klaud-limit: invalid limit 'memory=1': memory must be a size from 16M",
        ),
    ],
    ids=["bwrap-missing", "unknown-sandbox", "bad-limit"],
)
def test_a_sandbox_that_cannot_be_had_is_a_one_line_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], message: str
) -> None:
    copy_app("well-behaved", pytester.path / "apps")
    monkeypatch.setenv("PATH", "/nonexistent")  # no bwrap; pytest runs by its full path
    result = pytester.runpytest_subprocess("--klaud-apps=apps", "--klaud-no-tracking", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == message
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_auto_without_bubblewrap_warns_in_the_header_that_apps_run_unsandboxed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_app("well-behaved", pytester.path / "apps")
    pytester.makepyfile(test_evals="def test_app(klaud_app):\n    pass\n")
    args = ("--klaud-apps=apps", "--klaud-no-tracking", "--collect-only")
    with_bwrap = pytester.runpytest_subprocess(*args)
    with_bwrap.stdout.fnmatch_lines(["klaudbiusz sandbox: bwrap; limits: memory=4G, pids=512 by *"])
    monkeypatch.setenv("PATH", "/nonexistent")
    result = pytester.runpytest_subprocess(*args)
    result.stdout.fnmatch_lines(
        [
            "WARNING: klaudbiusz apps run UNSANDBOXED (bubblewrap unusable: bwrap is not on"
            " PATH (install the bubblewrap package)); limits: memory=4G, pids=512 by *"
        ]
    )


def test_the_machines_tools_outside_the_system_folders_are_shown_read_only(
    tmp_path: Path,
) -> None:
    """A version manager's folder whole (its shims call back into it), another tool's own
    folder, never a virtualenv (the evaluator's), nothing in the system folders twice."""

    def tool(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
        return path.parent

    nvm = tool(tmp_path / ".nvm" / "versions" / "node" / "v20" / "bin" / "node")
    uv = tool(tmp_path / "tools" / "bin" / "uv")
    venv = tool(tmp_path / "venv" / "bin" / "python3")
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    path = os.pathsep.join(map(str, (venv, nvm, uv, "/usr/bin")))
    assert tool_folders(path) == (tmp_path / ".nvm", uv)
