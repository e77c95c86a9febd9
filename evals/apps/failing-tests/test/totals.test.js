import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lineTotal, orderTotal, summarizeOrders } from '../src/totals.js';

test('lineTotal multiplies quantity by unit price', () => {
  assert.equal(lineTotal({ quantity: 3, unit_price: 35.5 }), 106.5);
});

test('orderTotal sums every line of the order', () => {
  const lines = [
    { quantity: 4, unit_price: 89 },
    { quantity: 1, unit_price: 420 },
  ];
  assert.equal(orderTotal(lines), 776);
});

test('summarizeOrders groups lines by order', () => {
  const rows = summarizeOrders([
    { order_id: 'A', quantity: 1, unit_price: 1 },
    { order_id: 'B', quantity: 1, unit_price: 1 },
    { order_id: 'A', quantity: 1, unit_price: 1 },
  ]);
  assert.deepEqual(rows.map((r) => [r.order_id, r.lines]), [['A', 2], ['B', 1]]);
});
