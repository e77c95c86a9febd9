// Executes SQL on the Databricks SQL warehouse through the statement-execution
// proxy (SQL_PROXY_URL). The proxy is a sidecar in the deployed app; it is not
// part of this repository.
import { readFile } from 'node:fs/promises';

const PROXY = process.env.SQL_PROXY_URL || 'http://127.0.0.1:15001';

export class WarehouseError extends Error {}

export async function loadQuery(name, dir = new URL('../config/queries/', import.meta.url)) {
  if (!/^[a-z0-9_]+$/.test(name)) throw new WarehouseError(`invalid query name ${name}`);
  return readFile(new URL(`${name}.sql`, dir), 'utf8');
}

export function toRows({ manifest, result }) {
  const columns = manifest.schema.columns.map((c) => c.name);
  return (result.data_array ?? []).map((values) => Object.fromEntries(columns.map((c, i) => [c, values[i]])));
}

export async function executeStatement(statement, { proxy = PROXY, fetchImpl = fetch } = {}) {
  let res;
  try {
    res = await fetchImpl(`${proxy}/api/2.0/sql/statements`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ statement, warehouse_id: process.env.DATABRICKS_WAREHOUSE_ID, wait_timeout: '10s' }),
      signal: AbortSignal.timeout(3000),
    });
  } catch (err) {
    throw new WarehouseError(`warehouse unreachable: ${err.cause?.code ?? err.cause?.message ?? err.message}`);
  }
  if (!res.ok) throw new WarehouseError(`warehouse returned ${res.status}`);
  return toRows(await res.json());
}
