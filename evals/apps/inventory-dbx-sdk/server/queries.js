// Runs the analytics queries in config/queries/*.sql.
// On Databricks the SQL text is sent to the SQL warehouse (DATABRICKS_WAREHOUSE_ID).
// Offline, the sample evaluates each query over fixtures/inventory.json, a local
// copy of main.supply_chain.inventory, so no credentials or network are needed.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const QUERY_DIR = join(ROOT, 'config', 'queries');

const byWarehouseThenSku = (a, b) => a.warehouse.localeCompare(b.warehouse) || a.sku.localeCompare(b.sku);

export const localEvaluators = {
  inventory_levels: (rows) => [...rows].sort(byWarehouseThenSku),
  low_stock: (rows) =>
    rows
      .filter((r) => r.on_hand <= r.reorder_point)
      .map((r) => ({ ...r, shortfall: r.reorder_point - r.on_hand }))
      .sort((a, b) => b.shortfall - a.shortfall),
};

export function loadInventory() {
  return JSON.parse(readFileSync(join(ROOT, 'fixtures', 'inventory.json'), 'utf8'));
}

export function queryExists(name) {
  return /^[a-z0-9_]+$/.test(name) && existsSync(join(QUERY_DIR, `${name}.sql`));
}

export function runQuery(name, rows = loadInventory()) {
  if (!queryExists(name) || !localEvaluators[name]) {
    const err = new Error(`unknown query "${name}"`);
    err.status = 404;
    throw err;
  }
  return localEvaluators[name](rows);
}
