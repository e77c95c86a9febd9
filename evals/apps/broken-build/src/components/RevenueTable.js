import { formatCurrency } from '../format.js';

export function RevenueTable(el, rows) {
  el.innerHTML = rows.map((r) => `<tr><td>${r.month}</td><td>${formatCurrency(r.revenue)}</td></tr>`).join('');
}
