"""The ``ui`` stage: the app's page opened in a real headless browser while the app runs.

What is opened: the page the app's own server serves (``/``, or ``[ui] path``) when it
answers HTML; else a built client (``[ui] static``, or ``client/dist`` of the generated
tRPC layout) served by ``StaticSite`` with the API forwarded to the app, as production
does. An app that serves no HTML and has no client has no UI: not applicable.

The verdict is ``judge``, a pure function over what the page did (``PageVisit``); the
browser (Playwright driving the machine's Chromium, imported lazily) is an adapter:
one browser per process, started at the first app with a UI and closed at session end
(``close_browser``), a fresh context per app. The screenshot travels base64-encoded in
the result's details (plain JSON, across xdist) until the controller writes it out
(``results/screenshots.py``).
"""

from __future__ import annotations

import base64
import re
import shutil
import struct
import time
import zlib
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_klaudbiusz.results.model import Outcome, StageOutcome

if TYPE_CHECKING:
    import pytest

    from pytest_klaudbiusz.apps.plan import AppPlan

BROWSER_NAMES = ("chromium", "chromium-browser")
INSTALL_HINT = "apt-get install chromium (Debian/Ubuntu), or pass --klaud-no-ui"
#: Without these, root cannot start Chromium, and on a closed network it keeps trying to
#: reach Google's services (component updates, sync, QUIC probes) for nothing.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
VIEWPORT = {"width": 1280, "height": 800}
FULL_PAGE_MAX_HEIGHT = 1600  # a page up to this tall is shot whole, a longer one as seen
RULE_SEPARATOR = "; "  # between the failed rules in the stage's reason
MESSAGES_KEPT = 20  # first page errors, failed requests and console errors kept of each
MESSAGE_CHARS = 300  # of each message, cut after secrets are redacted (so from 2000 read)
#: Framework error overlays that cover the page in development builds.
ERROR_OVERLAYS = "vite-error-overlay, #webpack-dev-server-client-overlay, nextjs-portal"
#: A screenshot with at most this many distinct filtered rows is one flat colour (the first
#: row differs: the PNG encoder filters it against nothing). A single "." has five.
UNIFORM_ROWS = 2

#: Measures what a person would see: characters of text in a colour other than the
#: background behind it, in boxes that are laid out, and media with an area.
MEASURE_JS = """() => {
  const visible = (el) => {
    const s = getComputedStyle(el), r = el.getBoundingClientRect();
    return s.visibility !== 'hidden' && s.display !== 'none' && parseFloat(s.opacity) > 0.05
      && r.width > 0 && r.height > 0;
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = getComputedStyle(el).backgroundColor;
      if (c && c !== 'transparent' && !/rgba\\(.*,\\s*0\\)$/.test(c)) return c;
    }
    return 'rgb(255, 255, 255)';
  };
  let text = 0;
  const walker = document.createTreeWalker(document.body || document.documentElement,
                                           NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement, chars = node.textContent.trim().length;
    if (!chars || !el || ['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE'].includes(el.tagName))
      continue;
    if (visible(el) && getComputedStyle(el).color !== background(el)) text += chars;
  }
  let media = 0;
  for (const el of document.querySelectorAll('img, svg, canvas, video, picture, input, button')) {
    const r = el.getBoundingClientRect();
    if (visible(el) && r.width * r.height >= 64 && (el.tagName !== 'IMG' || el.naturalWidth > 0))
      media += 1;
  }
  return {text, media, overlay: !!document.querySelector(OVERLAYS),
          height: document.documentElement.scrollHeight};
}""".replace("OVERLAYS", repr(ERROR_OVERLAYS))


class BrowserUnavailable(Exception):
    """No browser to open pages with: the machine's fault, not the app's."""


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("klaudbiusz")
    group.addoption(
        "--klaud-no-ui",
        dest="klaud_no_ui",
        action="store_true",
        help="do not open apps in a headless browser (ui_renders is null)",
    )
    parser.addini("klaud_ui", "open each app with a UI in a headless browser", "bool", True)


def ui_enabled(config: pytest.Config) -> bool:
    return not config.getoption("klaud_no_ui") and bool(config.getini("klaud_ui"))


