"""The ui stage through the real headless Chromium: what is opened, the rules, screenshots.

The sample apps in ``tests/ui_apps`` (one server, ``server.py``, run by each app's start
command) cover every outcome: a page that renders, one that throws at load, a blank one,
one that calls a missing API route, an API-only app (no UI: null) and the generated tRPC
layout (a built ``client/dist`` served by the plugin with ``/api`` forwarded to the
server). They are evaluated twice in real pytest sessions, serially (tracked to MLflow)
and under ``-n 2``; the rules and the file handling are also checked as plain functions.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from ui_apps import copy_app, copy_apps

from pytest_klaudbiusz.apps import ui
from pytest_klaudbiusz.apps.evaluation import EvalOptions, InfraError, evaluate_app
from pytest_klaudbiusz.apps.plan import AppPlan, ManifestError, UiManifest
from pytest_klaudbiusz.apps.static_site import StaticSite
from pytest_klaudbiusz.apps.templates import plan_app
from pytest_klaudbiusz.apps.ui import PageVisit, is_api_failure, judge, png_distinct_rows, png_size
from pytest_klaudbiusz.results.model import AppResult, AppStatus
from pytest_klaudbiusz.results.screenshots import (
    LEFT_OUT,
    SCREENSHOT_DATA,
    SCREENSHOT_LINK,
    file_name,
    gather_screenshots,
    store_screenshots,
)

SUBPROCESS_TIMEOUT = 300
#: What each sample app's ui stage must come to: (ui_renders, the ui issues).
EXPECTED = {
    "renders": (True, []),
    "throws-at-load": (False, ["ui: page error"]),
    "blank-page": (False, ["ui: blank page"]),
    "missing-api": (False, ["ui: api request failed"]),
    "api-only": (None, []),
    "trpc-static": (True, []),
}
SUITE = textwrap.dedent(
    """\
    def test_app(klaud_app):
        klaud_app.record("screenshot_bytes", len(klaud_app.screenshot or b""))
        klaud_app.check()
    """
)


def environ(marker: str) -> dict[str, str]:
    """The caller's environment (no xdist or tracking settings) with a marker every process
    of the session inherits, the browser's included."""
    drop = ("PYTEST_XDIST_", "PYTEST_CURRENT_TEST", "MLFLOW_", "DATABRICKS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {**env, "KLAUD_UI_TEST": marker}


def processes_with(marker: str) -> list[str]:
    """Command names of the processes carrying ``marker`` in their environment."""
    found = []
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.environ().get("KLAUD_UI_TEST") == marker:
                found.append(str(proc.info["name"]))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@dataclass(frozen=True)
class Session:
    folder: Path
    report: dict[str, Any]
    output: str
    seconds: float
    left_behind: list[str]

    def app(self, name: str) -> dict[str, Any]:
        return next(a for a in self.report["apps"] if a["app_name"] == name)


def run_session(root: Path, name: str, *args: str) -> Session:
    folder = root / name
    copy_apps(folder / "apps")
    (folder / "pytest.ini").write_text("[pytest]\nklaud_apps = apps\n")
    (folder / "test_evals.py").write_text(SUITE)
    marker = uuid.uuid4().hex
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    start = time.monotonic()
    done = subprocess.run(
        command,
        cwd=folder,
        env=environ(marker),
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    seconds = time.monotonic() - start
    output = done.stdout + done.stderr
    assert "INTERNALERROR" not in output and "Traceback" not in output, output
    report = json.loads((folder / "app-eval" / "evaluation_report.json").read_text())
    return Session(folder, report, output, seconds, processes_with(marker))


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory, _initialised_mlflow_db: Path) -> Session:
    root = tmp_path_factory.mktemp("ui-serial")
    shutil.copyfile(_initialised_mlflow_db, root / "mlflow.db")
    uri = f"sqlite:///{root}/mlflow.db"
    return run_session(root, "serial", "--klaud-tracking-uri", uri, "--klaud-experiment", "ui")


@pytest.fixture(scope="module")
def parallel(tmp_path_factory: pytest.TempPathFactory) -> Session:
    return run_session(tmp_path_factory.mktemp("ui-parallel"), "parallel", "-n", "2",
                       "--klaud-no-tracking")  # fmt: skip


def ui_issues(app: dict[str, Any]) -> list[str]:
    return [issue for issue in app["issues"] if issue.startswith("ui: ")]


# --- end to end: real sessions, real browser ---------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("which", ["serial", "parallel"])
def test_each_sample_app_gets_its_verdict_through_the_real_browser(
    which: str, request: pytest.FixtureRequest
) -> None:
    session: Session = request.getfixturevalue(which)
    verdicts = {
        name: (session.app(name)["metrics"]["ui_renders"], ui_issues(session.app(name)))
        for name in EXPECTED
    }
    assert verdicts == EXPECTED
    counts = session.report["counts"]["ui_renders"]
    assert counts == {"passed": 2, "checked": 5}
    assert session.report["summary"]["ui_renders_rate"] == pytest.approx(0.4)
    assert "ui_renders_rate                40.0%  (2/5)" in session.output
    assert session.left_behind == [], "browser or app processes outlived the session"


@pytest.mark.e2e
def test_failures_are_explained_in_the_stage_and_its_log(serial: Session) -> None:
    def ui_stage(name: str) -> dict[str, Any]:
        return next(s for s in serial.app(name)["stages"] if s["name"] == "ui")

    thrown = ui_stage("throws-at-load")
    assert thrown["reason"] == "page error"
    assert "Cannot read properties of undefined (reading 'columns')" in thrown["log_tail"]
    missing = ui_stage("missing-api")
    assert missing["reason"] == "api request failed"
    assert "GET /api/tickets: 404" in missing["log_tail"]
    assert serial.app("missing-api")["details"]["ui"]["failed_api_requests"] == [
        "GET /api/tickets: 404"
    ]
    assert ui_stage("api-only")["reason"].startswith("no UI: / answered 404 application/json")
    trpc = serial.app("trpc-static")["details"]["ui"]
    assert trpc["served_by"] == "client/dist" and trpc["visible_text_chars"] > 20
    assert serial.app("renders")["details"]["ui"]["served_by"] == "app"


@pytest.mark.e2e
def test_screenshots_are_written_linked_shown_and_logged(serial: Session) -> None:
    report_dir = serial.folder / "app-eval"
    linked = {}
    for app in serial.report["apps"]:
        assert SCREENSHOT_DATA not in app["details"]  # the base64 stays out of the report
        if app["app_name"] != "api-only":
            linked[app["app_name"]] = app["details"][SCREENSHOT_LINK]
    assert "api-only" not in {a for a in linked}
    assert linked["renders"] == "screenshots/renders.png"
    for name, link in linked.items():
        png = (report_dir / link).read_bytes()
        width, height = png_size(png)
        assert width == 1280 and 800 <= height <= ui.FULL_PAGE_MAX_HEIGHT, name
        blank = png_distinct_rows(png) <= ui.UNIFORM_ROWS
        assert blank == (name == "blank-page"), name
    assert sorted(p.name for p in (report_dir / "screenshots").iterdir()) == sorted(
        Path(link).name for link in linked.values()
    )
    custom = {a["app_name"]: a["custom_metrics"]["screenshot_bytes"] for a in serial.report["apps"]}
    assert custom["api-only"] == 0 and custom["renders"] > 1000  # klaud_app.screenshot

    markdown = (report_dir / "EVALUATION_REPORT.md").read_text()
    gallery = markdown[markdown.index("## Screenshots") :]
    assert gallery.index("throws-at-load") < gallery.index("| renders |")  # attention first
    assert '<img src="screenshots/renders.png" alt="renders" width="400">' in gallery

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=serial.report["run"]["tracking_uri"])
    run_id = serial.report["run"]["mlflow_run_id"]
    logged = {f.path for f in client.list_artifacts(run_id, "screenshots")}
    assert logged == set(linked.values())
    assert client.get_run(run_id).data.metrics["ui_renders_rate"] == pytest.approx(0.4)


