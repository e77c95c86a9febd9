"""Serve an app's built client beside its API, as its deployment's reverse proxy does.

The generated tRPC layout has a server that answers the API only; in production a
reverse proxy (Caddy) serves ``client/dist`` and forwards ``/api/*`` to the server with
the ``/api`` prefix stripped, and answers ``index.html`` for any other unknown path (a
single-page app's routes). ``StaticSite`` does the same on 127.0.0.1, so the page the
browser opens talks to the live app. Standard library only; one thread per request.
"""

from __future__ import annotations

import http.client
import mimetypes
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

#: Not forwarded either way: they describe one connection, not the message.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
MAX_BODY_BYTES = 32 * 1024 * 1024  # a request or answer larger than this is refused (502)


class StaticSite:
    """A folder served at ``http://127.0.0.1:<port>/``, ``api_prefix`` forwarded to the app."""

    def __init__(self, folder: Path, api_prefix: str, app_port: int, timeout: float) -> None:
        class Handler(_Handler):
            site = self

        self.folder = folder.resolve()
        self.api_prefix, self.app_port, self.timeout = api_prefix, app_port, timeout
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="klaud-static-site", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def __enter__(self) -> StaticSite:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def upstream_path(self, path: str) -> str | None:
        """The app's path for a request path under the API prefix (prefix stripped), else None."""
        prefix = self.api_prefix
        if path == prefix or path.startswith((prefix + "/", prefix + "?")):
            rest = path[len(prefix) :]
            return rest if rest.startswith("/") else "/" + rest
        return None

    def file_for(self, path: str) -> Path | None:
        """The file a path names in the folder (``index.html`` for folders and unknown paths,
        as ``try_files {path} {path}/ /index.html``); never a file outside the folder."""
        relative = unquote(urlsplit(path).path).lstrip("/")
        for candidate in (self.folder / relative, self.folder / relative / "index.html"):
            resolved = candidate.resolve()
            if resolved.is_relative_to(self.folder) and resolved.is_file():
                return resolved
        index = self.folder / "index.html"
        return index if index.is_file() else None


class _Handler(BaseHTTPRequestHandler):
    site: StaticSite
    server_version = "klaud-static-site"

    def log_message(self, format: str, *args: object) -> None:
        pass  # the browser's view of each request is what the ui stage records

    def _forward(self, path: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.send_error(413)
            return
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        connection = http.client.HTTPConnection("127.0.0.1", self.site.app_port, self.site.timeout)
        try:
            connection.request(self.command, path, body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read(MAX_BODY_BYTES + 1)
        except (OSError, http.client.HTTPException):
            self.send_error(502, "the app did not answer")
            return
        finally:
            connection.close()
        if len(data) > MAX_BODY_BYTES:
            self.send_error(502, "the app's answer is too large")
            return
        self.send_response(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _serve_file(self) -> None:
        file = self.site.file_for(self.path)
        if file is None:
            self.send_error(404)
            return
        data = file.read_bytes()
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _handle(self) -> None:
        upstream = self.site.upstream_path(self.path)
        if upstream is not None:
            self._forward(upstream)
        elif self.command in ("GET", "HEAD"):
            self._serve_file()
        else:
            self.send_error(405)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle
