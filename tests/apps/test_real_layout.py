"""The generated layout (tRPC + bun + drizzle/PostgreSQL, no manifest), end to end.

The team's sample app ``evals/apps/tasks-bun-trpc`` and variants of it, each one small
change away, that fail one rule each the way real generated apps do: a server on
another port than its variable says, failing tests, a type error that bun runs anyway,
a query the database cannot answer, no seed script. One real pytest session under
``-n 2`` evaluates them all with real bun, a real PostgreSQL and nothing written by
hand; every rule passes in one app and fails (or is null) in another.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import NO_TRACKING, REPO, apps_by_name, checks, make_suite, read_report, run

pytestmark = pytest.mark.e2e

SAMPLE = REPO / "evals" / "apps" / "tasks-bun-trpc"

INDEX = "server/src/index.ts"
HANDLERS = "server/src/handlers/tasks.ts"
TEST = "server/src/tests/tasks.test.ts"
SERVER_PACKAGE = "server/package.json"

#: variant -> (file, text replaced, replacement)
VARIANTS: dict[str, tuple[str, str, str]] = {
    "wrong-port": (
        INDEX,
        "const port = Number(process.env['SERVER_PORT'] || 2022);",
        "const port = Number(process.env['SERVER_PORT'] || 2022) + 1;",
    ),
    "failing-tests": (TEST, "toEqual({ total: 1, done: 1 })", "toEqual({ total: 1, done: 0 })"),
    "type-error": (
        HANDLERS,
        "export const listTasks = () =>",
        "export const taskCount: number = 'many';\nexport const listTasks = () =>",
    ),
    "broken-query": (  # a column the schema does not have: the query answers 500
        HANDLERS,
        "db.select().from(projects).orderBy(projects.id);",
        "db.select().from(projects).where(sql`archived = false`);",
    ),
    "no-seed": (SERVER_PACKAGE, '"db:seed": "bun run src/seed.ts"', '"seed-later": "true"'),
}


def make_variant(apps: Path, name: str) -> None:
    app = apps / f"tasks-{name}"
    shutil.copytree(SAMPLE, app, ignore=shutil.ignore_patterns("node_modules", "dist"))
    rel, old, new = VARIANTS[name]
    path = app / rel
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{name}: the sample app changed; update its variant"
    if name == "broken-query":
        text = "import { sql } from 'drizzle-orm';\n" + text
    path.write_text(text.replace(old, new), encoding="utf-8")
    if name == "no-seed":  # the root script forwards to the server's
        root = app / "package.json"
        root.write_text(root.read_text().replace('"db:seed"', '"seed-later"'), encoding="utf-8")


def test_the_generated_layout_is_judged_right_with_nothing_written_by_hand(
    pytester: pytest.Pytester,
) -> None:
    apps = pytester.path / "apps"
    shutil.copytree(SAMPLE, apps / SAMPLE.name, ignore=shutil.ignore_patterns("node_modules"))
    for name in VARIANTS:
        make_variant(apps, name)
    make_suite(pytester)
    result = run(pytester, NO_TRACKING, "-n", "2", "-p", "no:cacheprovider")

    report = read_report(pytester.path / "app-eval")
    found = {name: checks(app) for name, app in apps_by_name(report).items()}
    passing = dict.fromkeys(
        ("build_success", "runtime_success", "type_safety", "tests_pass", "ui_renders"), True
    )
    served = {"databricks_connectivity": True, "data_returned": True}
    assert found == {
        "tasks-bun-trpc": {**passing, **served},
        # its log names the port it listens on: runtime fails, and nothing is probed
        "tasks-wrong-port": {
            **passing,
            "runtime_success": False,
            "databricks_connectivity": False,
            "data_returned": False,
            "ui_renders": False,
        },
        "tasks-failing-tests": {**passing, **served, "tests_pass": False},
        # tsc fails the build and the type check, yet bun starts the server and it works;
        # the client imports the router's types, so its build fails too: no page to serve
        "tasks-type-error": {
            **passing,
            **served,
            "build_success": False,
            "type_safety": False,
            "ui_renders": False,
        },
        "tasks-broken-query": {
            **passing,
            "databricks_connectivity": False,
            "data_returned": False,
        },
        # an empty database with no seed script: no rows is no verdict
        "tasks-no-seed": {**passing, "databricks_connectivity": True, "data_returned": None},
    }
    apps_found = apps_by_name(report)
    assert {a["template_type"] for a in apps_found.values()} == {"trpc"}
    runtime = next(s for s in apps_found["tasks-wrong-port"]["stages"] if s["name"] == "runtime")
    assert runtime["reason"].endswith("its log says it listens on another port")
    assert "port_env" in apps_found["tasks-wrong-port"]["details"]["port_hint"]
    data = next(s for s in apps_found["tasks-broken-query"]["stages"] if s["name"] == "data")
    assert "GET /listProjects: answered 500" in data["log_tail"]
    typecheck = next(s for s in apps_found["tasks-bun-trpc"]["stages"] if s["name"] == "typecheck")
    assert typecheck["reason"] == "checked by the build"  # no second tsc run
    result.assert_outcomes(passed=2, failed=4)  # a null check fails nothing
