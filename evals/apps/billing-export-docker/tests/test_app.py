import json
import sys
import threading
import unittest
import urllib.request
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import app  # noqa: E402
import billing  # noqa: E402

TODAY = date(2025, 11, 24)


class OverdueTests(unittest.TestCase):
    def test_unpaid_past_due_oldest_first(self):
        rows = billing.overdue(app.load_invoices(), TODAY)
        self.assertEqual([r["invoice_id"] for r in rows], ["INV-1041", "INV-1042"])
        self.assertEqual([r["days_late"] for r in rows], [24, 9])

    def test_paid_and_not_yet_due_are_left_out(self):
        ids = {r["invoice_id"] for r in billing.overdue(app.load_invoices(), TODAY)}
        self.assertNotIn("INV-1043", ids)
        self.assertNotIn("INV-1044", ids)

    def test_total_owed(self):
        self.assertEqual(billing.total_owed(billing.overdue(app.load_invoices(), TODAY)), 1730.5)


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

    def test_overdue_endpoint(self):
        with urllib.request.urlopen(self.base + "/api/invoices/overdue", timeout=5) as resp:
            body = json.load(resp)
        self.assertEqual(len(body["rows"]), 2)


if __name__ == "__main__":
    unittest.main()
