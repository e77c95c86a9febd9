import assert from 'node:assert/strict';
import { test } from 'node:test';
import { byDepot, utilisation } from '../src/utilisation.js';

test('utilisation is busy hours over available hours', () => {
  assert.equal(utilisation([{ hours: 12 }], 1), 0.5);
  assert.equal(utilisation([], 0), 0);
});

test('byDepot keeps every depot of the fleet', () => {
  assert.deepEqual(byDepot([], { a: 1, b: 2 }).map((d) => d.depot), ['a', 'b']);
});
