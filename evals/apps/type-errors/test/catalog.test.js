import assert from 'node:assert/strict';
import { test } from 'node:test';
import { products, searchProducts } from '../src/catalog.js';

test('filters by category', () => {
  assert.deepEqual(searchProducts(products, { category: 'displays' }).map((p) => p.sku), ['MN-27']);
});

test('in-stock filter hides unavailable products', () => {
  assert.equal(searchProducts(products, { inStockOnly: true }).length, 2);
});
