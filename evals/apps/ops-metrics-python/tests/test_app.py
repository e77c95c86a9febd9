import json
import sys
import threading
import unittest
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import app  # noqa: E402


class RollupTests(unittest.TestCase):
    def test_error_rate_and_budget(self):
        rows = [{"day": "d1", "service": "api", "requests": 1000, "errors": 10}]
        [out] = app.daily_rollup(rows)
        self.assertEqual(out["error_rate"], 0.01)
        self.assertTrue(out["over_budget"])

    def test_zero_requests_do_not_divide_by_zero(self):
        [out] = app.daily_rollup([{"day": "d1", "service": "api", "requests": 0, "errors": 0}])
        self.assertEqual(out["error_rate"], 0.0)
        self.assertFalse(out["over_budget"])

    def test_filter_by_service(self):
        rows = app.daily_rollup(app.load_rows(), service="search")
        self.assertEqual({r["service"] for r in rows}, {"search"})
        self.assertEqual(len(rows), 3)

    def test_checkout_incident_is_flagged(self):
        flagged = [r["day"] for r in app.daily_rollup(app.load_rows()) if r["over_budget"]]
        self.assertEqual(flagged, ["2025-11-21"])


class HttpTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        app.Handler.log_message = lambda *a: None
        cls.server = app.make_server(0)
        cls.base = f"http://127.0.0.1:{cls.server.server_address[1]}"
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    def get_json(self, path):
        with urllib.request.urlopen(self.base + path, timeout=5) as resp:
            return resp.status, json.load(resp)

    def test_health(self):
        self.assertEqual(self.get_json("/health"), (200, {"status": "healthy"}))

    def test_daily_metrics_endpoint(self):
        status, body = self.get_json("/api/metrics/daily")
        self.assertEqual(status, 200)
        self.assertEqual(len(body["rows"]), 6)


if __name__ == "__main__":
    unittest.main()
