import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createApp } from '../src/app.mjs';
import { loadConfig } from '../src/config.js';
import { loadShipments, searchShipments } from '../src/shipments.js';

test('config requires SERVER_PORT and APP_GREETING', () => {
  assert.throws(() => loadConfig({ PORT: '8000' }), /SERVER_PORT, APP_GREETING/);
  assert.throws(() => loadConfig({ SERVER_PORT: 'abc', APP_GREETING: 'hi' }), /invalid SERVER_PORT/);
  assert.deepEqual(loadConfig({ SERVER_PORT: '8123', APP_GREETING: 'hi' }), { port: 8123, greeting: 'hi', host: '127.0.0.1' });
});

test('search filters by status and origin', () => {
  const rows = loadShipments();
  assert.equal(searchShipments(rows, {}).length, 3);
  assert.deepEqual(searchShipments(rows, { origin: 'Rotterdam', status: 'delayed' }).map((s) => s.shipment_id), ['SH-9003']);
});

let server;
let base;
before(async () => {
  server = createApp({ greeting: 'test' });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});
after(() => server.close());

test('POST /api/shipments/search with an empty filter lists all shipments', async () => {
  const res = await fetch(`${base}/api/shipments/search`, { method: 'POST', body: '{}' });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).total, 3);
});

test('GET /api/status reports the greeting', async () => {
  const body = await (await fetch(`${base}/api/status`)).json();
  assert.deepEqual(body, { status: 'ok', greeting: 'test' });
});
