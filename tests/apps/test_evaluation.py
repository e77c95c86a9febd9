"""evaluate_app on real apps: what each stage means, timeouts, bad manifests, whose fault.

Every test runs real commands and a real server (tests/hostile_apps, copied into
tmp_path); nothing of the evaluation is mocked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile_apps import FAST, Outside, copy_app, evaluate, outcomes

import pytest_klaudbiusz
from pytest_klaudbiusz.apps.evaluation import InfraError
from pytest_klaudbiusz.apps.logs import EXCERPT_CHARS
from pytest_klaudbiusz.apps.processes import port_is_free
from pytest_klaudbiusz.klaud_app import verdict
from pytest_klaudbiusz.results.metrics import CHECKS
from pytest_klaudbiusz.results.model import STAGES, AppStatus, Outcome

PASSED, FAILED, SKIPPED, NA = "passed", "failed", "skipped", "not_applicable"

#: The well-behaved app's commands; a test drops or replaces some of them.
COMMANDS = {
    "install": "true",
    "build": "true",
    "typecheck": "true",
    "start": "exec python3 server.py",
    "test": "true",
}


def served_app(
    tmp_path: Path,
    *,
    data: tuple[tuple[str, str], ...] = (("GET", "/api/rows"),),
    extra: str = "",
    **commands: str | None,
) -> Path:
    """The well-behaved server with a manifest written for the test.

    ``commands`` replace the default ones; ``None`` leaves the key out, ``""``
    declares that the app has no such stage.
    """
    app = copy_app("well-behaved", tmp_path)
    lines = ["[commands]"]
    for stage, command in {**COMMANDS, **commands}.items():
        if command is not None:
            lines.append(f"{stage} = {json.dumps(command)}")
    lines += ["[runtime]", 'health = "/health"', "ready_timeout = 10", extra]
    for method, path in data:
        lines += ["[[data]]", f'method = "{method}"', f'path = "{path}"']
    (app / "klaud.toml").write_text("\n".join(lines) + "\n")
    return app


# --- stage semantics ----------------------------------------------------------


def test_an_app_that_does_everything_right_passes_every_stage(tmp_path: Path) -> None:
    outside = Outside(tmp_path)
    result = evaluate(copy_app("well-behaved", tmp_path), outside)

    assert result.status is AppStatus.EVALUATED
    assert [s.name for s in result.stages] == list(STAGES)
    served = outcomes(result).pop("ui")  # an API: no page to open (tests/test_ui.py)
    assert all(s.outcome == PASSED for s in result.stages if s.name != "ui"), outcomes(result)
    assert served == (NA, "no UI: / answered 404 application/json, no client folder")
    checks = {check: result.metrics[check] for check in CHECKS}
    assert checks == {**dict.fromkeys(CHECKS, True), "ui_renders": None}
    endpoints = result.details["data_endpoints"]
    assert [(e["method"], e["path"], e["status"], e["rows"]) for e in endpoints] == [
        ("GET", "/api/rows", 200, 2),
        ("POST", "/api/query", 200, 4),
        ("GET", "/api/trpc/getSales", 200, 3),
    ]
    assert result.details["health"]["path"] == "/health"
    assert isinstance(result.metrics["startup_time_sec"], float)
    assert isinstance(result.metrics["build_time_sec"], float)
    assert result.details["port_released"] is True
    assert port_is_free(result.details["port"])
    assert not [i for i in result.issues if i.split(":")[0] in STAGES]
    json.dumps(result.to_dict())


def test_an_absent_build_fails_and_the_app_is_still_started(tmp_path: Path) -> None:
    outside = Outside(tmp_path)
    start = 'echo started >> "$HOSTILE_DIR/started"; exec python3 server.py'
    app = served_app(tmp_path, build="", start=start, extra='[env]\nHOSTILE_DIR = "${HOSTILE_DIR}"')
    result = evaluate(app, outside)

    assert result.metrics["build_success"] is False
    stages = outcomes(result)
    assert stages["build"] == (FAILED, "no build command")
    # an interpreted server may start without a build: the runtime says what it saw
    assert stages["runtime"] == (PASSED, "")
    assert result.metrics["runtime_success"] is True
    assert (outside.dir / "started").read_text() == "started\n"
    assert stages["test"] == (PASSED, "")  # tests do not need a build
    assert "build: no build command" in result.issues


def test_an_absent_test_command_fails(tmp_path: Path) -> None:
    result = evaluate(served_app(tmp_path, test=None), Outside(tmp_path))
    assert result.metrics["tests_pass"] is False
    assert outcomes(result)["test"] == (FAILED, "no test command")
    assert result.metrics["runtime_success"] is True


def test_an_absent_typecheck_is_not_applicable(tmp_path: Path) -> None:
    result = evaluate(served_app(tmp_path, typecheck=None), Outside(tmp_path))
    assert result.metrics["type_safety"] is None
    assert outcomes(result)["typecheck"] == (NA, "no typecheck command")
    assert result.metrics["build_success"] is True


def test_an_absent_install_passes(tmp_path: Path) -> None:
    result = evaluate(served_app(tmp_path, install=""), Outside(tmp_path))
    assert outcomes(result)["install"] == (PASSED, "")
    assert result.metrics["data_returned"] is True


def test_an_app_without_data_endpoints_has_no_connectivity_check(tmp_path: Path) -> None:
    result = evaluate(served_app(tmp_path, data=()), Outside(tmp_path))
    assert result.metrics["runtime_success"] is True
    assert result.metrics["databricks_connectivity"] is None
    assert result.metrics["data_returned"] is None
    assert outcomes(result)["data"][0] == NA


def test_an_app_without_start_command_fails_runtime(tmp_path: Path) -> None:
    result = evaluate(served_app(tmp_path, start=""), Outside(tmp_path))
    stages = outcomes(result)
    assert stages["runtime"] == (FAILED, "no start command")
    assert stages["data"] == (SKIPPED, "runtime failed")
    assert result.metrics["databricks_connectivity"] is False


def test_a_start_command_that_crashes_fails_runtime(tmp_path: Path) -> None:
    app = served_app(tmp_path, start="echo 'cannot connect' >&2; exit 3")
    result = evaluate(app, Outside(tmp_path))
    runtime = result.stage("runtime")
    assert runtime is not None
    assert (runtime.outcome, runtime.reason, runtime.exit_code) == (
        FAILED,
        "start command exited",
        3,
    )
    assert "cannot connect" in runtime.log_tail
    assert outcomes(result)["data"] == (SKIPPED, "runtime failed")


def test_a_data_endpoint_answering_500_fails_connectivity(tmp_path: Path) -> None:
    app = served_app(tmp_path, data=(("GET", "/api/rows"), ("GET", "/api/broken")))
    result = evaluate(app, Outside(tmp_path))
    assert result.metrics["runtime_success"] is True
    assert result.metrics["databricks_connectivity"] is False
    stages = outcomes(result)
    assert stages["data"] == (FAILED, "endpoint answered non-2xx")
    assert stages["data_returned"] == (SKIPPED, "data failed")
    assert [e["status"] for e in result.details["data_endpoints"]] == [200, 500]


def test_a_data_endpoint_answering_non_json_fails_connectivity(tmp_path: Path) -> None:
    result = evaluate(served_app(tmp_path, data=(("GET", "/api/text"),)), Outside(tmp_path))
    assert result.metrics["databricks_connectivity"] is False
    assert outcomes(result)["data"] == (FAILED, "endpoint answered non-JSON")


def test_a_data_endpoint_returning_no_rows_fails_data_returned(tmp_path: Path) -> None:
    app = served_app(tmp_path, data=(("GET", "/api/rows"), ("GET", "/api/empty")))
    result = evaluate(app, Outside(tmp_path))
    assert result.metrics["databricks_connectivity"] is True
    assert result.metrics["data_returned"] is False
    assert outcomes(result)["data_returned"] == (FAILED, "no rows")


@pytest.mark.parametrize(
    ("path", "rows", "returned"),
    [("/api/trpc/getSales", 3, True), ("/api/trpc/getNothing", 0, False)],
)
def test_rows_are_counted_inside_the_trpc_envelope(
    tmp_path: Path, path: str, rows: int, returned: bool
) -> None:
    result = evaluate(served_app(tmp_path, data=(("GET", path),)), Outside(tmp_path))
    assert result.metrics["databricks_connectivity"] is True
    assert result.details["data_endpoints"][0]["rows"] == rows
    assert result.metrics["data_returned"] is returned


def test_a_post_data_endpoint_receives_an_empty_json_object(tmp_path: Path) -> None:
    # The server answers 400 unless the body is exactly the JSON {} with a JSON content type.
    result = evaluate(served_app(tmp_path, data=(("POST", "/api/query"),)), Outside(tmp_path))
    assert result.details["data_endpoints"][0]["status"] == 200
    assert result.details["data_endpoints"][0]["rows"] == 4
    assert result.metrics["data_returned"] is True


def test_a_failing_install_skips_everything_after_it(tmp_path: Path) -> None:
    outside = Outside(tmp_path)
    touch = 'echo ran >> "$HOSTILE_DIR/ran"'
    app = served_app(
        tmp_path,
        install="echo 'npm ERR! missing peer' >&2; exit 1",
        build=touch,
        typecheck=touch,
        start=f"{touch}; exec python3 server.py",
        test=touch,
        extra='[env]\nHOSTILE_DIR = "${HOSTILE_DIR}"',
    )
    result = evaluate(app, outside)
    install = result.stage("install")
    assert install is not None
    assert (install.outcome, install.reason, install.exit_code) == (FAILED, "exited non-zero", 1)
    assert "npm ERR! missing peer" in install.log_tail
    later = {name: o for name, o in outcomes(result).items() if name != "install"}
    assert later == {
        "build": (SKIPPED, "install failed"),
        "typecheck": (SKIPPED, "install failed"),
        "runtime": (SKIPPED, "install failed"),
        "data": (SKIPPED, "install failed"),
        "data_returned": (SKIPPED, "data failed"),
        "ui": (NA, "no UI found in the files"),
        "test": (SKIPPED, "install failed"),
    }
    assert not (outside.dir / "ran").exists()
    assert not any(result.metrics[check] for check in CHECKS)


# --- timeouts -------------------------------------------------------------------

MARGIN = 10.0  # a hang may cost its timeout plus this, no more


def test_a_server_that_never_answers_costs_its_ready_timeout(tmp_path: Path) -> None:
    outside = Outside(tmp_path)
    started = time.monotonic()
    result = evaluate(copy_app("never-healthy", tmp_path), outside)
    elapsed = time.monotonic() - started

    runtime = result.stage("runtime")
    assert runtime is not None
    assert (runtime.outcome, runtime.reason) == (FAILED, "not healthy within 2s")
    assert runtime.duration_sec >= 2.0
    assert elapsed < 2.0 + MARGIN
    assert outcomes(result)["test"] == (PASSED, "")  # the evaluation went on
    assert outside.pids(), "the server never started listening"
    assert outside.survivors() == []
    assert port_is_free(result.details["port"])


def test_hanging_build_and_test_cost_their_timeouts_and_leave_nothing(tmp_path: Path) -> None:
    outside = Outside(tmp_path)
    started = time.monotonic()
    result = evaluate(copy_app("hanging", tmp_path), outside, timeouts={"build": 2.0, "test": 2.0})
    elapsed = time.monotonic() - started

    for name in ("build", "test"):
        stage = result.stage(name)
        assert stage is not None
        assert (stage.outcome, stage.reason, stage.exit_code) == (
            FAILED,
            "timed out after 2s",
            None,
        )
        assert 2.0 <= stage.duration_sec < 2.0 + MARGIN
    assert outcomes(result)["runtime"] == (FAILED, "start command exited")
    assert elapsed < 4.0 + MARGIN
    assert len(outside.pids()) == 4  # build's shell and sleep, test's shell and sleep
    assert outside.survivors() == []
    assert "build: timed out" in result.issues  # the number is in the stage, not the issue


# --- malformed manifests --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("malformed-toml", "not valid TOML"),
        ("malformed-unknown-key", "unknown key in [commands]: 'strat'"),
        ("malformed-wrong-type", "runtime.ready_timeout must be seconds in (0, 3600]"),
    ],
)
def test_a_malformed_manifest_is_an_app_failure_that_names_the_problem(
    tmp_path: Path, name: str, problem: str
) -> None:
    result = evaluate(copy_app(name, tmp_path), Outside(tmp_path))

    assert result.status is AppStatus.EVALUATED
    assert problem in result.details["manifest_error"]
    assert "klaud.toml" in result.details["manifest_error"]
    stages = outcomes(result)
    assert stages.pop("install") == (FAILED, "malformed klaud.toml")
    assert set(stages.values()) == {(NA, "malformed klaud.toml")}
    assert "install: malformed klaud.toml" in result.issues
    assert {c: result.metrics[c] for c in CHECKS} == dict.fromkeys(CHECKS)  # nothing judged
    message = verdict(result)  # the test fails, showing the exact problem
    assert message is not None and problem in message
    json.dumps(result.to_dict())


# --- whose fault ----------------------------------------------------------------


def _path_without(program: str, tmp_path: Path) -> str:
    """PATH with every other program, also where ``program`` shares a folder with node."""
    shadow = tmp_path / "path-without"
    shadow.mkdir()
    folders = []
    for folder in os.environ["PATH"].split(os.pathsep):
        if not shutil.which(program, path=folder):
            folders.append(folder)
            continue
        for entry in Path(folder).iterdir():
            if entry.name != program and not (shadow / entry.name).exists():
                (shadow / entry.name).symlink_to(entry)
        folders.append(str(shadow))
    return os.pathsep.join(folders)


def test_a_missing_package_manager_is_an_infrastructure_error_naming_it(tmp_path: Path) -> None:
    outside = Outside(tmp_path)
    path = _path_without("bun", tmp_path)
    assert shutil.which("bun", path=path) is None
    assert shutil.which("node", path=path) is not None
    with pytest.raises(InfraError, match=r"\bbun\b"):
        evaluate(copy_app("bun-lockfile", tmp_path), outside, environ=outside.environ(PATH=path))


def test_a_missing_script_of_the_app_is_the_apps_fault(tmp_path: Path) -> None:
    result = evaluate(copy_app("missing-script", tmp_path), Outside(tmp_path))

    build, test = result.stage("build"), result.stage("test")
    assert build is not None and test is not None
    assert (build.outcome, build.reason, build.exit_code) == (FAILED, "exited non-zero", 127)
    assert "missing-script.sh" in build.log_tail
    assert (test.outcome, test.exit_code) == (FAILED, 127)
    assert "klaud-no-such-tool-anywhere" in test.log_tail
    assert result.metrics["build_success"] is False


# --- flooding output --------------------------------------------------------

FLOOD_BYTES = 30_000_000
DROPPED = re.compile(r"^\[\.\.\. ([\d,]+) bytes dropped \.\.\.\]$", re.MULTILINE)


def test_a_flooding_app_gets_the_head_and_tail_of_its_output(tmp_path: Path) -> None:
    outside = Outside(tmp_path)
    environ = outside.environ(HOSTILE_FLOOD_BYTES=str(FLOOD_BYTES))
    result = evaluate(copy_app("flood", tmp_path), outside, environ=environ)

    assert outcomes(result)["build"][0] == PASSED
    assert outcomes(result)["runtime"] == (PASSED, "")
    assert outcomes(result)["test"] == (FAILED, "exited non-zero")
    for name in ("build", "runtime", "test"):
        stage = result.stage(name)
        assert stage is not None
        printed = "START" if name == "runtime" else name.upper()
        lines = stage.log_tail.splitlines()
        assert (lines[0], lines[-1]) == (f"FIRST-OF-{printed}", f"LAST-OF-{printed}")
        dropped = [int(count.replace(",", "")) for count in DROPPED.findall(stage.log_tail)]
        assert len(dropped) == 1
        assert FLOOD_BYTES - EXCERPT_CHARS < dropped[0] < FLOOD_BYTES
        assert len(stage.log_tail) <= EXCERPT_CHARS
    assert len(json.dumps(result.to_dict())) < 8 * EXCERPT_CHARS


def test_a_flood_does_not_fill_the_disk(tmp_path: Path) -> None:
    outside = Outside(tmp_path)
    environ = outside.environ(HOSTILE_FLOOD_BYTES=str(FLOOD_BYTES))
    build = evaluate(copy_app("flood", tmp_path), outside, environ=environ).stage("build")

    assert build is not None
    # The build measured the evaluation's temp folder after printing 30 MB.
    found = re.search(r"^DISK-KB (\d+)$", build.log_tail, re.MULTILINE)
    assert found is not None, build.log_tail
    assert int(found.group(1)) < 1024


# VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's (pytest's) size.
PEAK_MEMORY = """
import json, re, sys
from pathlib import Path
from pytest_klaudbiusz.apps.evaluation import EvalOptions, evaluate_app

