"""Ops metrics: daily request/error rollups per service (Databricks app, stdlib only).

In production the rows come from a Databricks SQL warehouse table
(ops.service_metrics). This sample reads data/service_metrics.json, a local copy
standing in for the warehouse, so it runs offline without credentials.
"""
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

DATA_FILE = Path(__file__).parent / "data" / "service_metrics.json"
ERROR_BUDGET = 0.005  # 0.5% of requests

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Ops Metrics</title></head>
<body><h1>Ops Metrics</h1><pre id="out">loading…</pre>
<script>fetch('/api/metrics/daily').then(r => r.json()).then(d => {
  document.getElementById('out').textContent = JSON.stringify(d.rows, null, 2); });</script>
</body></html>"""


def load_rows(path=DATA_FILE):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def daily_rollup(rows, service=None):
    """Error rate per day and service, flagging days over the error budget."""
    out = []
    for row in rows:
        if service and row["service"] != service:
            continue
        rate = row["errors"] / row["requests"] if row["requests"] else 0.0
        out.append({
            "day": row["day"],
            "service": row["service"],
            "requests": row["requests"],
            "error_rate": round(rate, 5),
            "over_budget": rate > ERROR_BUDGET,
        })
    return sorted(out, key=lambda r: (r["day"], r["service"]))


class Handler(BaseHTTPRequestHandler):
    def _send(self, status, body, content_type="application/json"):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/health":
            return self._send(200, {"status": "healthy"})
        if url.path == "/api/metrics/daily":
            service = parse_qs(url.query).get("service", [None])[0]
            return self._send(200, {"rows": daily_rollup(load_rows(), service)})
        if url.path == "/":
            return self._send(200, PAGE, "text/html; charset=utf-8")
        return self._send(404, {"error": "not found"})

    def log_message(self, fmt, *args):
        print("%s - %s" % (self.address_string(), fmt % args), flush=True)


def make_server(port):
    return ThreadingHTTPServer(("0.0.0.0", port), Handler)


if __name__ == "__main__":
    port = int(os.environ.get("DATABRICKS_APP_PORT") or os.environ.get("PORT") or 8000)
    server = make_server(port)
    print(f"ops-metrics serving on port {port}", flush=True)
    server.serve_forever()
