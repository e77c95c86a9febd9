import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createAppServer } from '../server/server.js';
import { executeStatement, loadQuery, toRows, WarehouseError } from '../server/warehouse.js';

test('toRows maps the statement result onto column names', () => {
  const rows = toRows({
    manifest: { schema: { columns: [{ name: 'month' }, { name: 'revenue' }] } },
    result: { data_array: [['2025-10-01', '1200.50']] },
  });
  assert.deepEqual(rows, [{ month: '2025-10-01', revenue: '1200.50' }]);
});

test('loadQuery reads config/queries and rejects path tricks', async () => {
  assert.match(await loadQuery('revenue_by_month'), /FROM main\.finance\.bookings/);
  await assert.rejects(loadQuery('../package'), WarehouseError);
});

test('network failures surface as WarehouseError', async () => {
  const fetchImpl = async () => { throw new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } }); };
  await assert.rejects(executeStatement('SELECT 1', { fetchImpl }), /warehouse unreachable: ECONNREFUSED/);
});

test('analytics endpoint answers rows from the executor', async () => {
  const server = createAppServer(async () => [{ month: '2025-10', revenue: 10 }]);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const res = await fetch(`http://127.0.0.1:${server.address().port}/api/analytics/revenue_by_month`, { method: 'POST', body: '{}' });
  server.close();
  assert.equal(res.status, 200);
  assert.equal((await res.json()).data.length, 1);
});
