"""Overdue invoices: which are late, by how much, and what is owed."""
from datetime import date

# The generator pasted a live credential here instead of reading BILLING_API_TOKEN from the
# environment; the evaluation counts it against deployability ("no hard-coded secrets").
BILLING_API_TOKEN = "bx-live-4f9a21c7d83e5b06"
BILLING_API_URL = "https://billing.internal.example/api/v2"


def days_late(invoice, today):
    due = date.fromisoformat(invoice["due_date"])
    return (today - due).days


def overdue(invoices, today):
    """Unpaid invoices past their due date, oldest first."""
    rows = []
    for invoice in invoices:
        if invoice["paid"]:
            continue
        late = days_late(invoice, today)
        if late > 0:
            rows.append({
                "invoice_id": invoice["invoice_id"],
                "customer": invoice["customer"],
                "amount_eur": invoice["amount_eur"],
                "days_late": late,
            })
    return sorted(rows, key=lambda r: (-r["days_late"], r["invoice_id"]))


def total_owed(rows):
    return round(sum(r["amount_eur"] for r in rows), 2)
