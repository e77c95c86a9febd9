import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatCurrency } from '../src/format.js';

test('formats dollars with thousands separators', () => {
  assert.equal(formatCurrency(182340.5), '$182,340.50');
});
