import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { loadInventory, queryExists, runQuery } from '../server/queries.js';
import { createAppServer } from '../server/server.js';

test('every query file has an evaluator and returns rows', () => {
  for (const name of ['inventory_levels', 'low_stock']) {
    assert.ok(queryExists(name), `${name}.sql exists`);
    assert.ok(runQuery(name).length > 0, `${name} returns rows`);
  }
});

test('low_stock keeps SKUs at or below the reorder point, largest shortfall first', () => {
  const rows = runQuery('low_stock');
  assert.deepEqual(
    rows.map((r) => [r.sku, r.warehouse, r.shortfall]),
    [['BRK-100', 'Lyon', 25], ['FLT-220', 'Berlin', 22], ['BAT-050', 'Porto', 0]],
  );
});

test('inventory_levels is sorted by warehouse then SKU', () => {
  const rows = runQuery('inventory_levels');
  assert.equal(rows.length, loadInventory().length);
  assert.deepEqual(rows.slice(0, 2).map((r) => r.sku), ['BRK-100', 'FLT-220']);
});

test('unknown or unsafe query names are rejected', () => {
  assert.throws(() => runQuery('../secrets'), { status: 404 });
  assert.throws(() => runQuery('nope'), { status: 404 });
});

let server;
let base;
before(async () => {
  server = createAppServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});
after(() => server.close());

test('POST /api/analytics/low_stock answers rows', async () => {
  const res = await fetch(`${base}/api/analytics/low_stock`, { method: 'POST', body: '{}' });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).row_count, 3);
});

test('GET on an analytics endpoint is rejected', async () => {
  const res = await fetch(`${base}/api/analytics/low_stock`);
  assert.equal(res.status, 405);
});
