import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { appRouter, salesByRegion, topProducts } from '../src/router.js';
import { createAppServer } from '../src/server.js';
import { callProcedure } from '../src/trpc.js';

const orders = [
  { region: 'EMEA', product: 'A', quantity: 2, unit_price: 10 },
  { region: 'AMER', product: 'B', quantity: 1, unit_price: 100 },
  { region: 'EMEA', product: 'B', quantity: 3, unit_price: 100 },
];

describe('sales helpers', () => {
  test('salesByRegion totals revenue per region, highest first', () => {
    assert.deepEqual(salesByRegion(orders), [
      { region: 'EMEA', orders: 2, revenue: 320 },
      { region: 'AMER', orders: 1, revenue: 100 },
    ]);
  });

  test('topProducts ranks by units sold', () => {
    assert.deepEqual(topProducts(orders, 1), [{ product: 'B', units_sold: 4 }]);
  });
});

describe('appRouter', () => {
  test('getSales returns one row per region from the warehouse', async () => {
    const rows = await callProcedure(appRouter, 'getSales', 'query');
    assert.deepEqual(rows.map((r) => r.region).sort(), ['AMER', 'APAC', 'EMEA']);
  });

  test('addSalesNote rejects an empty note', async () => {
    await assert.rejects(callProcedure(appRouter, 'addSalesNote', 'mutation', { region: 'EMEA', text: ' ' }), {
      code: 'BAD_REQUEST',
    });
  });

  test('a mutation cannot be called as a query', async () => {
    await assert.rejects(callProcedure(appRouter, 'addSalesNote', 'query'), { code: 'METHOD_NOT_SUPPORTED' });
  });
});

describe('HTTP adapter', () => {
  let server;
  let base;
  before(async () => {
    server = createAppServer();
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${server.address().port}`;
  });
  after(() => server.close());

  test('GET /api/trpc/getTopProducts answers the tRPC envelope', async () => {
    const res = await fetch(`${base}/api/trpc/getTopProducts`);
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.result.data.length, 3);
  });

  test('POST /api/trpc/addSalesNote stores a note', async () => {
    const res = await fetch(`${base}/api/trpc/addSalesNote`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ region: 'APAC', text: 'Renewal due' }),
    });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).result.data.region, 'APAC');
  });
});