# --- in this process: the stage itself ---------------------------------------------


@pytest.fixture(scope="module")
def closes_browser() -> Iterator[None]:
    yield
    ui.close_browser()


def static_page(folder: Path, html: str) -> AppPlan:
    """An app whose built client is one page (served by the plugin, no app behind it)."""
    dist = folder / "client" / "dist"
    dist.mkdir(parents=True)
    (dist / "index.html").write_text(html)
    (folder / "klaud.toml").write_text('[ui]\nstatic = "client/dist"\n')
    return plan_app(folder)


def test_ui_off_and_a_missing_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--klaud-no-ui: null without a browser; no Chromium: an infrastructure error saying
    how to install it, never the app's failure."""
    app = copy_app("renders", tmp_path / "renders")
    env = dict(os.environ)
    off = evaluate_app(app, EvalOptions(env, ui=False))
    assert off.metrics["ui_renders"] is None and off.stage("ui").reason.startswith("UI check off")

    ui.close_browser()
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))  # the harness's; the app keeps its own
    with pytest.raises(InfraError, match=r"no Chromium found.*apt-get install chromium"):
        evaluate_app(app, EvalOptions(env))


def test_a_page_that_hangs_costs_the_ui_timeout(tmp_path: Path, closes_browser: None) -> None:
    """A page stuck in a loop, from a built client: the stage fails after its timeout."""
    plan = static_page(tmp_path, "<h1>Busy</h1><script>for (;;) {}</script>")
    start = time.monotonic()
    stage, details = ui.ui_stage(plan, tmp_path, port=9, timeout=3, request_timeout=1, secrets=())
    assert time.monotonic() - start < 10
    assert (stage.outcome, stage.reason) == ("failed", "page did not load (timed out)")
    assert details["ui"]["served_by"] == "client/dist"


