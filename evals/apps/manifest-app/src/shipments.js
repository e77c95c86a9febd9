// Shipments of main.logistics.shipments. Offline, the sample reads a local JSON
// copy standing in for the Databricks warehouse (no credentials needed).
import { readFileSync } from 'node:fs';

export const loadShipments = () => JSON.parse(readFileSync(new URL('../data/shipments.json', import.meta.url), 'utf8'));

export function searchShipments(rows, { status, origin } = {}) {
  return rows.filter((s) => (!status || s.status === status) && (!origin || s.origin === origin));
}
