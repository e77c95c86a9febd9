import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { products, searchProducts } from './catalog.js';

const port = Number(process.env.PORT || 8080);

createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/health') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    return res.end('OK');
  }
  if (url.pathname === '/api/products') {
    const items = searchProducts(products, {
      category: url.searchParams.get('category') ?? undefined,
      inStockOnly: url.searchParams.get('in_stock') === 'true',
    });
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ items, count: items.length }));
  }
  if (url.pathname === '/') {
    res.writeHead(200, { 'content-type': 'text/html' });
    return res.end(readFileSync(new URL('../dist/index.html', import.meta.url)));
  }
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end('{"error":"not found"}');
}).listen(port, '0.0.0.0', () => console.log(`catalog listening on ${port}`));
