"""Secret values an app is given never come back in what the evaluation reports."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pytest_klaudbiusz.apps.evaluation import EvalOptions, evaluate_app

TOKEN = "dapi0123456789abcdef0123456789abcdef"
PASSWORD = "hunter2-correct-horse"


def test_printed_secrets_are_redacted_from_log_tails(tmp_path: Path) -> None:
    app = tmp_path / "apps" / "leaky"
    app.mkdir(parents=True)
    (app / "klaud.toml").write_text(
        "[commands]\n"
        'build = "echo token=$DATABRICKS_TOKEN; echo pw=$DB_PASSWORD; echo port=$PORT"\n'
        'test = "echo $DATABRICKS_TOKEN >&2; exit 1"\n'
    )
    environ = {
        "PATH": os.environ["PATH"],
        "DATABRICKS_TOKEN": TOKEN,
        "DB_PASSWORD": PASSWORD,
    }
    result = evaluate_app(app, EvalOptions(environ, env_passthrough=("DB_PASSWORD",)))

    build, test = result.stage("build"), result.stage("test")
    assert build is not None and test is not None
    assert "token=[REDACTED]" in build.log_tail
    assert "pw=[REDACTED]" in build.log_tail
    assert f"port={result.details['port']}" in build.log_tail  # not a secret: kept
    assert test.log_tail.strip() == "[REDACTED]"
    everything = json.dumps(result.to_dict())
    assert TOKEN not in everything and PASSWORD not in everything
