// Data access for the sales tables.
// In production the app queries a Databricks SQL warehouse (DATABRICKS_HOST,
// DATABRICKS_WAREHOUSE_ID). This sample ships local JSON fixtures standing in for
// the warehouse tables, so it serves the same rows offline and without credentials.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const DATA_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'data');

export function loadTable(name) {
  return JSON.parse(readFileSync(join(DATA_DIR, `${name}.json`), 'utf8'));
}
