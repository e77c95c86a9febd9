"""A well-behaved app: /health and a few data endpoints on $PORT."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROWS = [{"id": 1, "region": "EMEA"}, {"id": 2, "region": "APAC"}]
ROUTES = {
    "/health": (200, {"ok": True}),
    "/api/rows": (200, ROWS),
    "/api/empty": (200, []),
    "/api/broken": (500, {"error": "warehouse unreachable"}),
    "/api/trpc/getSales": (200, {"result": {"data": {"json": [*ROWS, {"id": 3}]}}}),
    "/api/trpc/getNothing": (200, {"result": {"data": {"json": []}}}),
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/api/text":
            self._send(200, b"<html>not json</html>", "text/html")
        else:
            status, body = ROUTES.get(self.path, (404, {"error": "not found"}))
            self._send(status, json.dumps(body).encode(), "application/json")

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        json_type = self.headers.get("Content-Type", "").startswith("application/json")
        if self.path == "/api/query" and body == {} and json_type:
            answer = (200, {"rows": [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}]})
        else:
            answer = (400, {"error": f"expected a JSON body {{}}, got {raw!r}"})
        self._send(answer[0], json.dumps(answer[1]).encode(), "application/json")

    def _send(self, status, payload, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


ThreadingHTTPServer(("", int(os.environ["PORT"])), Handler).serve_forever()