# --- the rules ---------------------------------------------------------------------


@dataclass
class PageVisit:
    """What the browser saw while the page loaded."""

    path: str  # what was opened, without host and port
    served_by: str  # "app", or the static folder served beside it
    document_status: int | None = None  # None: the document never answered
    load_error: str | None = None  # why the document never answered
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    failed_api_requests: list[str] = field(default_factory=list)
    visible_text_chars: int = 0
    visible_media: int = 0
    error_overlay: bool = False
    uniform_screenshot: bool = False  # every pixel row alike: one flat colour

    def describe(self) -> dict[str, Any]:
        """The visit as report details (counts and the first few messages)."""
        return {
            "path": self.path,
            "served_by": self.served_by,
            "document_status": self.document_status,
            "load_error": self.load_error,
            "page_errors": self.page_errors[:5],
            "failed_api_requests": self.failed_api_requests[:5],
            "console_errors": len(self.console_errors),
            "visible_text_chars": self.visible_text_chars,
            "visible_media": self.visible_media,
        }


def judge(visit: PageVisit) -> list[str]:
    """The rules the page broke, in a fixed order; empty when it renders."""
    broken = []
    if visit.document_status is None:
        broken.append(f"page did not load ({visit.load_error or 'no answer'})")
    elif not 200 <= visit.document_status < 300:
        broken.append(f"document answered {visit.document_status}")
    if visit.page_errors:
        broken.append("page error")
    if visit.failed_api_requests:
        broken.append("api request failed")
    if visit.error_overlay:
        broken.append("error overlay")
    elif visit.document_status is not None and (
        visit.visible_text_chars + visit.visible_media == 0 or visit.uniform_screenshot
    ):
        broken.append("blank page")
    return broken


def is_api_failure(same_origin: bool, api_path: bool, xhr: bool, status: int | None) -> bool:
    """A failed request to the app's own API: a same-origin fetch/XHR, or any request under
    the API prefix, that got no answer (``status`` None), a 5xx or a 404."""
    if not same_origin or not (api_path or xhr):
        return False
    return status is None or status >= 500 or status == 404


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def png_distinct_rows(png: bytes) -> int:
    """How many different filtered pixel rows the PNG has: a flat image has two (the first
    row, filtered against nothing, and all the others), anything drawn has more."""
    width, height = png_size(png)
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[png[25]]
    stride = 1 + width * channels * png[24] // 8
    data, at = bytearray(), 8
    while at < len(png):
        length, kind = struct.unpack(">I4s", png[at : at + 8])
        if kind == b"IDAT":
            data += png[at + 8 : at + 8 + length]
        at += 12 + length
    raw = zlib.decompress(bytes(data))
    return len({raw[i : i + stride] for i in range(0, stride * height, stride)})


# --- what is opened ------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    path: str
    static: Path | None = None  # a folder served beside the app, or None: the app serves it
    api_prefix: str = "/api"
    served_by: str = "app"  # the static folder, relative to the app


def _answer(port: int, path: str, timeout: float) -> tuple[int | None, str]:
    """Status and content type of ``GET path`` on the app (None: no answer)."""
    import urllib.error  # here: urllib.request (and ssl) would cost every pytest start-up
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Accept": "*/*"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get_content_type()
    except (OSError, ValueError):
        return None, ""


def find_target(plan: AppPlan, workdir: Path, port: int, timeout: float) -> Target | str:
    """What to open, or why the app has no UI (not applicable). A page the app serves
    (2xx or 5xx HTML) wins over a built client; a client folder that was not built is a
    page that cannot load (``Target`` of a missing folder)."""
    ui = plan.ui
    path = ui.path if ui else "/"
    if ui and ui.static:
        return Target(path, workdir / ui.static, ui.api_prefix, ui.static)
    status, kind = _answer(port, path, timeout)
    serves_html = kind == "text/html" and status is not None and (status < 400 or status >= 500)
    if serves_html or ui:
        return Target(path)
    if (workdir / "client").is_dir():
        return Target(path, workdir / "client" / "dist", "/api", "client/dist")
    answered = f"answered {status} {kind or 'without a type'}" if status else "did not answer"
    return f"no UI: {path} {answered}, no client folder"


def has_ui_files(plan: AppPlan, app_dir: Path) -> bool:
    """Whether the files show a UI (for a ui stage that cannot run: skipped, not n/a)."""
    pages = (*app_dir.glob("index.html"), *app_dir.glob("*/index.html"))  # public/, static/
    return plan.ui is not None or (app_dir / "client").is_dir() or bool(pages)