def test_secrets_a_page_prints_are_redacted(tmp_path: Path, closes_browser: None) -> None:
    secret = "dapi0123456789abcdef"
    html = f"<h1>Hi</h1><script>console.error('t={secret}'); throw Error('{secret}')</script>"
    stage, details = ui.ui_stage(static_page(tmp_path, html), tmp_path, 9, 10, 1, (secret,))
    assert stage.reason == "page error"
    assert "console: t=[REDACTED]" in stage.log_tail
    assert details["ui"]["page_errors"] == ["[REDACTED]"]
    assert secret not in json.dumps(details["ui"]) + stage.log_tail


def test_navigation_errors_become_stable_causes() -> None:
    message = "Page.goto: net::ERR_EMPTY_RESPONSE at http://127.0.0.1:41234/\nCall log: ..."
    assert ui.load_error(message) == "net::ERR_EMPTY_RESPONSE"
    assert ui.load_error("Page.goto: Timeout 2999.5ms exceeded.") == "timed out"
    assert ui.load_error("Target crashed") == "no answer"


# --- the rules, as a pure function ---------------------------------------------------


def visit(**changes: Any) -> PageVisit:
    fields = {"path": "/", "served_by": "app", "document_status": 200, "visible_text_chars": 40}
    return PageVisit(**{**fields, **changes})


@pytest.mark.parametrize(
    ("changes", "broken"),
    [
        ({}, []),
        ({"visible_text_chars": 0, "visible_media": 1}, []),
        ({"document_status": 500}, ["document answered 500"]),
        ({"document_status": None, "load_error": "net::ERR_EMPTY_RESPONSE"},
         ["page did not load (net::ERR_EMPTY_RESPONSE)"]),
        ({"page_errors": ["TypeError: x"]}, ["page error"]),
        ({"failed_api_requests": ["GET /api/x: 404"]}, ["api request failed"]),
        ({"visible_text_chars": 0}, ["blank page"]),
        ({"uniform_screenshot": True}, ["blank page"]),
        ({"error_overlay": True}, ["error overlay"]),
        ({"document_status": 404, "page_errors": ["e"], "visible_text_chars": 0},
         ["document answered 404", "page error", "blank page"]),
    ],
)  # fmt: skip
def test_judge_names_every_broken_rule(changes: dict[str, Any], broken: list[str]) -> None:
    assert judge(visit(**changes)) == broken


@pytest.mark.parametrize(
    ("same_origin", "api_path", "xhr", "status", "failed"),
    [
        (True, True, True, 500, True),
        (True, False, True, 404, True),  # a fetch of the app's own
        (True, True, False, None, True),  # no answer at all
        (True, True, True, 401, False),  # not logged in is not broken
        (True, False, False, 404, False),  # a missing favicon is not the API
        (False, True, True, 500, False),  # somebody else's API
    ],
)
def test_which_requests_count_as_a_failed_api_request(
    same_origin: bool, api_path: bool, xhr: bool, status: int | None, failed: bool
) -> None:
    assert is_api_failure(same_origin, api_path, xhr, status) is failed


