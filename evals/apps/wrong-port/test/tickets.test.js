import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openByPriority, tickets } from '../tickets.js';

test('counts only open tickets', () => {
  assert.deepEqual(openByPriority(tickets), [
    { priority: 'high', open: 1 },
    { priority: 'medium', open: 1 },
  ]);
});