# --- the stage ---------------------------------------------------------------------


def ui_stage(
    plan: AppPlan,
    workdir: Path,
    port: int,
    timeout: float,
    request_timeout: float,
    secrets: tuple[str, ...],
) -> tuple[StageOutcome, dict[str, Any]]:
    """The ``ui`` stage and the details it adds (the visit and the screenshot)."""
    from pytest_klaudbiusz.apps.logs import BoundedLog
    from pytest_klaudbiusz.results.screenshots import SCREENSHOT_DATA

    start = time.monotonic()
    target = find_target(plan, workdir, port, request_timeout)
    if isinstance(target, str):
        return StageOutcome("ui", Outcome.NOT_APPLICABLE, reason=target), {}
    visit, png = _visit(target, port, start + timeout, request_timeout)
    for messages in (visit.page_errors, visit.failed_api_requests, visit.console_errors):
        messages[:] = [_redacted(m, secrets)[:MESSAGE_CHARS] for m in messages]  # tokens too
    log = BoundedLog()
    for line in [*visit.page_errors, *visit.failed_api_requests, *visit.console_errors]:
        log.write(f"{line}\n".encode(errors="replace"))
    broken = judge(visit)
    stage = StageOutcome(
        "ui",
        Outcome.FAILED if broken else Outcome.PASSED,
        round(time.monotonic() - start, 3),
        RULE_SEPARATOR.join(broken),
        log_tail=log.excerpt(secrets),
    )
    details: dict[str, Any] = {"ui": visit.describe()}
    if png:
        details[SCREENSHOT_DATA] = base64.b64encode(png).decode("ascii")
    return stage, details


def _visit(
    target: Target, port: int, deadline: float, request_timeout: float
) -> tuple[PageVisit, bytes | None]:
    if target.static is None:
        return _browser().visit(f"http://127.0.0.1:{port}", target, deadline)
    if not (target.static / "index.html").is_file():
        missing = f"{target.served_by}/index.html missing: the client was not built"
        return PageVisit(target.path, target.served_by, load_error=missing), None
    from pytest_klaudbiusz.apps.static_site import StaticSite

    with StaticSite(target.static, target.api_prefix, port, request_timeout) as site:
        return _browser().visit(f"http://127.0.0.1:{site.port}", target, deadline)


# --- the browser (Playwright, imported here only) -------------------------------------


def find_chromium() -> str:
    for name in BROWSER_NAMES:
        if path := shutil.which(name):
            return path
    raise BrowserUnavailable(f"no Chromium found for the UI check: {INSTALL_HINT}")


