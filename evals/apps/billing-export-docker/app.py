"""Billing export: overdue invoices over HTTP (stdlib only)."""
import json
import os
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import billing

DATA_FILE = Path(__file__).parent / "data" / "invoices.json"
AS_OF = date(2025, 11, 24)  # the snapshot's date, so the sample answers the same every day


def load_invoices(path=DATA_FILE):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class Handler(BaseHTTPRequestHandler):
    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            return self._send(200, {"status": "ok"})
        if self.path == "/api/invoices/overdue":
            rows = billing.overdue(load_invoices(), AS_OF)
            return self._send(200, {"rows": rows, "total_owed_eur": billing.total_owed(rows)})
        return self._send(404, {"error": "not found"})

    def log_message(self, fmt, *args):
        print("%s - %s" % (self.address_string(), fmt % args), flush=True)


def make_server(port):
    return ThreadingHTTPServer(("0.0.0.0", port), Handler)


if __name__ == "__main__":
    port = int(os.environ.get("PORT") or 8000)
    print(f"billing-export serving on port {port}", flush=True)
    make_server(port).serve_forever()
