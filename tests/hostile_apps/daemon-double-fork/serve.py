"""A server that is hard to stop: ignores SIGTERM/SIGHUP/SIGINT, optionally double-forks.

Serves GET /health on $PORT and appends its pid to $PIDFILE once it listens.
Any extra argument (the test's marker) only makes the process findable by argv.
"""

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


if "--double-fork" in sys.argv:
    if os.fork():
        os.wait()  # the launcher returns once the middle child has gone
        sys.exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)  # the middle child exits: the server is an orphan in its own session
for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
    signal.signal(sig, signal.SIG_IGN)
server = HTTPServer(("", int(os.environ["PORT"])), Health)
with open(os.environ["PIDFILE"], "a") as pidfile:
    pidfile.write(f"{os.getpid()}\n")
server.serve_forever()