class _Browser:
    """One Chromium for this process; a fresh context (cookies, storage) per app."""

    def __init__(self) -> None:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            raise BrowserUnavailable(
                "the UI check needs Playwright: pip install playwright (its browser download"
                " is not needed), or pass --klaud-no-ui"
            ) from None
        import psutil

        from pytest_klaudbiusz.apps.processes import harness_children

        executable = find_chromium()
        self._stack = ExitStack()
        before = {child.pid for child in psutil.Process().children()}
        self._playwright = self._stack.enter_context(sync_playwright())
        harness_children(before)  # the driver: the running app's clean-up must spare it
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=executable, args=list(CHROMIUM_ARGS), headless=True
            )
        except Exception as exc:
            self._stack.close()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BrowserUnavailable(f"Chromium ({executable}) did not start: {first}") from None
        self._stack.callback(self._browser.close)

    @property
    def connected(self) -> bool:
        return bool(self._browser.is_connected())

    def close(self) -> None:
        with suppress(Exception):
            self._stack.close()

    def visit(self, origin: str, target: Target, deadline: float) -> tuple[PageVisit, bytes | None]:
        from playwright.sync_api import Error

        visit = PageVisit(target.path, target.served_by)

        def remaining_ms() -> float:
            return max(1.0, (deadline - time.monotonic()) * 1000)

        context = self._browser.new_context(viewport=VIEWPORT, service_workers="block")  # type: ignore[arg-type]
        try:
            page = context.new_page()
            self._listen(page, origin, target, visit)
            png = None
            try:
                response = page.goto(
                    origin + target.path, wait_until="load", timeout=remaining_ms()
                )
                visit.document_status = response.status if response is not None else 200
                with suppress(Error):  # a page that keeps polling never settles: judge it anyway
                    page.wait_for_load_state("networkidle", timeout=min(remaining_ms(), 5000))
                measured = page.wait_for_function(MEASURE_JS, timeout=remaining_ms()).json_value()
                visit.visible_text_chars = int(measured["text"])
                visit.visible_media = int(measured["media"])
                visit.error_overlay = bool(measured["overlay"])
                full = int(measured["height"]) <= FULL_PAGE_MAX_HEIGHT
                png = page.screenshot(type="png", full_page=full, timeout=remaining_ms())
                visit.uniform_screenshot = png_distinct_rows(png) <= UNIFORM_ROWS
            except Error as exc:
                if not self.connected:
                    stopped = (
                        f"Chromium stopped while opening the page: {_first_line(str(exc), 300)}"
                    )
                    raise BrowserUnavailable(stopped) from None
                if visit.document_status is None:
                    visit.load_error = load_error(str(exc))
                else:
                    reason = _first_line(str(exc))
                    visit.page_errors.append(f"the page could not be measured: {reason}")
            return visit, png
        finally:
            with suppress(Error):
                context.close()

    @staticmethod
    def _listen(page: Any, origin: str, target: Target, visit: PageVisit) -> None:
        def keep(messages: list[str], message: str) -> None:
            if len(messages) < MESSAGES_KEPT:
                messages.append(message[:2000])

        def api_failure(request: Any, status: int | None, why: str) -> None:
            url = str(request.url)
            same_origin = url == origin or url.startswith(origin + "/")
            path = url[len(origin) :] if same_origin else url
            api_path = path.startswith((target.api_prefix + "/", target.api_prefix + "?"))
            xhr = request.resource_type in ("fetch", "xhr")
            if is_api_failure(same_origin, api_path, xhr, status):
                keep(visit.failed_api_requests, f"{request.method} {path}: {why}")

        def failed(request: Any) -> None:
            error = str(request.failure or "failed")
            if "ERR_ABORTED" not in error:  # cancelled by the page itself, not a failure
                api_failure(request, None, error)

        def console(message: Any) -> None:
            if message.type == "error":
                keep(visit.console_errors, f"console: {_first_line(message.text)}")

        def answered(response: Any) -> None:
            if response.status >= 400:
                api_failure(response.request, response.status, str(response.status))

        page.on("pageerror", lambda error: keep(visit.page_errors, _first_line(str(error))))
        page.on("console", console)
        page.on("requestfailed", failed)
        page.on("response", answered)


_NET_ERROR = re.compile(r"net::ERR_[A-Z_]+")


def load_error(message: str) -> str:
    """A stable cause from Playwright's navigation error (which names the URL and port)."""
    if match := _NET_ERROR.search(message):
        return match.group(0)
    return "timed out" if "Timeout" in message else "no answer"


def _redacted(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, "[REDACTED]")
    return text


def _first_line(text: str, limit: int = 2000) -> str:
    lines = text.strip().splitlines()
    return (lines[0] if lines else "")[:limit]


_BROWSER: _Browser | None = None


def _browser() -> _Browser:
    """This process's browser, started on first use (again if it died)."""
    global _BROWSER
    if _BROWSER is not None and not _BROWSER.connected:
        close_browser()
    if _BROWSER is None:
        _BROWSER = _Browser()
    return _BROWSER


def close_browser() -> None:
    """Stop this process's browser, if it started one (at the end of the session)."""
    global _BROWSER
    if _BROWSER is not None:
        _BROWSER.close()
        _BROWSER = None
