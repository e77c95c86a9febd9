import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadKpis, renderHtml, summarize } from '../src/digest.js';

test('summarize computes change and share of target', () => {
  const [orders, refunds] = summarize(loadKpis());
  assert.deepEqual(orders, { kpi: 'orders', change: '+128', ofTarget: '102.2%', onTarget: true });
  assert.equal(refunds.change, '-4');
});

test('the digest lists every KPI', () => {
  const html = renderHtml(summarize(loadKpis()));
  assert.equal((html.match(/<li>/g) || []).length, 3);
});
