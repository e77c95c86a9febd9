"""Scores read from an app's files (pytest_klaudbiusz.apps.scoring)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_klaudbiusz.apps import scoring
from pytest_klaudbiusz.apps.probes import count_rows, unwrap_trpc
from pytest_klaudbiusz.apps.scoring import (
    CRITERION_ISSUES,
    appeval_100,
    count_loc,
    devx_criteria,
    find_secrets,
    has_tests,
    load_generation_metrics,
    parse_coverage,
)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


# --- count_loc ------------------------------------------------------------------------


def test_count_loc_counts_lines_not_files_across_source_kinds(tmp_path: Path) -> None:
    write(tmp_path, {
        "server/src/index.ts": "// entry\nimport x from 'x';\n\nconst a = 1;\n"
                               "/* block\n * doc\n */\nexport default a;\n",  # 3
        "client/src/App.tsx": "export function App() {\n  return <div />;\n}\n",  # 3
        "client/src/util.js": "module.exports = 1;\n",  # 1
        "client/src/Button.jsx": "\n\nexport const B = () => <button />;\n   \n",  # 1
        "app.py": "# comment\nimport os\n\n\ndef main():\n    return os.getcwd()\n",  # 3
        "config/queries/q.sql": "-- revenue\nSELECT 1\nFROM t;\n",  # 2
        "README.md": "# title\ntext\nmore text\n",
        "styles.css": "body { color: red; }\n",
        "package.json": '{\n  "name": "x"\n}\n',
    })  # fmt: skip
    assert count_loc(tmp_path) == 13


def test_count_loc_excludes_dependencies_build_output_and_lockfiles(tmp_path: Path) -> None:
    write(tmp_path, {"src/main.ts": "a();\nb();\n"})
    write(tmp_path, {
        "node_modules/lib/index.js": "x();\n" * 50,
        "client/node_modules/lib/index.tsx": "x();\n" * 50,
        "dist/main.js": "x();\n" * 50,
        "client/build/app.js": "x();\n" * 50,
        ".venv/lib/python3.11/site.py": "x = 1\n" * 50,
        "package-lock.json": '{"a": 1}\n' * 50,
        "yarn.lock": "a@1:\n" * 50,
        "bun.lock": "{}\n" * 50,
        "pnpm-lock.yaml": "a: 1\n" * 50,
    })  # fmt: skip
    assert count_loc(tmp_path) == 2


def test_count_loc_of_empty_app_is_zero(tmp_path: Path) -> None:
    assert count_loc(tmp_path) == 0


# --- parse_coverage ------------------------------------------------------------------

NODE_TAP = """\
# pass 3
# start of coverage report
# ----------------------------------------------------------
# file      | line % | branch % | funcs % | uncovered lines
# ----------------------------------------------------------
# m.js      | 100.00 |    66.67 |   50.00 |
# all files | 85.71 |    80.00 |   66.67 |
# ----------------------------------------------------------
# end of coverage report
"""
NODE_SPEC = """\
\u2139 file      | line % | branch % | funcs % | uncovered lines
\u2139 m.js      | 100.00 |    66.67 |   50.00 |
\u2139 all files |  72.50 |    80.00 |   66.67 |
\u2139 end of coverage report
"""
ISTANBUL = """\
----------|---------|----------|---------|---------|-------------------
File      | % Stmts | % Branch | % Funcs | % Lines | Uncovered Line #s
----------|---------|----------|---------|---------|-------------------
All files |    85.7 |       50 |     100 |    85.7 |
 sum.js   |    85.7 |       50 |     100 |    85.7 | 4
