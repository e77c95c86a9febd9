"""Secret values an app is given never come back in what the evaluation reports."""

from __future__ import annotations

import json
import os
from base64 import b64encode, urlsafe_b64encode
from pathlib import Path
from urllib.parse import quote, quote_plus

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


def test_the_evaluators_own_secrets_are_redacted_in_their_encodings_too(tmp_path: Path) -> None:
    """Values the app was never given (it found them somewhere), printed raw, base64-encoded
    at each of the three alignments inside a longer text, URL-safe base64, URL-encoded."""
    key, password = "sk-ant-api03 key/with+chars", "the-evaluator-password"
    printed = [key, password, quote(key, safe=""), quote_plus(key)]
    for prefix in ("", "a", "ab"):
        printed += [b64encode(f"{prefix}{key}!".encode()).decode(),
                    urlsafe_b64encode(f"{prefix}{password}?".encode()).decode()]  # fmt: skip
    app = tmp_path / "apps" / "finder"
    app.mkdir(parents=True)
    lines = "; ".join(f"echo 'found {text} here'" for text in printed)
    (app / "klaud.toml").write_text(f'[commands]\nbuild = "{lines}"\ntest = "true"\n')
    environ = {
        "PATH": os.environ["PATH"],
        "ANTHROPIC_API_KEY": key,
        "SOME_SERVICE_PASSWORD": password,
        "SOME_SETTING": "not-a-secret-value",
    }
    result = evaluate_app(app, EvalOptions(environ))

    build = result.stage("build")
    assert build is not None and build.outcome == "passed"
    shown = build.log_tail.splitlines()
    assert len(shown) == len(printed)
    for text, line in zip(printed, shown, strict=True):
        assert text not in line and "[REDACTED]" in line, line
        assert line.startswith("found ") and line.endswith(" here")
    unrelated = evaluate_app(app, EvalOptions({"PATH": os.environ["PATH"]}))
    assert unrelated.stage("build").log_tail.splitlines()[0] == f"found {key} here"  # type: ignore[union-attr]
