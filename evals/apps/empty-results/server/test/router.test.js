import assert from 'node:assert/strict';
import { test } from 'node:test';
import { activeAccounts, appRouter, churnRisk } from '../src/router.js';
import { callProcedure } from '../src/trpc.js';

test('activeAccounts drops churned accounts', () => {
  const rows = [{ status: 'ACTIVE' }, { status: 'CHURNED' }];
  assert.equal(activeAccounts(rows).length, 1);
});

test('churnRisk sorts risky accounts by ARR', () => {
  const rows = [
    { status: 'ACTIVE', health_score: 0.1, arr: 10 },
    { status: 'ACTIVE', health_score: 0.2, arr: 50 },
    { status: 'ACTIVE', health_score: 0.9, arr: 99 },
  ];
  assert.deepEqual(churnRisk(rows).map((a) => a.arr), [50, 10]);
});

test('procedures return arrays', async () => {
  for (const name of ['getActiveAccounts', 'getChurnRisk']) {
    assert.ok(Array.isArray(await callProcedure(appRouter, name, 'query')));
  }
});
