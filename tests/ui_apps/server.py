"""The UI sample apps' server: the app's ``page/`` folder at ``/`` (when it has one) and
a small JSON API under ``$UI_API`` (default ``/api``); anything else is a JSON 404."""

import http.server
import json
import mimetypes
import os
from pathlib import Path

PAGE = Path(os.environ.get("UI_PAGE", "page")).resolve()
API = os.environ.get("UI_API", "/api")
ITEMS = [{"name": "teapot", "price": 12}, {"name": "kettle", "price": 30}]


class Handler(http.server.BaseHTTPRequestHandler):
    def send(self, status, kind, body):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/health":
            return self.send(200, "application/json", b'{"status": "ok"}')
        if path == f"{API}/items":
            return self.send(200, "application/json", json.dumps(ITEMS).encode())
        file = (PAGE / (path.lstrip("/") or "index.html")).resolve()
        if file.is_relative_to(PAGE) and file.is_file():
            kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            return self.send(200, kind, file.read_bytes())
        self.send(404, "application/json", b'{"error": "not found"}')

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
