import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { orderLines } from './orders.js';
import { summarizeOrders } from './totals.js';

const port = Number(process.env.PORT || 3000);

createServer((req, res) => {
  if (req.url === '/healthcheck') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end('{"status":"ok"}');
  }
  if (req.url === '/api/orders/summary') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ rows: summarizeOrders(orderLines) }));
  }
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end(readFileSync(new URL('../dist/index.html', import.meta.url)));
}).listen(port, () => console.log(`order-totals on :${port}`));
