// Warehouse access. Offline the job runs come from the JSON fixture named in
// config/warehouse.json (a local stand-in for the Databricks table).
import { readFileSync } from 'node:fs';

export function createDb(config, baseUrl) {
  return {
    jobRuns: () => JSON.parse(readFileSync(new URL(config.fixture, baseUrl), 'utf8')),
  };
}
