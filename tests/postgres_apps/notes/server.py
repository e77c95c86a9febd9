"""Creates its schema on an empty database, then serves /healthcheck and /api/notes.

With NOTES_CRASH set it exits after creating the schema (a server that fails to start).
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from db import URL, psql, require_empty_database

print("connecting to:", URL, flush=True)  # a password in it must not reach the report
print("server database:", require_empty_database(), flush=True)
psql(
    "CREATE TABLE notes (id serial PRIMARY KEY, body text); INSERT INTO notes (body) VALUES ('hi')"
)
if os.environ.get("NOTES_CRASH"):
    sys.exit("crashing on purpose")
NOTES = json.dumps([{"body": row} for row in psql("SELECT body FROM notes").splitlines()])


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/healthcheck":
            body = b"ok"
        elif self.path == "/api/notes":  # read at start: no psql per request on a busy machine
            body = NOTES.encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
