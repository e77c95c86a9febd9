"""What an app cannot do to the machine or the user: outlive its evaluation, read the
evaluator's secrets, or change the app folder it was evaluated from.

Real hostile apps (tests/hostile_apps) under the real evaluate_app; the processes
they leave behind are looked for among all processes of the machine.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psutil
import pytest
from hostile_apps import Outside, copy_app, evaluate, outcomes, tree_digest

from pytest_klaudbiusz.apps.processes import port_is_free
from pytest_klaudbiusz.results.model import AppResult

# --- nothing outlives the evaluation ------------------------------------------------


def assert_nothing_left(result: AppResult, outside: Outside) -> None:
    assert outside.survivors() == []
    for pid in outside.pids():
        assert not psutil.pid_exists(pid) or outside.marker not in _describe(pid)
    assert result.details["port_released"] is True
    assert port_is_free(result.details["port"])


def _describe(pid: int) -> str:
    try:
        proc = psutil.Process(pid)
        return f"{proc.cmdline()} {proc.environ()}"
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return ""


RUNNING = {("passed", "")}


@pytest.mark.parametrize(
    ("name", "runtime"),
    [
        ("daemon-setsid", RUNNING),
        ("daemon-double-fork", RUNNING),
        ("daemon-env-cleared", RUNNING),
        # Its start command exits once the server listens; a health check may come first.
        ("daemon-nohup", {("failed", "start command exited after answering"), *RUNNING}),
    ],
    ids=["setsid", "double-fork", "env-cleared", "nohup"],
)
def test_a_daemonized_server_does_not_survive_the_evaluation(
    tmp_path: Path, name: str, runtime: set[tuple[str, str]]
) -> None:
    outside = Outside(tmp_path)
    result = evaluate(copy_app(name, tmp_path), outside)

    assert len(outside.pids()) == 1, "the daemon never started listening"
    assert outcomes(result)["runtime"] in runtime
    assert outcomes(result)["test"] == ("passed", "")  # the evaluation went on to the end
    assert_nothing_left(result, outside)


def test_a_background_process_left_by_the_build_is_gone_before_the_next_stage(
    tmp_path: Path,
) -> None:
    outside = Outside(tmp_path)
    result = evaluate(copy_app("build-leftover", tmp_path), outside)

    assert len(outside.pids()) == 1
    assert outcomes(result)["build"] == ("passed", "")
    # The test command fails while the build's `sleep 1000` is still alive.
    assert outcomes(result)["test"] == ("passed", "")
    assert_nothing_left(result, outside)


def test_processes_the_harness_had_before_the_app_are_left_alone(tmp_path: Path) -> None:
    # Say a fixture's server, started by the same process that evaluates apps.
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        outside = Outside(tmp_path)
        result = evaluate(copy_app("daemon-env-cleared", tmp_path), outside)
        assert result.metrics["runtime_success"] is True
        assert_nothing_left(result, outside)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


# --- the environment ------------------------------------------------------------------

SECRETS = {
    "ANTHROPIC_API_KEY": "sk-ant-secret-0001",
    "MLFLOW_TRACKING_TOKEN": "mlflow-secret-0002",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-0003",
    "OPENAI_API_KEY": "sk-openai-secret-0004",
}
DATABRICKS = {
    "DATABRICKS_HOST": "https://example.cloud.databricks.com",
    "DATABRICKS_TOKEN": "dapi-app-needs-this",
    "DATABRICKS_WAREHOUSE_ID": "abc123",
}


def _dumps(outside: Outside) -> dict[str, dict[str, str]]:
    dumps = {}
    for stage in ("build", "start", "test"):
        text = (outside.dir / f"{stage}.env").read_text()
        for value in SECRETS.values():
            assert value not in text, f"a secret reached the app's {stage} command"
        dumps[stage] = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return dumps


def test_the_app_gets_its_port_and_warehouse_and_never_the_secrets(tmp_path: Path) -> None:
    outside = Outside(tmp_path)
    environ = outside.environ(**SECRETS, **DATABRICKS, SOME_OTHER="other-value")
    result = evaluate(copy_app("env-dump", tmp_path), outside, environ=environ)

    assert result.metrics["runtime_success"] is True
    port = str(result.details["port"])
    for stage, env in _dumps(outside).items():
        assert {k: env.get(k) for k in DATABRICKS} == DATABRICKS, stage
        ports = [env.get(k) for k in ("PORT", "DATABRICKS_APP_PORT", "SERVER_PORT", "VITE_PORT")]
        assert ports == [port] * 4, stage
        assert env["FROM_OTHER"] == "prefix-other-value-suffix"
        assert env["DUMP_DIR"] == str(outside.dir)
        assert not set(SECRETS) & set(env), stage
        assert "SOME_OTHER" not in env  # only what the manifest or the passthrough names
        assert "HOSTILE_MARKER" not in env
        assert env.get("STOLEN_KEY", "") == ""
        assert env["STOLEN_AWS"] == "x"
        assert env["PATH"].endswith(os.environ["PATH"])
    assert result.details["secrets_refused"] == [
        "ANTHROPIC_API_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "OPENAI_API_KEY",
    ]


def test_the_passthrough_lets_more_variables_through_but_never_secrets(tmp_path: Path) -> None:
    outside = Outside(tmp_path)
    environ = outside.environ(**SECRETS, SOME_OTHER="other-value", SOME_URL="postgres://db")
    result = evaluate(
        copy_app("env-dump", tmp_path),
        outside,
        environ=environ,
        env_passthrough=("SOME_*", "ANTHROPIC_*", "MLFLOW_*", "*_KEY"),
    )
    assert result.metrics["runtime_success"] is True
    for env in _dumps(outside).values():
        assert (env.get("SOME_OTHER"), env.get("SOME_URL")) == ("other-value", "postgres://db")
        assert not set(SECRETS) & set(env)
        assert not any(k.startswith("DATABRICKS_") and k != "DATABRICKS_APP_PORT" for k in env)


# --- the working copy -------------------------------------------------------------------


def test_an_app_that_rewrites_its_folder_leaves_the_original_unchanged(tmp_path: Path) -> None:
    outside = Outside(tmp_path)
    app = copy_app("scribbler", tmp_path)
    before = tree_digest(app)

    result = evaluate(app, outside)

    assert outcomes(result)["install"] == ("passed", "")
    assert outcomes(result)["build"] == ("passed", "")
    # The test command checks that the start command deleted klaud.toml (in the copy).
    assert outcomes(result)["test"] == ("passed", "")
    assert tree_digest(app) == before


def test_links_out_of_the_app_are_not_copied_and_nothing_is_written_through_them(
    tmp_path: Path,
) -> None:
    outside = Outside(tmp_path)
    secret_dir = tmp_path / "user-files"
    secret_dir.mkdir()
    (secret_dir / "secret.txt").write_text("top secret\n")
    app = copy_app("link-writer", tmp_path)
    (app / "abs_link").symlink_to(secret_dir / "secret.txt")
    (app / "rel_link").symlink_to(Path("..", "user-files", "secret.txt"))
    (app / "dir_link").symlink_to(Path("..", "user-files"), target_is_directory=True)
    (app / "abs_inside_link").symlink_to(app / "data" / "inside.txt")
    (app / "inside_link").symlink_to(Path("data", "inside.txt"))
    before, secrets_before = tree_digest(app), tree_digest(secret_dir)

    result = evaluate(app, outside)

    assert sorted(result.details["links_not_copied"]) == [
        "abs_inside_link",
        "abs_link",
        "dir_link",
        "rel_link",
    ]
    assert outcomes(result)["build"] == ("passed", "")  # inside_link was kept
    assert outcomes(result)["test"] == ("passed", "")
    assert (secret_dir / "secret.txt").read_text() == "top secret\n"
    assert tree_digest(secret_dir) == secrets_before
    assert tree_digest(app) == before
    assert (app / "data" / "inside.txt").read_text() == "original\n"


def test_a_relative_link_that_climbs_out_and_back_in_is_not_copied(tmp_path: Path) -> None:
    # From the app folder, ../../../... climbs to / and back down into the app; from a
    # working copy elsewhere the same text reaches the original app folder.
    outside = Outside(tmp_path)
    app = copy_app("link-writer", tmp_path)
    target = app / "data" / "inside.txt"
    climb = Path(*[".."] * len(app.parts), *target.parts[1:])
    (app / "inside_link").symlink_to(climb)
    assert (app / "inside_link").resolve() == target
    before = tree_digest(app)

    result = evaluate(app, outside)

    assert "inside_link" in result.details.get("links_not_copied", [])
    assert target.read_text() == "original\n"
    assert tree_digest(app) == before


def test_a_link_loop_is_not_copied_and_does_not_break_the_evaluation(tmp_path: Path) -> None:
    outside = Outside(tmp_path)
    app = copy_app("link-writer", tmp_path)
    (app / "loop_a").symlink_to("loop_b")
    (app / "loop_b").symlink_to("loop_a")
    (app / "inside_link").symlink_to(Path("data", "inside.txt"))

    result = evaluate(app, outside)

    assert sorted(result.details["links_not_copied"]) == ["loop_a", "loop_b"]
    assert outcomes(result)["build"] == ("passed", "")


def test_an_app_that_keeps_spawning_processes_leaves_none_behind(tmp_path: Path) -> None:
    outside = Outside(tmp_path)
    result = evaluate(copy_app("respawner", tmp_path), outside)

    assert outcomes(result)["runtime"] == ("failed", "not healthy within 2s")
    assert len(outside.pids()) > 10
    assert_nothing_left(result, outside)