def tiny_png(rows: list[bytes], width: int) -> bytes:
    """An 8-bit greyscale PNG, one byte per pixel."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + b"\0\0\0\0"

    header = struct.pack(">IIBBBBB", width, len(rows), 8, 0, 0, 0, 0)
    raw = b"".join(b"\0" + row for row in rows)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))


def test_a_flat_image_has_few_distinct_rows() -> None:
    assert png_size(tiny_png([b"\xff" * 4] * 3, 4)) == (4, 3)
    assert png_distinct_rows(tiny_png([b"\xff" * 4] * 30, 4)) == 1
    assert png_distinct_rows(tiny_png([bytes([i] * 4) for i in range(30)], 4)) == 30
    with pytest.raises(ValueError, match="not a PNG"):
        png_size(b"GIF89a" + b"\0" * 30)


# --- the manifest's [ui] table --------------------------------------------------------


def test_ui_table_of_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "klaud.toml").write_text('[ui]\npath = "/app"\nstatic = "web/out"\n'
                                         'api_prefix = "/backend/"\n')  # fmt: skip
    assert plan_app(tmp_path).ui == UiManifest("/app", "web/out", "/backend")
    (tmp_path / "klaud.toml").write_text("[ui]\n")
    assert plan_app(tmp_path).ui == UiManifest()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[ui]\nurl = "/"', "unknown key in [ui]: 'url'"),
        ('[ui]\npath = "app"', "ui.path must be a path starting with '/'"),
        ('[ui]\nstatic = "../elsewhere"', "ui.static must be a folder inside the app"),
        ('[ui]\napi_prefix = "/"', "ui.api_prefix must be a path such as '/api'"),
        ('ui = "yes"', "[ui] must be a table"),
    ],
)
def test_a_malformed_ui_table_names_the_key(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "klaud.toml").write_text(toml + "\n")
    with pytest.raises(ManifestError, match=message.replace("[", r"\[").replace("]", r"\]")):
        plan_app(tmp_path)


# --- the built client served beside the API ---------------------------------------------


def get(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_static_site_serves_files_routes_to_index_and_forwards_the_api(tmp_path: Path) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class Api(BaseHTTPRequestHandler):
        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.dumps([self.command, self.path, self.rfile.read(length).decode()])
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        do_GET = do_POST = answer

        def log_message(self, *args: object) -> None:
            pass

    (tmp_path / "dist" / "assets").mkdir(parents=True)
    (tmp_path / "dist" / "index.html").write_text("<h1>index</h1>")
    (tmp_path / "dist" / "assets" / "a.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("outside")
    api = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    Thread(target=api.serve_forever, daemon=True).start()
    try:
        with StaticSite(tmp_path / "dist", "/api", api.server_address[1], 5) as site:
            base = f"http://127.0.0.1:{site.port}"
            assert get(f"{base}/assets/a.js") == (200, b"console.log(1)")
            assert get(f"{base}/orders/42") == (200, b"<h1>index</h1>")  # an SPA route
            assert get(f"{base}/../secret.txt")[1] == b"<h1>index</h1>"
            assert get(f"{base}/%2e%2e/secret.txt")[1] == b"<h1>index</h1>"
            status, body = get(f"{base}/api/items?x=1", "POST", b'{"a":1}')
            assert (status, json.loads(body)) == (200, ["POST", "/items?x=1", '{"a":1}'])
            assert json.loads(get(f"{base}/api")[1])[1] == "/"
            assert get(f"{base}/apiary")[1] == b"<h1>index</h1>"  # not under the prefix
    finally:
        api.shutdown()
        api.server_close()
    with StaticSite(tmp_path / "dist", "/api", api.server_address[1], 1) as site:
        assert get(f"http://127.0.0.1:{site.port}/api/items")[0] == 502  # the app is gone


# --- screenshots on the controller ----------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["café app", "../../etc/passwd", "a/b", "..", "", "x\ny", "<img src=x>", "CON"]
)
def test_screenshot_file_names_are_safe(name: str) -> None:
    file = file_name(name)
    assert file.endswith(".png") and "/" not in file and not file.startswith(".")
    assert file.isascii() and file.isprintable() and len(file) <= 100
    assert file != file_name(name + " ")  # two apps never share a file


def result_with_png(name: str, size: int, failing: bool = False) -> AppResult:
    png = tiny_png([bytes([i % 256]) * 4 for i in range(size)], 4)
    return AppResult(
        name,
        f"apps/{name}",
        metrics={"ui_renders": not failing},
        details={SCREENSHOT_DATA: base64.b64encode(png).decode()},
    )


def test_screenshots_over_the_cap_are_listed_and_stale_files_go(tmp_path: Path) -> None:
    (tmp_path / "screenshots").mkdir()
    (tmp_path / "screenshots" / "old-app.png").write_bytes(b"stale")
    apps = [result_with_png("a", 50), result_with_png("b", 50), result_with_png("z", 50, True)]
    one = len(base64.b64decode(apps[0].details[SCREENSHOT_DATA]))
    store_screenshots(apps, tmp_path, max_bytes=2 * one + 10)
    a, b, z = apps
    assert z.details[SCREENSHOT_LINK] == "screenshots/z.png"  # needing attention: kept first
    assert a.details[SCREENSHOT_LINK] == "screenshots/a.png"
    assert SCREENSHOT_LINK not in b.details and "cap" in b.details[LEFT_OUT]
    assert sorted(p.name for p in (tmp_path / "screenshots").iterdir()) == ["a.png", "z.png"]
    assert all(SCREENSHOT_DATA not in app.details for app in apps)

    # an earlier result (the last report) keeps the file it links, if it is there
    again = AppResult("a", "apps/a", details={SCREENSHOT_LINK: "screenshots/a.png"})
    gone = AppResult("q", "apps/q", details={SCREENSHOT_LINK: "screenshots/../../q.png"})
    store_screenshots([again, gone], tmp_path)
    assert again.details[SCREENSHOT_LINK] == "screenshots/a.png"
    assert SCREENSHOT_LINK not in gone.details
    assert [p.name for p in (tmp_path / "screenshots").iterdir()] == ["a.png"]
    assert AppStatus.EVALUATED is again.status


def test_importing_the_plugin_loads_no_browser_code() -> None:
    code = (
        "import sys, pytest_klaudbiusz.plugin\n"
        "names = ('playwright', 'greenlet', 'pytest_klaudbiusz.apps.static_site')\n"
        "print(sorted(m for m in names if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_a_ui_that_cannot_run_is_skipped_and_an_app_without_one_not_applicable(
    tmp_path: Path,
) -> None:
    """Without a running app the files tell: a page folder, a client or [ui] is a UI."""
    env = dict(os.environ)
    cases = {
        "renders": ("skipped", "install failed"),
        "trpc-static": ("skipped", "install failed"),
        "api-only": ("not_applicable", "no UI found in the files"),
    }
    for name, expected in cases.items():
        app = copy_app(name, tmp_path / name)
        manifest = (app / "klaud.toml").read_text().replace('install = ""\n', "")
        (app / "klaud.toml").write_text(
            manifest.replace("[commands]", "[commands]\ninstall = 'exit 1'")
        )
        result = evaluate_app(app, EvalOptions(env))
        stage = result.stage("ui")
        assert stage is not None and (stage.outcome.value, stage.reason) == expected


def test_a_merge_gathers_the_screenshots_of_its_shards(tmp_path: Path) -> None:
    shards = []
    for shard, name in (("one", "a"), ("two", "b c")):
        folder = tmp_path / shard / "screenshots"
        folder.mkdir(parents=True)
        (folder / file_name(name)).write_bytes(tiny_png([b"\x01"], 1))
        link = {SCREENSHOT_LINK: f"screenshots/{file_name(name)}"}
        shards.append(
            (str(tmp_path / shard / "r.json"), {"apps": [{"app_name": name, "details": link}]})
        )
    gone = {"app_name": "gone", "details": {SCREENSHOT_LINK: "screenshots/gone.png"}}
    merged = {"apps": [*(json.loads(json.dumps(s["apps"][0])) for _, s in shards), gone]}
    gather_screenshots(merged, shards, tmp_path / "merged")
    assert sorted(p.name for p in (tmp_path / "merged" / "screenshots").iterdir()) == sorted(
        file_name(n) for n in ("a", "b c")
    )
    assert merged["apps"][1]["details"][SCREENSHOT_LINK] == f"screenshots/{file_name('b c')}"
    assert SCREENSHOT_LINK not in gone["details"]  # its file is nowhere: no dead link