evaluate_app(Path(sys.argv[1]), EvalOptions(json.loads(sys.argv[2]), json.loads(sys.argv[3])))
print(re.search(r"VmHWM:\\s*(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
"""


def _peak_memory_kib(app: Path, environ: dict[str, str]) -> int:
    """The peak memory of a Python process evaluating ``app`` (not counting the app's)."""
    package_root = Path(pytest_klaudbiusz.__file__).parents[1]
    done = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY, str(app), json.dumps(environ), json.dumps(FAST)],
        env={**os.environ, "PYTHONPATH": str(package_root)},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_a_flood_does_not_grow_the_harness_memory(tmp_path: Path) -> None:
    outside = Outside(tmp_path)
    app = copy_app("flood", tmp_path)
    quiet = _peak_memory_kib(app, outside.environ(HOSTILE_FLOOD_BYTES="0"))
    flood = _peak_memory_kib(app, outside.environ(HOSTILE_FLOOD_BYTES=str(FLOOD_BYTES)))

    # Three commands print 30 MB each; what is kept of each is a few MB at most.
    assert flood - quiet < 16 * 1024, (quiet, flood)


# --- failure messages a user can act on ---------------------------------------------------


def test_a_server_on_another_port_is_named_with_the_fix(tmp_path: Path) -> None:
    app = copy_app("well-behaved", tmp_path)
    (app / "klaud.toml").write_text(
        "[commands]\nstart = "
        '"echo listening on port $((PORT + 1)); PORT=$((PORT + 1)) exec python3 server.py"\n'
        '[runtime]\nhealth = "/health"\nready_timeout = 1\n'
    )
    result = evaluate(app, Outside(tmp_path))

    runtime = result.stage("runtime")
    port = result.details["port"]
    assert runtime is not None and runtime.outcome is Outcome.FAILED
    assert runtime.reason == "not healthy within 1s; its log says it listens on another port"
    assert result.details["port_hint"].startswith(
        f"the app listens on port {port + 1}, not the {port} it was given"
    )
    assert "runtime: not healthy; its log says it listens on another port" in result.issues
    message = verdict(result)
    assert message is not None and "port_env" in message


def test_a_failing_data_endpoint_is_named_by_method_path_and_status(tmp_path: Path) -> None:
    app = served_app(tmp_path, data=(("GET", "/api/rows"), ("GET", "/api/broken")))
    result = evaluate(app, Outside(tmp_path))

    data = result.stage("data")
    assert data is not None and data.outcome is Outcome.FAILED
    assert data.reason == "endpoint answered non-2xx"
    assert data.log_tail == "GET /api/broken: answered 500, 0 rows"


def test_an_unreachable_package_registry_is_an_infrastructure_error(tmp_path: Path) -> None:
    app = tmp_path / "needs-a-package"
    app.mkdir()
    (app / "package.json").write_text('{"name": "x", "dependencies": {"is-number": "7.0.0"}}')
    (app / "klaud.toml").write_text(  # a registry on a closed port, no retries
        '[env]\nnpm_config_registry = "http://127.0.0.1:9/"\nnpm_config_fetch_retries = "0"\n'
        'npm_config_cache = "${HOSTILE_DIR}/npm-cache"\n'
    )
    outside = Outside(tmp_path)
    with pytest.raises(InfraError, match=r"could not reach the package registry \(ECONNREFUSED\)"):
        evaluate(app, outside)


def test_a_suite_that_passes_on_a_rerun_is_flaky_not_failed(tmp_path: Path) -> None:
    flaky = 'if [ -f .ran ]; then exit 0; fi; touch .ran; echo "race: ids collided"; exit 1'
    result = evaluate(served_app(tmp_path, test=flaky), Outside(tmp_path))

    test = result.stage("test")
    assert test is not None and (test.outcome, test.reason) == (
        Outcome.PASSED,
        "flaky: passed on retry 1",
    )
    assert result.metrics["tests_pass"] is True
    assert "test: flaky" in result.issues
    assert "race: ids collided" in result.details["flaky_tests"]["failed_run"]


def test_a_suite_that_fails_every_time_fails_after_its_retry(tmp_path: Path) -> None:
    runs = 'echo run >> "$HOSTILE_DIR/runs"; exit 1'
    outside = Outside(tmp_path)
    app = served_app(tmp_path, test=runs, extra='[env]\nHOSTILE_DIR = "${HOSTILE_DIR}"')
    result = evaluate(app, outside)

    assert outcomes(result)["test"] == (FAILED, "exited non-zero")
    assert (outside.dir / "runs").read_text() == "run\nrun\n"  # the first run and one retry