----------|---------|----------|---------|---------|-------------------
"""
COVERAGE_PY = """\
Name          Stmts   Miss  Cover
---------------------------------
app.py           20      2    90%
util.py          10      0   100%
---------------------------------
TOTAL            30      2    92%
"""


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (NODE_TAP, 85.71),
        (NODE_SPEC, 72.5),
        (ISTANBUL, 85.7),
        (" % Coverage report from v8\n" + ISTANBUL.replace("85.7", "61.2"), 61.2),
        ("\x1b[32;1mAll files\x1b[0m | \x1b[32;1m  93.3\x1b[0m |  80 |", 93.3),  # colours
        (COVERAGE_PY, 92.0),
        ("TOTAL   120   10   30   5   91.67%\n", 91.67),  # branch columns, --precision 2
        (COVERAGE_PY.replace("92%", "10%") + COVERAGE_PY, 92.0),  # the last summary
        (NODE_TAP + ISTANBUL.replace("85.7", "40.0"), 40.0),
    ],
)
def test_parse_coverage(output: str, expected: float) -> None:
    assert parse_coverage(output) == pytest.approx(expected)


@pytest.mark.parametrize(
    "output",
    [
        "",
        "# tests 3\n# pass 3\n",
        "3 passing (12ms)\n",
        "Ran 4 tests in 0.001s\n\nOK\n",
        "TOTAL 4 tests\n",
        "All files | Unknown |\n",
        "all files\n",
    ],
)
def test_parse_coverage_none_without_a_summary(output: str) -> None:
    assert parse_coverage(output) is None


# --- find_secrets --------------------------------------------------------------------

DAPI = "dapi" + "0123456789abcdef" * 2


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("server/src/db.ts", f"const host = 'x';\nconst t = '{DAPI}';\n"),
        (
            ".env.example",
            f"DATABRICKS_HOST=https://x.cloud.databricks.com\nDATABRICKS_TOKEN={DAPI}\n",
        ),
        (".env", "ANTHROPIC_API_KEY=sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv\n"),
        ("settings.py", "client = OpenAI(key='sk-proj1234567890abcdefghij')\n"),
        ("app.yaml", "env:\n  - name: AWS_ACCESS_KEY_ID\n    value: AKIAIOSFODNN7EXAMPLE\n"),
        ("config.json", f'{{"token": "{DAPI}"}}\n'),
        ("server/src/tests/api.test.ts", f"const t = '{DAPI}';\n"),  # a real token format
        ("src/client.ts", 'const apiKey = "f3a9c1e7b2d84f6a9c0e";\n'),
        ("server.js", "module.exports = { clientSecret: 'x9F2kLq81ZpR7mWq4TbV' };\n"),
        ("app.py", 'DB_PASSWORD = "Qm7#vT2!pX9@kL4$wZ"\n'),
    ],
)
def test_find_secrets_flags_real_values(tmp_path: Path, name: str, text: str) -> None:
    write(tmp_path, {name: text, "README.md": "no secrets here"})
    assert find_secrets(tmp_path) == [name]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            ".env.example",
            "CLIENT_SECRET=\nDATABRICKS_TOKEN=your-token-here\n"
            "DATABRICKS_HOST=https://your-workspace.cloud.databricks.com\n",
        ),
        (".env.example", 'API_KEY="abc123def456"\n'),  # a template holds examples
        (".env", "DATABRICKS_TOKEN=\n"),
        (
            "src/db.ts",
            "const token = process.env.DATABRICKS_TOKEN;\n"
            "const secret = process.env.CLIENT_SECRET ?? '';\n",
        ),
        (
            "src/cfg.ts",
            'const apiKey = "your-api-key-here";\nconst token = "<token>";\n'
            'const password = "${DB_PASSWORD}";\nconst secret = "changeme";\n',
        ),
        ("src/short.ts", 'const password = "short";\nconst key = "sk-abc";\n'),
        # made-up credentials of test files, fixtures and mock data (issue 9: no false alarms)
        ("server/src/tests/user.test.ts", "const apiKey = 'f3a9c1e7b2d84f6a9c0e';\n"),
        ("server/src/__tests__/login.ts", "const token = 'x9F2kLq81ZpR7mWq4TbV';\n"),
        ("fixtures/users.json", '{"password": "Qm7#vT2!pX9@kL4$wZ"}\n'),
        # a literal that is not a credential: words, repeats, short
        ("src/seed.ts", "const password = 'password1234567890';\n"),
        ("src/demo.ts", "const token = 'hunter2hunter2hunter2';\n"),
        ("src/near.ts", f"const notQuite = '{DAPI[:-1]}';\n"),  # dapi + 31 hex
        ("node_modules/lib/x.js", f"const t = '{DAPI}';\n"),
        ("dist/bundle.js", f"const t = '{DAPI}';\n"),
        ("notes.md", f"token {DAPI}\n"),  # not a file the app runs or configures with
    ],
)
def test_find_secrets_ignores_placeholders_and_dependencies(
    tmp_path: Path, name: str, text: str
) -> None:
    write(tmp_path, {name: text})
    assert find_secrets(tmp_path) == []


def test_find_secrets_lists_every_file_sorted(tmp_path: Path) -> None:
    write(tmp_path, {"b.py": f"T = '{DAPI}'\n", "a/c.ts": f"const t = '{DAPI}';\n",
                     "clean.ts": "export {};\n"})  # fmt: skip
    assert find_secrets(tmp_path) == ["a/c.ts", "b.py"]


def test_a_placeholder_does_not_hide_a_real_secret_after_it(tmp_path: Path) -> None:
    write(tmp_path, {"config.js": 'const apiKey = "your-key-here";\n'
                                  'const token = "abc123def456ghij7";\n'})  # fmt: skip
    assert find_secrets(tmp_path) == ["config.js"]


# --- devx criteria ------------------------------------------------------------------

LOCAL = (
    scoring.README,
    scoring.ENV_TEMPLATE,
    scoring.DEPENDENCIES_INSTALL,
    scoring.START_COMMAND,
    scoring.ENTRY_POINT,
)
DEPLOY = (
    scoring.DEPLOY_TARGET,
    scoring.DEPLOY_CONFIG,
    scoring.HEALTH_CHECK,
    scoring.NO_SECRETS,
    scoring.DEPENDENCIES_PINNED,
)


def good_app(root: Path) -> Path:
    """A Databricks app deployed through app.yaml (no Dockerfile) meeting every criterion."""
    return write(root, {
        "README.md": "# Sales\n\n## Setup\n\n    npm install\n    npm start\n",
        ".env.example": "DATABRICKS_HOST=\nDATABRICKS_TOKEN=your-token-here\nCLIENT_SECRET=\n",
        "package.json": json.dumps({"scripts": {"start": "node server/src/index.js"},
                                    "dependencies": {"express": "^4.19.0"}}),
        "package-lock.json": "{}",
        "server/src/index.js": "const routes = require('./routes');\nroutes.listen();\n",
        "server/src/routes.js": "app.get('/api/health', (req, res) => res.json({ok: true}));\n",
        "app.yaml": "command: ['npm', 'run', 'start']\n",
    })  # fmt: skip


def score(
    app: Path, *, install_passed: bool = True, has_start: bool = True, health: bool = False
) -> tuple[dict[str, bool], dict[str, bool]]:
    local, deploy = devx_criteria(
        app, install_passed=install_passed, has_start=has_start, health_declared=health
    )
    return {c["criterion"]: c["passed"] for c in local}, {
        c["criterion"]: c["passed"] for c in deploy
    }


def failing(app: Path, **kwargs: bool) -> set[str]:
    local, deploy = score(app, **kwargs)
    return {name for name, ok in {**local, **deploy}.items() if not ok}


def test_devx_criteria_shape_and_full_marks(tmp_path: Path) -> None:
    local, deploy = devx_criteria(
        good_app(tmp_path), install_passed=True, has_start=True, health_declared=False
    )
    assert [c["criterion"] for c in local] == list(LOCAL)
    assert [c["criterion"] for c in deploy] == list(DEPLOY)
    assert all(c["passed"] is True for c in local + deploy)
    assert set(CRITERION_ISSUES) == set(LOCAL + DEPLOY)
    assert not (tmp_path / "Dockerfile").exists()  # app.yaml alone earns the deployment points


def remove(name: str) -> Callable[[Path], Any]:
    return lambda app: (app / name).unlink()


def put(name: str, text: str) -> Callable[[Path], Any]:
    return lambda app: write(app, {name: text})


@pytest.mark.parametrize(
    ("change", "kwargs", "expected"),
    [
        (remove("README.md"), {}, {scoring.README}),
        (put("README.md", "# Sales dashboard\n\nShows revenue by region.\n"), {}, {scoring.README}),
        (remove(".env.example"), {}, {scoring.ENV_TEMPLATE}),
        (None, {"install_passed": False}, {scoring.DEPENDENCIES_INSTALL}),
        (None, {"has_start": False}, {scoring.START_COMMAND}),
        (
            lambda app: (app / "server/src/index.js").rename(app / "server/src/boot.js"),
            {},
            {scoring.ENTRY_POINT},
        ),
        (remove("app.yaml"), {}, {scoring.DEPLOY_TARGET}),  # charged once, not twice
        (
            lambda app: (
                put("app.yaml", "env: []\n")(app),
                put("package.json", '{"dependencies": {"a": "1"}}')(app),
            ),
            {},
            {scoring.DEPLOY_CONFIG},
        ),
        (remove("server/src/routes.js"), {}, {scoring.HEALTH_CHECK}),
        (put("server/src/db.js", f"const token = '{DAPI}';\n"), {}, {scoring.NO_SECRETS}),
        (remove("package-lock.json"), {}, {scoring.DEPENDENCIES_PINNED}),
    ],
)
def test_each_devx_criterion_can_fail_alone(
    tmp_path: Path,
    change: Callable[[Path], Any] | None,
    kwargs: dict[str, bool],
    expected: set[str],
) -> None:
    app = good_app(tmp_path)
    if change:
        change(app)
    assert failing(app, **kwargs) == expected
    assert all(CRITERION_ISSUES[name].startswith("devx: ") for name in expected)


def test_readme_variants_with_setup_words_pass(tmp_path: Path) -> None:
    app = good_app(tmp_path)
    (app / "README.md").unlink()
    write(app, {"readme.md": "To try it: pip install -r requirements.txt\n"})
    assert scoring.README not in failing(app)


def test_entry_point_from_package_main(tmp_path: Path) -> None:
    app = good_app(tmp_path)
    (app / "server/src/index.js").rename(app / "server/src/boot.js")
    write(app, {"package.json": json.dumps({"main": "server/src/boot.js",
                                            "scripts": {"start": "node ."}})})  # fmt: skip
    assert scoring.ENTRY_POINT not in failing(app)
    write(app, {"package.json": json.dumps({"main": "missing.js", "scripts": {"start": "x"}})})
    assert scoring.ENTRY_POINT in failing(app)


def test_python_entry_point(tmp_path: Path) -> None:
    write(tmp_path, {"main.py": "print(1)\n"})
    assert scoring.ENTRY_POINT not in failing(tmp_path)


def test_dockerfile_is_a_deployment_target_and_its_cmd_a_command(tmp_path: Path) -> None:
    app = good_app(tmp_path)
    (app / "app.yaml").unlink()
    write(app, {"Dockerfile": "FROM node:20\nCOPY . .\nRUN npm ci\n"})
    assert failing(app) == {scoring.DEPLOY_CONFIG}
    write(app, {"Dockerfile": 'FROM node:20\nCOPY . .\nRUN npm ci\nCMD ["npm", "start"]\n'})
    assert failing(app) == set()
    write(app, {"Dockerfile": 'FROM python:3.11\nENTRYPOINT ["python", "app.py"]\n'})
    assert failing(app) == set()


def test_app_yaml_without_command_uses_databricks_defaults(tmp_path: Path) -> None:
    app = good_app(tmp_path)
    write(app, {"app.yaml": "env:\n  - name: DATABRICKS_WAREHOUSE_ID\n    value: abc\n"})
    assert failing(app) == set()  # Node app: Databricks runs `npm run start`
    python_app = write(tmp_path / "py", {"app.yaml": "env: []\n"})
    assert scoring.DEPLOY_CONFIG in failing(python_app)  # nothing Databricks could run
    write(python_app, {"app.py": "print(1)\n"})  # Databricks runs `python app.py`
    assert scoring.DEPLOY_CONFIG not in failing(python_app)


def test_health_check_declared_or_in_source(tmp_path: Path) -> None:
    app = good_app(tmp_path)
    (app / "server/src/routes.js").unlink()
    assert scoring.HEALTH_CHECK in failing(app)
    assert scoring.HEALTH_CHECK not in failing(app, health=True)  # klaud.toml runtime.health
    for source in (
        "router.get('/healthz', ok);\n",
        '@app.route("/health")\ndef health(): return "ok"\n',
        "export const appRouter = router({\n"
        "  healthcheck: publicProcedure.query(() => 'ok'),\n});\n",
    ):
        write(app, {"server/src/routes.js": source})
        assert scoring.HEALTH_CHECK not in failing(app), source
    write(app, {"server/src/routes.js": "const healthy = true; // wealth\n"})
    assert scoring.HEALTH_CHECK in failing(app)


def test_placeholder_env_template_gains_a_point_and_costs_none(tmp_path: Path) -> None:
    app = good_app(tmp_path)
    (app / ".env.example").unlink()
    local, deploy = score(app)
    assert not local[scoring.ENV_TEMPLATE] and deploy[scoring.NO_SECRETS]
    write(app, {".env.example": "CLIENT_ID=\nCLIENT_SECRET=\nDATABRICKS_TOKEN=your-token-here\n"})
    local, deploy = score(app)
    assert local[scoring.ENV_TEMPLATE] and deploy[scoring.NO_SECRETS]


def test_real_token_in_env_template_costs_the_secrets_point(tmp_path: Path) -> None:
    app = good_app(tmp_path)
    write(app, {".env.example": f"DATABRICKS_TOKEN={DAPI}\n"})
    assert failing(app) == {scoring.NO_SECRETS}


@pytest.mark.parametrize(
    ("files", "pinned"),
    [
        ({}, True),  # nothing to pin
        ({"package.json": '{"dependencies": {"a": "^1"}}'}, False),
        ({"package.json": '{"devDependencies": {"a": "^1"}}', "yarn.lock": ""}, True),
        ({"package.json": '{"name": "no deps"}'}, True),
        ({"requirements.txt": "flask==3.0.0\n# pinned\n\nrequests==2.32.0\n"}, True),
        ({"requirements.txt": "flask==3.0.0\nrequests>=2\n"}, False),
        ({"requirements.txt": "flask\n", "uv.lock": ""}, True),
        (
            {
                "server/package.json": '{"dependencies": {"a": "^1"}}',
                "client/package.json": '{"dependencies": {"b": "^1"}}',
            },
            False,
        ),
        (
            {
                "server/package.json": '{"dependencies": {"a": "^1"}}',
                "server/package-lock.json": "{}",
                "client/package.json": '{"dependencies": {"b": "^1"}}',
                "client/package-lock.json": "{}",
            },
            True,
        ),  # per-folder installs lock per folder
        (
            {
                "server/package.json": '{"dependencies": {"a": "^1"}}',
                "server/package-lock.json": "{}",
                "client/package.json": '{"dependencies": {"b": "^1"}}',
            },
            False,
        ),
        ({"package.json": "{broken"}, True),
    ],
)
def test_dependencies_pinned(tmp_path: Path, files: dict[str, str], pinned: bool) -> None:
    write(tmp_path, files)
    assert (scoring.DEPENDENCIES_PINNED not in failing(tmp_path)) is pinned


def test_has_tests(tmp_path: Path) -> None:
    write(tmp_path, {"src/index.ts": "", "node_modules/x/a.test.js": "", "testing.py": ""})
    assert not has_tests(tmp_path)
    for name in ("src/a.test.ts", "src/B.spec.tsx", "tests/test_app.py", "app_test.py",
                 "server/x.test.mjs"):  # fmt: skip
        app = write(tmp_path / name.replace("/", "_"), {name: ""})
        assert has_tests(app), name


# --- appeval_100 ----------------------------------------------------------------------


def metrics(**values: Any) -> dict[str, Any]:
    base = {
        "build_success": True,
        "runtime_success": True,
        "type_safety": True,
        "tests_pass": True,
        "databricks_connectivity": True,
        "local_runability_score": 5,
        "deployability_score": 5,
    }
    return {**base, **values}


def test_appeval_all_pass_is_100() -> None:
    assert appeval_100(metrics()) == 100.0
    assert appeval_100(metrics(type_safety=None, databricks_connectivity=None)) == 100.0


def test_appeval_build_failure() -> None:
    # R = (1e-6 · 1 · 1)^(1/3) = 0.01 (type safety and connectivity n/a); D = 1; G = 0.25
    value = appeval_100(
        metrics(build_success=False, type_safety=None, databricks_connectivity=None)
    )
    assert value == pytest.approx(100 * (0.7 * 0.01 + 0.3) * 0.25, abs=0.005)  # 7.675


def test_appeval_realistic_build_failure_with_skipped_stages() -> None:
    # build, runtime, connectivity false, tests pass: R = (1e-18)^(1/4), G = 0.25·0.25·0.5
    value = appeval_100(metrics(build_success=False, runtime_success=False, type_safety=None,
                                databricks_connectivity=False))  # fmt: skip
    assert value == pytest.approx(100 * (0.7 * 10**-4.5 + 0.3) * 0.03125, abs=0.005)  # 0.94


def test_appeval_type_safety_none_is_left_out_of_r() -> None:
    # tests fail: R = (1e-6)^(1/4) = 0.0316 without type safety, (1e-6)^(1/5) = 0.0631 with it
    without = appeval_100(metrics(tests_pass=False, type_safety=None))
    assert without == pytest.approx(100 * (0.7 * 10**-1.5 + 0.3), abs=0.005)  # 32.21
    assert appeval_100(metrics(tests_pass=False)) == pytest.approx(
        100 * (0.7 * 10**-1.2 + 0.3), abs=0.005
    )  # 34.42
    assert appeval_100(metrics(tests_pass=False, type_safety=False)) == pytest.approx(
        100 * (0.7 * 10**-2.4 + 0.3), abs=0.005
    )  # 30.28


def test_appeval_connectivity_none_leaves_its_g_factor_out() -> None:
    assert appeval_100(metrics(databricks_connectivity=None)) == 100.0
    # connectivity false: R = (1e-6)^(1/5), G = 0.5
    assert appeval_100(metrics(databricks_connectivity=False)) == pytest.approx(
        100 * (0.7 * 10**-1.2 + 0.3) * 0.5, abs=0.005
    )  # 17.21


def test_appeval_devx_geometric_mean() -> None:
    # D = sqrt(3/5 · 4/5) = 0.6928
    assert appeval_100(metrics(local_runability_score=3, deployability_score=4)) == pytest.approx(
        100 * (0.7 + 0.3 * (0.6 * 0.8) ** 0.5), abs=0.005
    )  # 90.78
    assert appeval_100(metrics(local_runability_score=0)) == 70.0


def test_appeval_runtime_failure() -> None:
    # runtime and connectivity fail: R = (1e-12)^(1/5); G = 0.25 · 0.5
    value = appeval_100(metrics(runtime_success=False, databricks_connectivity=False))
    assert value == pytest.approx(100 * (0.7 * 10**-2.4 + 0.3) * 0.125, abs=0.005)  # 3.79


# --- generation metrics -------------------------------------------------------------


def test_generation_metrics_valid(tmp_path: Path) -> None:
    write(tmp_path, {"generation_metrics.json": json.dumps({
        "cost_usd": 1.25, "input_tokens": 1000, "output_tokens": 200, "turns": 7,
        "generation_time_sec": None, "model": "claude-x", "unrelated": [1, 2],
    })})  # fmt: skip
    data, problem = load_generation_metrics(tmp_path)
    assert problem is None
    assert data == {"cost_usd": 1.25, "input_tokens": 1000, "output_tokens": 200, "turns": 7,
                    "model": "claude-x"}  # fmt: skip


def test_generation_metrics_missing(tmp_path: Path) -> None:
    assert load_generation_metrics(tmp_path) == (None, None)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{cost: 1}", "generation_metrics.json is not valid JSON"),
        ("[1, 2]", "generation_metrics.json is not an object"),
        ('{"cost_usd": "1.25"}', "generation_metrics.json: cost_usd is not a number"),
        ('{"turns": true}', "generation_metrics.json: turns is not a number"),
        ('{"input_tokens": NaN}', "generation_metrics.json: input_tokens is not a number"),
        ('{"output_tokens": Infinity}', "generation_metrics.json: output_tokens is not a number"),
    ],
)
def test_generation_metrics_unusable(tmp_path: Path, text: str, problem: str) -> None:
    write(tmp_path, {"generation_metrics.json": text})
    assert load_generation_metrics(tmp_path) == (None, problem)


def test_generation_metrics_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "generation_metrics.json").write_bytes(b'{"cost_usd": "\xff"}')
    assert load_generation_metrics(tmp_path) == (None, "generation_metrics.json is not valid JSON")


# --- rows in a data endpoint's answer (probes.count_rows) ----------------------------

ROWS = [{"region": "EU", "sales": 10}, {"region": "US", "sales": 20}]


@pytest.mark.parametrize(
    ("value", "rows"),
    [
        (ROWS, 2),
        ({"result": {"data": ROWS}}, 2),  # tRPC
        ({"result": {"data": {"json": ROWS}}}, 2),  # tRPC with superjson
        ({"result": {"data": {"json": ROWS, "meta": {"values": {}}}}}, 2),
        ({"data": ROWS}, 2),
        ({"rows": ROWS, "schema": ["region", "sales"]}, 2),
        ({"items": ROWS, "total": 2}, 2),
        ({"results": ROWS[:1]}, 1),
        ({"data": {"rows": ROWS}}, 2),
        ({"result": {"data": {"json": {"data": ROWS}}}}, 2),
        ({"total": 5, "currency": "EUR"}, 1),  # an aggregate
        ({"result": {"data": {"total": 0}}}, 0),  # an all-zero stats object is no row
        ({"total_orders": 0, "revenue": 0.0, "pending": False}, 0),
        ({"total": 0, "currency": "EUR"}, 1),
        ({"kpis": {"revenue": 10}, "trend": ROWS}, 2),  # sections: the largest
        ({"kpis": {"revenue": 10}, "trend": []}, 1),
        ({"total": 5, "series": []}, 1),
        ([], 0),
        ({}, 0),
        (None, 0),
        ({"result": {"data": []}}, 0),
        ({"result": {"data": None}}, 0),
        ({"result": {"data": {"json": None}}}, 0),
        ({"data": []}, 0),
        ({"data": None}, 0),
        ({"rows": {}}, 0),
        ({"total": None}, 0),  # SUM over no rows
        ({"trend": [], "top": []}, 0),
        ({"error": {"message": "warehouse unreachable"}}, 0),
        ({"error": {"json": {"message": "INTERNAL_SERVER_ERROR", "code": -32603}}}, 0),  # tRPC
        ({"errors": [{"message": "bad"}], "data": ROWS}, 0),
        ({"data": {"error": "no warehouse"}}, 0),
        ("ok", 0),
        (42, 0),
    ],
)
def test_count_rows(value: Any, rows: int) -> None:
    assert count_rows(value) == rows


def test_unwrap_trpc() -> None:
    assert unwrap_trpc({"result": {"data": ROWS}}) == ROWS
    assert unwrap_trpc({"result": {"data": {"json": ROWS}}}) == ROWS
    assert unwrap_trpc({"result": {"data": {"json": ROWS, "meta": {}}}}) == ROWS
    # a "json" key that is the data itself, among others, is not a superjson envelope
    payload = {"json": [1], "other": 2}
    assert unwrap_trpc({"result": {"data": payload}}) == payload
    for plain in (ROWS, {"data": ROWS}, {"result": ROWS}, {"result": {"rows": ROWS}}, None):
        assert unwrap_trpc(plain) is plain


# --- criteria details, env template variants, generation parsing (issue #4) ---------------


def test_secret_criterion_names_the_files_never_the_values(tmp_path: Path) -> None:
    app = good_app(tmp_path)
    write(app, {"server/src/db.js": f"const token = '{DAPI}';\n",
                "src/settings.py": 'DB_PASSWORD = "Qm7#vT2!pX9@kL4$wZ"\n'})  # fmt: skip
    _, deploy = devx_criteria(app, install_passed=True, has_start=True, health_declared=False)
    secrets = next(c for c in deploy if c["criterion"] == scoring.NO_SECRETS)
    assert secrets == {
        "criterion": scoring.NO_SECRETS,
        "passed": False,
        "files": ["server/src/db.js", "src/settings.py"],
    }
    assert DAPI not in json.dumps(deploy) and "Qm7#vT2" not in json.dumps(deploy)
    others = [c for c in deploy if c["criterion"] != scoring.NO_SECRETS]
    assert all(set(c) == {"criterion", "passed"} for c in others)


@pytest.mark.parametrize(
    ("template", "counts"),
    [
        (".env.example", True),
        (".env.template", True),
        (".env.sample", True),
        (".env", False),  # the real thing, not a template
        ("env.example", False),
    ],
)
def test_env_template_names(tmp_path: Path, template: str, counts: bool) -> None:
    app = good_app(tmp_path)
    (app / ".env.example").unlink()
    write(app, {template: "DATABRICKS_HOST=\nDATABRICKS_TOKEN=\n"})
    assert (scoring.ENV_TEMPLATE not in failing(app)) is counts
    assert scoring.NO_SECRETS not in failing(app)  # placeholders are never secrets


def test_deployability_fits_the_platform(tmp_path: Path) -> None:
    """app.yaml alone, a Dockerfile alone, or both: each a full deployment target."""
    app = good_app(tmp_path / "databricks")
    assert not {scoring.DEPLOY_TARGET, scoring.DEPLOY_CONFIG} & failing(app)
    docker = good_app(tmp_path / "docker")
    (docker / "app.yaml").unlink()
    write(docker, {"Dockerfile": 'FROM node:20\nCOPY . .\nCMD ["npm", "start"]\n'})
    assert not {scoring.DEPLOY_TARGET, scoring.DEPLOY_CONFIG} & failing(docker)
    neither = good_app(tmp_path / "neither")
    (neither / "app.yaml").unlink()
    assert scoring.DEPLOY_TARGET in failing(neither)
    assert scoring.DEPLOY_CONFIG not in failing(neither)  # the missing target is charged once
    assert CRITERION_ISSUES[scoring.DEPLOY_CONFIG] == (
        "devx: deployment config without a start command"
    )


def test_issue_strings_carry_no_numbers() -> None:
    assert not any(ch.isdigit() for issue in CRITERION_ISSUES.values() for ch in issue)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"cost_usd": 0, "turns": 2, "model": "m", "extra": "x"},
         {"cost_usd": 0, "turns": 2, "model": "m"}),
        ({"cache_read_tokens": 10, "cache_creation_tokens": 5, "generation_time_sec": 1.5,
          "model": 3}, {"cache_read_tokens": 10, "cache_creation_tokens": 5,
                        "generation_time_sec": 1.5}),  # a model that is not a string: left out
        ({}, {}),
    ],
)  # fmt: skip
def test_parse_generation_metrics(data: dict[str, Any], expected: dict[str, Any]) -> None:
    assert scoring.parse_generation_metrics(data, "x") == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1], "bulk entry 3 is not an object"),
        ({"turns": "7"}, "bulk entry 3: turns is not a number"),
        ({"cost_usd": float("inf")}, "bulk entry 3: cost_usd is not a number"),
        ({"input_tokens": False}, "bulk entry 3: input_tokens is not a number"),
    ],
)
def test_parse_generation_metrics_names_where(data: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        scoring.parse_generation_metrics(data, "bulk entry 3")
    assert str(info.value) == message
