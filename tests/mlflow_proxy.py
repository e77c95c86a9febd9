"""A fault-injecting HTTP proxy in front of a real ``mlflow server``.

Used by the tracking and outbox tests and by ``benchmarks/reliability.py``: it plays a
server that refuses the credentials, never answers, or dies part-way through a run.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


class CountingProxy(ThreadingHTTPServer):
    """Forwards HTTP requests to ``upstream`` and records them; ``stop`` closes the port.

    ``mode`` plays a broken server: "deny" answers 401 (refused credentials), "hang"
    never answers, "drop" closes the connection unanswered (a server dying mid-run),
    "lose-reply" forwards the request but closes the connection before the answer (the
    server did it, the client cannot know); with ``healthy_until`` set, requests are
    forwarded until one whose path contains it has been, and only then does ``mode`` apply."""

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = urlsplit(upstream)
        self.requests: list[str] = []
        self.mode = "forward"
        self.healthy_until: str | None = None
        self.stopping = threading.Event()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def behaviour(self) -> str:
        until = self.healthy_until
        if until is not None and not any(until in r for r in self.requests[:-1]):
            return "forward"
        return self.mode

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()


class _Forward(BaseHTTPRequestHandler):
    """HTTP/1.0: one request per connection, so nothing outlives ``stop``."""

    server: CountingProxy

    def _forward(self) -> None:
        self.server.requests.append(f"{self.command} {self.path.partition('?')[0]}")
        behaviour = self.server.behaviour()
        if behaviour == "deny":
            self.send_error(401, "Unauthorized: bad credentials")
            return
        if behaviour == "hang":
            self.server.stopping.wait(120)
            return
        if behaviour == "drop":
            self.close_connection = True
            return
        assert "chunked" not in self.headers.get("Transfer-Encoding", "")
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        upstream = http.client.HTTPConnection(
            self.server.upstream.hostname or "", self.server.upstream.port, timeout=60
        )
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        upstream.request(self.command, self.path, body, headers)
        response = upstream.getresponse()
        data = response.read()
        upstream.close()
        if behaviour == "lose-reply":
            self.close_connection = True
            return
        self.send_response_only(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("connection", "content-length", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    def log_message(self, format: str, *args: Any) -> None:
        pass
