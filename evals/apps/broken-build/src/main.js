import { formatCurrency } from './format.js';
import { RevenueChart } from './components/RevenueChart.js';
import { RevenueTable } from './components/RevenueTable.js';

async function main() {
  const res = await fetch('/api/revenue');
  const { rows } = await res.json();
  document.getElementById('total').textContent = formatCurrency(rows.reduce((s, r) => s + r.revenue, 0));
  RevenueTable(document.getElementById('table'), rows);
  RevenueChart(document.getElementById('chart'), rows);
}

main();
